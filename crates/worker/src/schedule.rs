//! Maintenance schedules, every `SCAN_INTERVAL_MINUTES`: purge finished jobs
//! past retention and, on SQLite, an online backup. Every worker ticks; the
//! one that inserts a slot's row first enqueues its job, so each slot runs
//! once however many workers there are.

use chrono::Utc;
use shared_core::db::jobs::NewJob;
use shared_core::db::{Backend, workers};
use shared_core::jobs::kinds::{NoPayload, PurgeJobs, SqliteBackup};
use shared_core::jobs::{enqueue, internal_job};
use tokio::sync::watch;

use crate::Context;

/// Slot rows older than this many slots are pruned.
const KEEP_SLOTS: i64 = 100;

/// The jobs this deployment schedules, one per slot each.
fn schedules(ctx: &Context) -> Vec<NewJob<NoPayload>> {
    let settings = &ctx.settings.worker;
    let mut jobs = vec![internal_job::<PurgeJobs>(NoPayload {}, settings)];
    if ctx.db.backend() == Backend::Sqlite && !ctx.db.is_read_only() {
        jobs.push(internal_job::<SqliteBackup>(NoPayload {}, settings));
    }
    jobs
}

/// Claims the current slot of every schedule; returns the kinds this worker enqueued.
pub async fn tick(ctx: &Context, now_secs: i64) -> Result<Vec<&'static str>, sqlx::Error> {
    let interval = ctx.settings.worker.scan_interval.as_secs().max(1) as i64;
    let slot = now_secs / interval;
    let mut enqueued = Vec::new();
    for job in schedules(ctx) {
        if workers::claim_slot(&ctx.db, job.kind, slot, &ctx.id).await? {
            enqueue(&ctx.db, &job).await?;
            workers::prune_slots(&ctx.db, job.kind, slot - KEEP_SLOTS).await?;
            enqueued.push(job.kind);
        }
    }
    Ok(enqueued)
}

pub async fn run(ctx: &Context, mut stop: watch::Receiver<bool>) {
    let interval = ctx.settings.worker.scan_interval.as_secs().max(1);
    loop {
        let now = Utc::now().timestamp();
        match tick(ctx, now).await {
            Ok(kinds) if !kinds.is_empty() => tracing::info!(?kinds, "scheduled maintenance jobs"),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "schedule tick failed"),
        }
        // Wake at the next slot boundary (or within a minute, to retry a failed tick).
        let until_next = interval - (now as u64 % interval);
        let sleep = std::time::Duration::from_secs(until_next.min(60));
        tokio::select! {
            () = tokio::time::sleep(sleep) => {},
            _ = stop.changed() => return,
        }
    }
}
