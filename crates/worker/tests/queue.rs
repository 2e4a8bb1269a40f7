//! The queue under failure: killed workers, two workers sharing a backlog,
//! retries and dead letters, cancel racing a claim, graceful drain,
//! schedules run once. Every test runs on SQLite and Postgres.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

#[path = "../../api/tests/common/mod.rs"]
mod common;
mod support;

use std::sync::Arc;
use std::time::Duration;

use common::{TestDb, on_both_backends, settings_for, with_smtp};
use shared_core::db::Backend;
use shared_core::db::jobs::NewJob;
use shared_core::db::jobs::{self, JobStatus};
use shared_core::jobs::enqueue;
use shared_core::jobs::kind::Kind;
use shared_core::jobs::kinds::SendEmail;
use shared_core::jobs::kinds::send_email::SendEmailPayload;
use shared_core::testing::SmtpCatcher;
use shared_core::with_pool;
use support::{WorkerProcess, count_status, migrated, noop, spawn_worker, wait_for_job};

on_both_backends!(
    a_job_whose_worker_is_killed_is_picked_up_after_its_lease_and_completes,
    two_workers_drain_2000_jobs_each_claimed_once,
    failing_deliveries_are_retried_with_backoff_and_the_email_arrives_once,
    a_job_out_of_attempts_is_failed_with_its_last_error,
    cancel_racing_a_claim_never_runs_a_cancelled_job,
    sigterm_lets_in_flight_jobs_finish,
    sigterm_hands_back_jobs_that_outlast_the_grace_period,
    a_schedule_slot_runs_once_with_two_workers,
);

async fn a_job_whose_worker_is_killed_is_picked_up_after_its_lease_and_completes(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = migrated(&test_db).await;
    let (job, _) = enqueue(&db, &noop(4000, 3)).await.unwrap();
    let lease = |env: &mut std::collections::HashMap<String, String>| {
        env.insert("JOB_LEASE_SECONDS".into(), "2".into());
    };
    let mut first = WorkerProcess::start(&test_db, lease);
    let running = wait_for_job(&db, job.id, Duration::from_secs(15), |j| j.status == JobStatus::Running).await;
    first.signal("KILL");
    first.wait_exit(Duration::from_secs(5)).await;

    let _second = WorkerProcess::start(&test_db, lease);
    let done = wait_for_job(&db, job.id, Duration::from_secs(30), |j| j.status == JobStatus::Succeeded).await;
    assert_eq!(done.attempts, 2, "the killed attempt counts, the second one finished");
    assert_ne!(done.lease_owner, running.lease_owner, "another worker finished it");
}

async fn two_workers_drain_2000_jobs_each_claimed_once(backend: Backend) {
    const JOBS: usize = 2000;
    let test_db = TestDb::new(backend).await;
    let db = migrated(&test_db).await;
    let mut tx = db.begin_write().await.unwrap();
    for _ in 0..JOBS {
        shared_core::jobs::enqueue_in(&mut tx, &noop(0, 3)).await.unwrap();
    }
    tx.commit().await.unwrap();

    let concurrency = |env: &mut std::collections::HashMap<String, String>| {
        env.insert("WORKER_CONCURRENCY".into(), "8".into());
        env.insert("JOB_LEASE_SECONDS".into(), "60".into());
    };
    let _a = WorkerProcess::start(&test_db, concurrency);
    let _b = WorkerProcess::start(&test_db, concurrency);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    while count_status(&db, JobStatus::Succeeded).await < JOBS as i64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not drained: {} succeeded",
            count_status(&db, JobStatus::Succeeded).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (claimed_again, workers): (i64, i64) = with_pool!(&db, |pool| sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM jobs WHERE attempts <> 1), (SELECT COUNT(DISTINCT lease_owner) FROM jobs)"
    )
    .fetch_one(pool)
    .await)
    .unwrap();
    assert_eq!(claimed_again, 0, "a job was claimed more than once");
    assert_eq!(workers, 2, "both workers took a share");
}

/// A `send_email` job with `max_attempts`.
fn email_job(max_attempts: i32) -> NewJob<SendEmailPayload> {
    let payload =
        SendEmailPayload { to: "someone@example.com".into(), subject: "Hello".into(), html: "<p>hi</p>".into() };
    NewJob {
        kind: SendEmail::NAME,
        payload,
        owner_id: None,
        priority: 10,
        run_at: None,
        max_attempts,
        idempotency_key: None,
    }
}

async fn failing_deliveries_are_retried_with_backoff_and_the_email_arrives_once(backend: Backend) {
    let catcher = SmtpCatcher::start().await;
    catcher.refuse_next(2);
    let test_db = TestDb::new(backend).await;
    let db = migrated(&test_db).await;
    let (job, _) = enqueue(&db, &email_job(5)).await.unwrap();
    let worker = spawn_worker(&test_db, |env| {
        with_smtp(env, catcher.port());
        env.insert("JOB_BACKOFF_BASE_MS".into(), "300".into());
    });
    let done = wait_for_job(&db, job.id, Duration::from_secs(30), |j| j.status == JobStatus::Succeeded).await;
    assert_eq!(done.attempts, 3, "two refusals, then delivery");
    // Backoff: at least half of 300 ms + 600 ms passed between the first try and the success.
    let spread = done.finished_at.unwrap() - job.created_at;
    assert!(spread >= chrono::Duration::milliseconds(450), "retries came too fast: {spread}");
    // Succeeded is final, and a stopped worker has finished all it started:
    // what the catcher holds now is every delivery there will be.
    worker.stop().await;
    let messages = catcher.messages();
    assert_eq!(messages.len(), 1, "delivered exactly once");
    assert_eq!(messages[0].to, vec!["someone@example.com".to_owned()]);
}

async fn a_job_out_of_attempts_is_failed_with_its_last_error(backend: Backend) {
    let catcher = SmtpCatcher::start().await;
    catcher.refuse_next(100);
    let test_db = TestDb::new(backend).await;
    let db = migrated(&test_db).await;
    let (job, _) = enqueue(&db, &email_job(3)).await.unwrap();
    let worker = spawn_worker(&test_db, |env| with_smtp(env, catcher.port()));
    let failed = wait_for_job(&db, job.id, Duration::from_secs(30), |j| j.status == JobStatus::Failed).await;
    assert_eq!(failed.attempts, 3);
    assert!(failed.finished_at.is_some());
    assert!(failed.last_error.as_deref().unwrap_or_default().contains("SMTP"), "{:?}", failed.last_error);
    assert!(catcher.messages().is_empty());
    worker.stop().await;
}

async fn cancel_racing_a_claim_never_runs_a_cancelled_job(backend: Backend) {
    const JOBS: usize = 300;
    let test_db = TestDb::new(backend).await;
    let db = migrated(&test_db).await;
    let mut ids = Vec::new();
    for _ in 0..JOBS {
        ids.push(enqueue(&db, &noop(0, 1)).await.unwrap().0.id);
    }
    let worker = spawn_worker(&test_db, |env| {
        env.insert("WORKER_CONCURRENCY".into(), "8".into());
    });
    let db = Arc::new(db);
    let cancels: Vec<_> = ids
        .iter()
        .map(|id| {
            let (db, id) = (db.clone(), *id);
            tokio::spawn(async move { jobs::cancel(&db, id).await.unwrap().is_some() })
        })
        .collect();
    let mut cancelled = Vec::new();
    for (id, cancel) in ids.iter().zip(cancels) {
        cancelled.push((*id, cancel.await.unwrap()));
    }
    for (id, was_cancelled) in &cancelled {
        let job = wait_for_job(&db, *id, Duration::from_secs(60), |j| {
            matches!(j.status, JobStatus::Succeeded | JobStatus::Cancelled)
        })
        .await;
        if *was_cancelled {
            assert_eq!(job.status, JobStatus::Cancelled);
            assert!(job.started_at.is_none(), "a cancelled job ran: {job:?}");
        } else {
            assert_eq!(job.status, JobStatus::Succeeded, "cancel said no, so the job must have run");
        }
    }
    worker.stop().await;
}

async fn sigterm_lets_in_flight_jobs_finish(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = migrated(&test_db).await;
    let (job, _) = enqueue(&db, &noop(1500, 3)).await.unwrap();
    let mut worker = WorkerProcess::start(&test_db, |env| {
        env.insert("SHUTDOWN_GRACE_SECONDS".into(), "10".into());
    });
    wait_for_job(&db, job.id, Duration::from_secs(15), |j| j.status == JobStatus::Running).await;
    worker.signal("TERM");
    let status = worker.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "{status:?}");
    let done = jobs::find(&db, job.id).await.unwrap().unwrap();
    assert_eq!((done.status.as_str(), done.attempts), ("succeeded", 1));
}

async fn sigterm_hands_back_jobs_that_outlast_the_grace_period(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = migrated(&test_db).await;
    let (job, _) = enqueue(&db, &noop(60_000, 3)).await.unwrap();
    let mut worker = WorkerProcess::start(&test_db, |env| {
        env.insert("SHUTDOWN_GRACE_SECONDS".into(), "1".into());
    });
    wait_for_job(&db, job.id, Duration::from_secs(15), |j| j.status == JobStatus::Running).await;
    worker.signal("TERM");
    let status = worker.wait_exit(Duration::from_secs(8)).await;
    assert!(status.success(), "{status:?}");
    let back = jobs::find(&db, job.id).await.unwrap().unwrap();
    assert_eq!(back.status, JobStatus::Queued, "handed back, not left running until its lease expires");
    assert_eq!(back.attempts, 0, "the interrupted attempt does not count");
    assert!(back.lease_owner.is_none());
}

async fn a_schedule_slot_runs_once_with_two_workers(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = migrated(&test_db).await;
    let settings = Arc::new(settings_for(&test_db, |_| {}));
    let context = |id: &str| worker::Context {
        db: db.clone(),
        settings: settings.clone(),
        mailer: None,
        id: id.to_owned(),
        host: "test".to_owned(),
    };
    let (a, b) = (context("worker-a"), context("worker-b"));
    let now = chrono::Utc::now().timestamp();
    let (from_a, from_b) = tokio::join!(worker::schedule::tick(&a, now), worker::schedule::tick(&b, now));
    let enqueued = from_a.unwrap().len() + from_b.unwrap().len();
    let expected = if backend == Backend::Sqlite { 2 } else { 1 }; // purge, plus the backup on SQLite
    assert_eq!(enqueued, expected);
    assert_eq!(count_status(&db, JobStatus::Queued).await, expected as i64);
    // The same slot again: nothing new. The next slot: runs again.
    assert!(worker::schedule::tick(&a, now).await.unwrap().is_empty());
    let next = now + settings.worker.scan_interval.as_secs() as i64;
    assert_eq!(worker::schedule::tick(&b, next).await.unwrap().len(), expected);
}
