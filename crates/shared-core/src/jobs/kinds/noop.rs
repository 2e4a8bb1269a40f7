//! `noop`: does nothing, optionally after a sleep; for smoke tests and
//! benchmarks, submitted by superusers.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::db::jobs::Job;
use crate::jobs::kind::{Context, JobError, Kind, Output, Submitters};

pub struct Noop;

/// Longest a noop may sleep: enough for tests that need a job in flight.
pub const NOOP_MAX_SLEEP_MS: u64 = 600_000;

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoopPayload {
    #[serde(default)]
    pub sleep_ms: u64,
}

impl Kind for Noop {
    const NAME: &'static str = "noop";
    const SUBMITTERS: Submitters = Submitters::Superusers;
    type Payload = NoopPayload;

    fn check(payload: &NoopPayload) -> Result<(), String> {
        if payload.sleep_ms > NOOP_MAX_SLEEP_MS {
            return Err(format!("sleep_ms must be at most {NOOP_MAX_SLEEP_MS}"));
        }
        Ok(())
    }

    async fn perform(_ctx: &Context<'_>, _job: &Job, payload: NoopPayload) -> Result<Output, JobError> {
        tokio::time::sleep(Duration::from_millis(payload.sleep_ms)).await;
        Ok(None)
    }
}
