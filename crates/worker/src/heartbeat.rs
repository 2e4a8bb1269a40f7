//! The worker's heartbeat row (id, host, started, last seen, jobs done),
//! refreshed every few seconds; `worker healthcheck` reads it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use shared_core::db::{Db, workers};
use tokio::sync::watch;

use crate::Context;

pub const INTERVAL: Duration = Duration::from_secs(5);
/// A worker silent for longer is unhealthy (several missed beats).
pub const STALE_AFTER: Duration = Duration::from_secs(30);

/// Jobs finished since the last beat, added to the row at the next one.
static DONE_SINCE_BEAT: AtomicI64 = AtomicI64::new(0);

pub fn count_done() {
    DONE_SINCE_BEAT.fetch_add(1, Ordering::Relaxed);
}

pub async fn run(ctx: &Context, mut stop: watch::Receiver<bool>) {
    let started_at = Utc::now();
    let mut tick = tokio::time::interval(INTERVAL);
    let mut last_ok = Utc::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {},
            _ = stop.changed() => break,
        }
        let done = DONE_SINCE_BEAT.swap(0, Ordering::Relaxed);
        match workers::heartbeat(&ctx.db, &ctx.id, &ctx.host, started_at, done).await {
            Ok(()) => last_ok = Utc::now(),
            Err(err) => {
                DONE_SINCE_BEAT.fetch_add(done, Ordering::Relaxed);
                tracing::warn!(error = %err, "heartbeat failed");
            }
        }
        let age = (Utc::now() - last_ok).num_milliseconds() as f64 / 1000.0;
        metrics::gauge!("worker_heartbeat_age_seconds").set(age);
        shared_core::jobs::record_queue_depth(&ctx.db).await;
    }
    if let Err(err) = workers::remove(&ctx.db, &ctx.id).await {
        tracing::warn!(error = %err, "cannot remove the heartbeat row");
    }
}

/// `worker healthcheck`: a worker on this host beat recently.
pub async fn healthy(db: &Db, host: &str) -> Result<bool, sqlx::Error> {
    let last: Option<DateTime<Utc>> = workers::last_seen_on(db, host).await?;
    Ok(last.is_some_and(|seen| (Utc::now() - seen).to_std().unwrap_or_default() < STALE_AFTER))
}
