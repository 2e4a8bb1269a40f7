//! `purge_jobs` (maintenance schedule): deletes finished jobs past
//! `JOB_RETENTION_DAYS`.

use chrono::Utc;

use super::NoPayload;
use crate::db::jobs::{self, Job};
use crate::jobs::kind::{Context, JobError, Kind, Output, Submitters};

pub struct PurgeJobs;

impl Kind for PurgeJobs {
    const NAME: &'static str = "purge_jobs";
    const SUBMITTERS: Submitters = Submitters::Nobody;
    type Payload = NoPayload;

    async fn perform(ctx: &Context<'_>, _job: &Job, _payload: NoPayload) -> Result<Output, JobError> {
        let before = Utc::now() - ctx.settings.worker.job_retention;
        let purged = jobs::purge_finished(ctx.db, before).await?;
        tracing::info!(purged, "purged finished jobs past retention");
        Ok(None)
    }
}
