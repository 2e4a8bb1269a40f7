//! The `api` binary as a child process of a test, on a test database.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::TestDb;

/// The api as a child process; killed (SIGKILL) if a test fails midway.
pub struct ApiProcess {
    pub child: Child,
    pub port: u16,
    pub metrics_port: u16,
    log: PathBuf,
}

impl ApiProcess {
    /// Starts the binary in a clean environment on `db` (the test
    /// environment, JSON logs at info, then `customise`) and waits for
    /// `/readyz` to answer 200.
    pub async fn start(db: &TestDb, customise: impl FnOnce(&mut HashMap<String, String>)) -> Self {
        Self::start_with_descriptors(db, None, customise).await
    }

    /// [`Self::start`], with the process's open-file limit lowered to
    /// `descriptors` when given (through the shell's `ulimit`).
    pub async fn start_with_descriptors(
        db: &TestDb,
        descriptors: Option<u64>,
        customise: impl FnOnce(&mut HashMap<String, String>),
    ) -> Self {
        let (port, metrics_port) = (free_port(), free_port());
        let env = super::test_env(db, |env| {
            env.insert("LISTEN_ADDR".into(), format!("127.0.0.1:{port}"));
            env.insert("METRICS_ADDR".into(), format!("127.0.0.1:{metrics_port}"));
            env.insert("LOG_LEVEL".into(), "info".into());
            env.insert("LOG_FORMAT".into(), "json".into());
            customise(env);
        });
        let log = db.dir().join("api.log");
        let log_file = std::fs::File::create(&log).unwrap();
        // Set by Cargo for the api crate's own tests; this module is also
        // compiled into the worker's, which do not start the api binary.
        #[allow(clippy::option_env_unwrap)] // deliberate: see above
        let binary = option_env!("CARGO_BIN_EXE_api").expect("the api binary is built for the api's tests");
        let mut command = match descriptors {
            Some(limit) => {
                let mut shell = Command::new("sh");
                shell.args(["-c", &format!("ulimit -n {limit} && exec \"$0\""), binary]);
                shell
            }
            None => Command::new(binary),
        };
        let child = command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&env)
            .current_dir(db.dir())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap();
        let mut api = Self { child, port, metrics_port, log };
        api.wait_until_ready().await;
        api
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn wait_until_ready(&mut self) {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
        let url = format!("http://127.0.0.1:{}/readyz", self.port);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the api exited before it was ready ({status}):\n{}", self.log());
            }
            if let Ok(response) = http.get(&url).send().await
                && response.status() == 200
            {
                return;
            }
            assert!(Instant::now() < deadline, "/readyz never answered 200:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn sigterm(&self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits until the api serves `n` requests at once (its in-flight gauge):
    /// a request still in the listen backlog is not in flight yet.
    pub async fn wait_for_in_flight(&self, n: u64) {
        let url = format!("http://127.0.0.1:{}/metrics", self.metrics_port);
        let in_flight = || async {
            let Ok(response) = reqwest::get(&url).await else { return false };
            let text = response.text().await.unwrap_or_default();
            text.lines()
                .find_map(|line| line.strip_prefix("http_requests_in_flight "))
                .and_then(|value| value.trim().parse::<f64>().ok())
                .is_some_and(|value| value >= n as f64)
        };
        super::wait_until(&format!("{n} request(s) in flight"), Duration::from_secs(10), in_flight).await;
    }

    /// Waits until the api has logged that SIGTERM began the drain.
    pub async fn wait_for_drain(&self) {
        let draining = || async { self.log().contains("shutdown requested; draining") };
        super::wait_until("the api acknowledged SIGTERM", Duration::from_secs(10), draining).await;
    }

    /// Polls for the exit for up to `limit`; returns the status and how long it took.
    pub async fn wait_for_exit(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, started.elapsed());
            }
            assert!(
                started.elapsed() < limit,
                "the api did not exit within {limit:?} of being asked to:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
