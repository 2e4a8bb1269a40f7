//! The worker's own commands, run as real processes: `healthcheck` from the
//! heartbeat row, `backup` and `restore` of a SQLite database, `count-rows`,
//! and its error reports to Sentry.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

#[path = "../../api/tests/common/mod.rs"]
mod common;
mod support;

use std::process::Command;
use std::time::Duration;

use common::{TestDb, on_both_backends, test_env};
use shared_core::db::Backend;
use shared_core::testing::SentryCatcher;
use support::{WorkerProcess, migrated};

on_both_backends!(
    healthcheck_follows_the_heartbeat,
    a_job_failed_for_good_is_reported_to_sentry,
    count_rows_prints_the_data_tables_and_needs_a_user_table
);

fn worker_command(
    db: &TestDb,
    args: &[&str],
    customise: impl FnOnce(&mut std::collections::HashMap<String, String>),
) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_worker"));
    command
        .args(args)
        .env_clear()
        .envs(test_env(db, customise))
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(db.dir());
    command
}

async fn healthcheck_follows_the_heartbeat(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    migrated(&test_db).await;
    let healthcheck = || worker_command(&test_db, &["healthcheck"], |_| {}).output().unwrap().status.success();
    assert!(!healthcheck(), "no worker has beaten yet");
    let mut worker = WorkerProcess::start(&test_db, |_| {});
    let mut healthy = false;
    for _ in 0..50 {
        if healthcheck() {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(healthy, "a running worker is healthy");
    worker.signal("TERM");
    assert!(worker.wait_exit(Duration::from_secs(10)).await.success());
    assert!(!healthcheck(), "a stopped worker removes its heartbeat");
}

/// `SENTRY_DSN` outside local: a job that fails for good is an error event
/// naming the job, received by an ingestion endpoint of the test's own.
async fn a_job_failed_for_good_is_reported_to_sentry(backend: Backend) {
    let catcher = SentryCatcher::start().await;
    let test_db = TestDb::new(backend).await;
    let db = migrated(&test_db).await;
    // A payload the API would refuse, written straight to the queue: the
    // worker cannot run it, ever.
    let mut broken = support::noop(0, 3);
    broken.payload = serde_json::json!({ "sleep_ms": "soon" });
    let (job, _) = shared_core::jobs::enqueue(&db, &broken).await.unwrap();
    let _worker = WorkerProcess::start(&test_db, |env| {
        env.insert("ENVIRONMENT".into(), "staging".into());
        env.insert("SENTRY_DSN".into(), catcher.dsn());
    });
    let id = job.id.to_string();
    let event = catcher
        .wait_for(Duration::from_secs(15), |e| e["tags"]["job_id"] == id.as_str())
        .await
        .unwrap_or_else(|| panic!("no event for job {id}; received {:?}", catcher.events()));
    assert_eq!(event["message"], "job failed for good", "{event}");
    assert_eq!(event["tags"]["kind"], "noop", "{event}");
    assert_eq!(event["environment"], "staging", "{event}");
}

#[tokio::test]
async fn backup_then_restore_round_trips_a_sqlite_database() {
    let test_db = TestDb::new(Backend::Sqlite).await;
    let db = migrated(&test_db).await;
    shared_core::jobs::enqueue(&db, &support::noop(0, 1)).await.unwrap();
    db.close().await;
    let backups = test_db.dir().join("backups");
    let backup = worker_command(&test_db, &["backup"], |env| {
        env.insert("BACKUP_DIR".into(), backups.display().to_string());
    })
    .output()
    .unwrap();
    assert!(backup.status.success(), "{}", String::from_utf8_lossy(&backup.stderr));
    let file = String::from_utf8(backup.stdout).unwrap().trim().to_owned();
    assert!(file.starts_with(&backups.display().to_string()) && file.ends_with(".db"), "{file}");

    let target = TestDb::new(Backend::Sqlite).await;
    let restore = worker_command(&target, &["restore", &file], |_| {}).output().unwrap();
    assert!(restore.status.success(), "{}", String::from_utf8_lossy(&restore.stderr));
    let report = String::from_utf8(restore.stdout).unwrap();
    assert!(report.contains("integrity ok") && report.contains("jobs: 1 rows"), "{report}");
    let restored = target.connect().await;
    assert_eq!(support::count_status(&restored, shared_core::db::jobs::JobStatus::Queued).await, 1);
}

async fn count_rows_prints_the_data_tables_and_needs_a_user_table(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = migrated(&test_db).await;
    shared_core::jobs::enqueue(&db, &support::noop(0, 1)).await.unwrap();
    db.close().await;
    let count_rows = |db: &TestDb, args: &[&str]| {
        let output = worker_command(db, &[&["count-rows"], args].concat(), |_| {}).output().unwrap();
        (output.status.success(), String::from_utf8(output.stdout).unwrap(), String::from_utf8(output.stderr).unwrap())
    };
    let (ok, out, err) = count_rows(&test_db, &[]);
    assert!(ok, "{err}");
    assert_eq!(out, "user     0\nitem     0\njobs     1\n");

    // An empty database (nothing migrated) has no "user" table.
    let empty = TestDb::new(backend).await;
    let (ok, out, err) = count_rows(&empty, &[]);
    assert!(!ok && out.is_empty() && err.contains("the database has no"), "{out}{err}");

    // --database: another database of the configured server, here the migrated one.
    let name = test_db.url.rsplit('/').next().unwrap();
    let (ok, out, err) = count_rows(&empty, &["--database", name]);
    match backend {
        Backend::Postgres => assert!(ok && out.ends_with("jobs     1\n"), "{out}{err}"),
        Backend::Sqlite => assert!(!ok && err.contains("--database needs a Postgres DATABASE_URL"), "{err}"),
    }
}
