//! `sqlite_backup` (maintenance schedule, SQLite only): an online backup of
//! the database into `BACKUP_DIR`, checked, keeping `BACKUP_KEEP` of them.

use super::NoPayload;
use crate::db::backup;
use crate::db::jobs::Job;
use crate::jobs::kind::{Context, JobError, Kind, Output, Submitters};

pub struct SqliteBackup;

impl Kind for SqliteBackup {
    const NAME: &'static str = "sqlite_backup";
    const SUBMITTERS: Submitters = Submitters::Nobody;
    type Payload = NoPayload;

    async fn perform(ctx: &Context<'_>, _job: &Job, _payload: NoPayload) -> Result<Output, JobError> {
        let worker = &ctx.settings.worker;
        let report = backup::sqlite_backup(ctx.db, &worker.backup_dir, worker.backup_keep).await?;
        tracing::info!(path = %report.path.display(), bytes = report.bytes, "backup written and checked");
        Ok(None)
    }
}
