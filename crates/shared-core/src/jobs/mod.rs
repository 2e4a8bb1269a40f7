//! The durable job queue: enqueueing (inside the caller's transaction),
//! retry timing and wake-ups. The SQL lives in `db::jobs`; the worker binary
//! claims and runs jobs.

pub mod kind;
pub mod kinds;
pub mod wake;

use std::time::Duration;

use rand::Rng;
use serde::Serialize;
use uuid::Uuid;

use crate::config::WorkerSettings;
use crate::db::jobs::{self, Job, JobStatus, NewJob};
use crate::db::{Db, Tx};
use kind::Kind;
use kinds::JobKind;

/// Inserts `job` in the caller's transaction and wakes the workers when the
/// transaction commits. Returns the job and whether it is new (an existing
/// one comes back for a repeated idempotency key).
pub async fn enqueue_in<P: Serialize + Sync>(tx: &mut Tx, job: &NewJob<P>) -> Result<(Job, bool), sqlx::Error> {
    let (job, created) = jobs::insert(tx, job).await?;
    if created {
        wake::notify_on_commit(tx).await?;
    }
    Ok((job, created))
}

/// [`enqueue_in`] in a transaction of its own.
pub async fn enqueue<P: Serialize + Sync>(db: &Db, job: &NewJob<P>) -> Result<(Job, bool), sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let enqueued = enqueue_in(&mut tx, job).await?;
    tx.commit().await?;
    Ok(enqueued)
}

/// An ownerless job of kind `K` to run now, with the kind's priority and
/// attempts: what the api and the schedules enqueue.
pub fn internal_job<K: Kind>(payload: K::Payload, settings: &WorkerSettings) -> NewJob<K::Payload> {
    NewJob {
        kind: K::NAME,
        payload,
        owner_id: None,
        priority: K::PRIORITY,
        run_at: None,
        max_attempts: K::max_attempts(settings),
        idempotency_key: None,
    }
}

/// How long to wait before attempt `attempts + 1`: exponential from `base`,
/// capped at an hour, with jitter (50–100 %) so that jobs failing together
/// do not retry in lockstep.
pub fn retry_delay(attempts: i32, base: Duration) -> Duration {
    const CAP: Duration = Duration::from_secs(3600);
    let exponent = u32::try_from(attempts.saturating_sub(1)).unwrap_or(0).min(20);
    let full = base.saturating_mul(2u32.saturating_pow(exponent)).min(CAP);
    full.mul_f64(rand::rng().random_range(0.5..=1.0))
}

/// A short, unique id for a worker process.
pub fn worker_id(host: &str) -> String {
    format!("{host}-{}-{}", std::process::id(), &Uuid::new_v4().simple().to_string()[..8])
}

/// Sets the `job_queue_depth{status, kind}` gauges from the table: both
/// binaries report it (the worker per heartbeat, the api per scrape).
pub async fn record_queue_depth(db: &Db) {
    match jobs::depth(db).await {
        Ok(rows) => {
            // A pair with no jobs returns no row; its gauge must read 0, not its last value.
            for status in JobStatus::ALL {
                for kind in JobKind::ALL.iter().copied() {
                    metrics::gauge!("job_queue_depth", "status" => status.as_str(), "kind" => kind.as_str()).set(0.0);
                }
            }
            for (status, kind, count) in rows {
                metrics::gauge!("job_queue_depth", "status" => status, "kind" => kind).set(count as f64);
            }
        }
        Err(err) => tracing::warn!(error = %err, "cannot read the queue depth"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_secs(2);
        for attempts in 1..=5 {
            let full = base * 2u32.pow(attempts as u32 - 1);
            let delay = retry_delay(attempts, base);
            assert!(delay >= full / 2 && delay <= full, "attempt {attempts}: {delay:?}");
        }
        assert!(retry_delay(40, base) <= Duration::from_secs(3600));
    }
}
