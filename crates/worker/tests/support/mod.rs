//! Running workers in tests: in-process (`spawn_worker`) or as the real
//! binary (`WorkerProcess`, for SIGKILL and SIGTERM).
#![allow(dead_code)] // each test binary uses a different part

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use shared_core::db::jobs::{self, Job, NewJob};
use shared_core::db::{Db, migrate};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::common::{TestDb, settings_for, test_env};

/// Worker defaults for tests: fast retries and leases, quiet logs.
pub fn worker_env(env: &mut HashMap<String, String>) {
    env.insert("WORKER_CONCURRENCY".into(), "4".into());
    env.insert("JOB_BACKOFF_BASE_MS".into(), "100".into());
    env.insert("JOB_LEASE_SECONDS".into(), "3".into());
}

pub struct InProcessWorker {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl InProcessWorker {
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.expect("the worker task").expect("a clean worker shutdown");
    }
}

impl Drop for InProcessWorker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn spawn_worker(db: &TestDb, customise: impl FnOnce(&mut HashMap<String, String>)) -> InProcessWorker {
    let settings = settings_for(db, |env| {
        worker_env(env);
        customise(env);
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(worker::run(settings, async move {
        let _ = stopped.await;
    }));
    InProcessWorker { stop: Some(stop), task }
}

/// The real `worker` binary as a child process.
pub struct WorkerProcess(pub Child);

impl WorkerProcess {
    pub fn start(db: &TestDb, customise: impl FnOnce(&mut HashMap<String, String>)) -> Self {
        let env = test_env(db, |env| {
            worker_env(env);
            env.insert("LOG_FORMAT".into(), "json".into());
            customise(env);
        });
        let child = Command::new(env!("CARGO_BIN_EXE_worker"))
            .env_clear()
            .envs(env)
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .current_dir(db.dir())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the worker binary starts");
        Self(child)
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([&format!("-{signal}"), &self.0.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    pub async fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(tokio::time::Instant::now() < deadline, "the worker did not exit within {within:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A migrated database and a handle on it.
pub async fn migrated(db: &TestDb) -> Db {
    let conn = db.connect().await;
    migrate::run(&conn).await.unwrap();
    conn
}

pub fn noop(sleep_ms: u64, max_attempts: i32) -> NewJob {
    NewJob {
        kind: shared_core::jobs::kinds::JobKind::Noop.as_str(),
        payload: serde_json::json!({ "sleep_ms": sleep_ms }),
        owner_id: None,
        priority: 0,
        run_at: None,
        max_attempts,
        idempotency_key: None,
    }
}

/// Polls until `done(job)` holds, or panics after `within`.
pub async fn wait_for_job(db: &Db, id: Uuid, within: Duration, done: impl Fn(&Job) -> bool) -> Job {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let job = jobs::find(db, id).await.unwrap().expect("the job exists");
        if done(&job) {
            return job;
        }
        assert!(tokio::time::Instant::now() < deadline, "job {id} never got there; last seen: {job:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn count_status(db: &Db, status: jobs::JobStatus) -> i64 {
    let filter = jobs::JobFilter { status: Some(status), ..Default::default() };
    jobs::list(db, &filter, 0, 1).await.unwrap().1
}
