//! The claim loop: up to `WORKER_CONCURRENCY` jobs at once, each under a
//! lease that a keeper extends while it runs. On shutdown, claiming stops,
//! in-flight jobs get the grace period to finish, and the leases of those
//! that do not are handed back so another worker takes them at once.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use sentry::SentryFutureExt;
use shared_core::db;
use shared_core::db::jobs::{self, Job};
use shared_core::jobs::kind::{self, JobError, Output};
use shared_core::jobs::kinds::JobKind;
use shared_core::jobs::retry_delay;
use shared_core::jobs::wake::Waiter;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument;
use uuid::Uuid;

use crate::Context;

/// How often this worker returns expired leases (of crashed workers) to the queue.
const REAP_EVERY: Duration = Duration::from_secs(5);

pub struct Runner {
    ctx: Arc<Context>,
    slots: Arc<Semaphore>,
    /// Jobs this worker holds a lease on, to hand back if cut off.
    in_flight: Arc<Mutex<HashSet<Uuid>>>,
    slot_freed: Arc<Notify>,
}

impl Runner {
    pub fn new(ctx: Arc<Context>) -> Self {
        let concurrency = ctx.settings.worker.concurrency;
        Self {
            ctx,
            slots: Arc::new(Semaphore::new(concurrency)),
            in_flight: Arc::default(),
            slot_freed: Arc::default(),
        }
    }

    /// Runs jobs until `stop` turns true, then drains.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut tasks = JoinSet::new();
        let mut waiter = Waiter::new(&self.ctx.db).await;
        let mut last_reap: Option<Instant> = None;
        let mut outage = Outage::default();
        while !*stop.borrow() {
            if last_reap.is_none_or(|t| t.elapsed() >= REAP_EVERY) {
                match jobs::reap_expired_leases(&self.ctx.db, &self.ctx.id).await {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(jobs = n, "returned jobs with expired leases to the queue"),
                    // Claiming reports an outage; no need to say it twice.
                    Err(err) if db::is_unavailable(&err) => {}
                    Err(err) => tracing::warn!(error = %err, "cannot reap expired leases"),
                }
                last_reap = Some(Instant::now());
            }
            while tasks.try_join_next().is_some() {}

            let free = self.slots.available_permits();
            let claimed = if free > 0 {
                match self.claim(free, &mut tasks).await {
                    Ok(claimed) => {
                        outage.over();
                        claimed
                    }
                    Err(err) => {
                        let pause = outage.failed(&err);
                        tokio::select! {
                            () = tokio::time::sleep(pause) => {}
                            _ = stop.changed() => {}
                        }
                        continue;
                    }
                }
            } else {
                0
            };
            if free > 0 && claimed == free {
                continue; // the queue may hold more: claim again at once
            }
            tokio::select! {
                () = waiter.wait(), if free > claimed => {},
                () = self.slot_freed.notified() => {},
                _ = stop.changed() => {},
            }
        }
        self.drain(tasks).await;
    }

    /// Claims up to `free` jobs and starts them; returns how many.
    async fn claim(&self, free: usize, tasks: &mut JoinSet<()>) -> Result<usize, sqlx::Error> {
        let lease_until = Utc::now() + self.ctx.settings.worker.job_lease;
        let batch = jobs::claim(&self.ctx.db, &self.ctx.id, free as i64, lease_until).await?;
        let claimed = batch.len();
        for job in batch {
            let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                // Cannot happen (we claimed at most `free`), but never run unbounded.
                let _ = jobs::hand_back(&self.ctx.db, job.id, &self.ctx.id).await;
                continue;
            };
            self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).insert(job.id);
            let (ctx, in_flight, slot_freed) = (self.ctx.clone(), self.in_flight.clone(), self.slot_freed.clone());
            tasks.spawn(async move {
                let id = job.id;
                run_one(&ctx, job).await;
                in_flight.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                drop(permit);
                slot_freed.notify_one();
            });
        }
        Ok(claimed)
    }

    async fn drain(&self, mut tasks: JoinSet<()>) {
        let grace = self.ctx.settings.shutdown_grace;
        tracing::info!(in_flight = tasks.len(), grace_seconds = grace.as_secs(), "draining in-flight jobs");
        let finished = tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if finished.is_ok() {
            return;
        }
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        let unfinished: Vec<Uuid> = self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).drain().collect();
        for id in unfinished {
            match jobs::hand_back(&self.ctx.db, id, &self.ctx.id).await {
                Ok(_) => tracing::warn!(job_id = %id, "grace period over; job handed back to the queue"),
                Err(err) => {
                    tracing::error!(job_id = %id, error = %err, "cannot hand the job back; its lease will expire")
                }
            }
        }
    }
}

/// Runs one claimed job to its recorded outcome, in a span naming it and an
/// error-report scope tagged with it (jobs run side by side, so each needs
/// its own scope).
async fn run_one(ctx: &Context, job: Job) {
    let span = tracing::info_span!("job", job_id = %job.id, kind = %job.kind, attempt = job.attempts);
    let reports = Arc::new(sentry::Hub::new_from_top(sentry::Hub::current()));
    reports.configure_scope(|scope| {
        scope.set_tag("job_id", job.id);
        scope.set_tag("kind", &job.kind);
        scope.set_tag("attempt", job.attempts);
    });
    run_and_record(ctx, job).instrument(span).bind_hub(reports).await;
}

async fn run_and_record(ctx: &Context, job: Job) {
    let started = Instant::now();
    let waited = (Utc::now() - job.run_at).to_std().unwrap_or_default();
    metrics::histogram!("job_wait_seconds", "kind" => job.kind.clone()).record(waited.as_secs_f64());
    metrics::gauge!("jobs_in_flight").increment(1.0);

    let outcome = tokio::select! {
        outcome = perform(ctx, &job) => Some(outcome),
        () = keep_lease(ctx, job.id) => None,
    };
    metrics::gauge!("jobs_in_flight").decrement(1.0);
    let Some(outcome) = outcome else {
        tracing::warn!("lease lost while running; another worker owns the job now");
        return;
    };
    let elapsed = started.elapsed().as_secs_f64();
    let record = match outcome {
        Ok(output) => {
            metrics::histogram!("job_run_seconds", "kind" => job.kind.clone(), "outcome" => "succeeded")
                .record(elapsed);
            Outcome::Succeeded(output)
        }
        Err(err) => {
            let retry = matches!(err, JobError::Retryable(_)) && job.attempts < job.max_attempts;
            let retry_at = retry.then(|| Utc::now() + retry_delay(job.attempts, ctx.settings.worker.job_backoff_base));
            let outcome = if retry { "retried" } else { "failed" };
            metrics::histogram!("job_run_seconds", "kind" => job.kind.clone(), "outcome" => outcome).record(elapsed);
            if retry {
                metrics::counter!("job_retries_total", "kind" => job.kind.clone()).increment(1);
                tracing::warn!(error = %err, retry_at = ?retry_at, "job failed; will retry");
            } else {
                metrics::counter!("job_dead_letters_total", "kind" => job.kind.clone()).increment(1);
                tracing::error!(error = %err, attempts = job.attempts, "job failed for good");
            }
            Outcome::Failed { error: err.to_string(), retry_at }
        }
    };
    // The work is done: rerunning it (a second email) must not follow from
    // a database that is briefly away. Keep trying to record the outcome,
    // and keep the lease meanwhile; only losing the lease, or the worker
    // being stopped, ends the attempt.
    let recorded = tokio::select! {
        recorded = record_until_stored(ctx, &job, &record) => recorded,
        () = keep_lease(ctx, job.id) => Ok(false),
    };
    match recorded {
        Ok(true) => crate::heartbeat::count_done(),
        Ok(false) => tracing::warn!("the outcome was not recorded: the lease had expired and the job was taken over"),
        Err(err) => {
            // Not an outage but a refusal: give the job back for another
            // attempt rather than leave it running under a dead lease.
            tracing::error!(error = %err, "cannot record the outcome; the job will run again");
            if let Err(err) = jobs::hand_back(&ctx.db, job.id, &ctx.id).await {
                tracing::warn!(error = %err, "cannot hand the job back; another worker will reap it");
            }
        }
    }
}

/// One attempt of `job` by its kind.
async fn perform(ctx: &Context, job: &Job) -> Result<Output, JobError> {
    let kind =
        JobKind::parse(&job.kind).ok_or_else(|| JobError::Permanent(format!("unknown job kind {}", job.kind)))?;
    let view = kind::Context { db: &ctx.db, settings: &ctx.settings, mailer: ctx.mailer.as_ref() };
    kind.perform(&view, job).await
}

/// How a job ended, to be written down.
enum Outcome {
    Succeeded(Output),
    Failed { error: String, retry_at: Option<chrono::DateTime<Utc>> },
}

/// Writes `outcome`, retrying while the database is unreachable; `Ok(false)`
/// when the lease was lost meanwhile.
async fn record_until_stored(ctx: &Context, job: &Job, outcome: &Outcome) -> Result<bool, sqlx::Error> {
    let mut outage = Outage::default();
    loop {
        let stored = match outcome {
            Outcome::Succeeded(output) => {
                let output = output.as_ref().map(|(body, content_type)| (body.as_str(), *content_type));
                jobs::succeed(&ctx.db, job.id, &ctx.id, output).await
            }
            Outcome::Failed { error, retry_at } => jobs::fail(&ctx.db, job.id, &ctx.id, error, *retry_at).await,
        };
        match stored {
            Err(err) if db::is_unavailable(&err) => tokio::time::sleep(outage.failed(&err)).await,
            stored => {
                outage.over();
                return stored;
            }
        }
    }
}

/// A stretch of failures to reach the database: logged when it starts and
/// when it ends, with pauses between attempts that double from 250 ms to 5 s.
#[derive(Default)]
struct Outage {
    failures: u32,
}

impl Outage {
    const FIRST_PAUSE: Duration = Duration::from_millis(250);
    const LONGEST_PAUSE: Duration = Duration::from_secs(5);

    fn failed(&mut self, err: &sqlx::Error) -> Duration {
        if self.failures == 0 {
            tracing::warn!(error = %err, "the database is unreachable; retrying with backoff");
        }
        self.failures = self.failures.saturating_add(1);
        (Self::FIRST_PAUSE * 2u32.saturating_pow(self.failures.min(8) - 1)).min(Self::LONGEST_PAUSE)
    }

    fn over(&mut self) {
        if self.failures > 0 {
            tracing::info!(failed_attempts = self.failures, "the database answers again");
        }
        self.failures = 0;
    }
}

/// Extends the job's lease every third of its length; returns only when the
/// lease is lost (so the caller abandons the job).
async fn keep_lease(ctx: &Context, id: Uuid) {
    let lease = ctx.settings.worker.job_lease;
    let mut tick = tokio::time::interval(lease / 3);
    tick.tick().await;
    loop {
        tick.tick().await;
        match jobs::extend_lease(&ctx.db, id, &ctx.id, Utc::now() + lease).await {
            Ok(true) => {}
            Ok(false) => return,
            // The database may be briefly unreachable; the lease still has time.
            Err(err) => tracing::warn!(error = %err, "cannot extend the lease"),
        }
    }
}
