//! What each job kind does. A handler returns the job's output, or an
//! error that is retried unless it is permanent.

mod export;

use std::time::Duration;

use chrono::Utc;
use shared_core::db::backup;
use shared_core::db::jobs::{self, Job};
use shared_core::db::users;
use shared_core::email::{Email, Mailer, templates};
use shared_core::jobs::kinds::{JobKind, NoopPayload, PasswordRecoveryPayload, SendEmailPayload};

use crate::Context;

/// A job's stored output: (body, content type).
pub type Output = Option<(String, &'static str)>;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth another attempt (SMTP down, database busy).
    #[error("{0}")]
    Retryable(String),
    /// Will fail the same way every time (unknown kind, bad payload).
    #[error("{0}")]
    Permanent(String),
}

impl From<sqlx::Error> for JobError {
    fn from(err: sqlx::Error) -> Self {
        Self::Retryable(format!("database: {err}"))
    }
}

fn mailer(ctx: &Context) -> Result<&Mailer, JobError> {
    ctx.mailer.as_ref().ok_or_else(|| {
        JobError::Retryable("email is not configured on the worker (SMTP_HOST, EMAILS_FROM_EMAIL)".into())
    })
}

/// Sends `email` for `job`. The job's id gives the email its Message-ID, so
/// a rerun after a crash sends a copy recognisable as one. A rejection no
/// retry can fix fails the job at once.
async fn send(mailer: &Mailer, email: &Email, job: &Job) -> Result<(), JobError> {
    mailer.send(email, Some(job.id)).await.map_err(|e| {
        if e.is_permanent() { JobError::Permanent(e.to_string()) } else { JobError::Retryable(e.to_string()) }
    })
}

pub async fn execute(ctx: &Context, job: &Job) -> Result<Output, JobError> {
    let kind =
        JobKind::parse(&job.kind).ok_or_else(|| JobError::Permanent(format!("unknown job kind {}", job.kind)))?;
    let payload = || job.payload.0.clone();
    match kind {
        JobKind::Noop => {
            let NoopPayload { sleep_ms } =
                serde_json::from_value(payload()).map_err(|e| JobError::Permanent(e.to_string()))?;
            tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
            Ok(None)
        }
        JobKind::SendEmail => {
            let SendEmailPayload { to, subject, html } =
                serde_json::from_value(payload()).map_err(|e| JobError::Permanent(e.to_string()))?;
            send(mailer(ctx)?, &Email { to, subject, html }, job).await?;
            Ok(None)
        }
        JobKind::PasswordRecovery => {
            let PasswordRecoveryPayload { email, token } =
                serde_json::from_value(payload()).map_err(|e| JobError::Permanent(e.to_string()))?;
            // An address nobody has gets nothing, and the api answered the
            // same either way.
            let Some(user) = users::find_by_email(&ctx.db, &email).await? else { return Ok(None) };
            let mailer = mailer(ctx)?;
            let message = templates::reset_password(&ctx.settings, &user.email, &token);
            send(mailer, &message, job).await?;
            Ok(None)
        }
        JobKind::ItemsExport => {
            let owner = job.owner_id.ok_or_else(|| JobError::Permanent("an export needs an owner".into()))?;
            Ok(Some((export::items_csv(&ctx.db, owner).await?, "text/csv; charset=utf-8")))
        }
        JobKind::PurgeJobs => {
            let before = Utc::now() - ctx.settings.worker.job_retention;
            let purged = jobs::purge_finished(&ctx.db, before).await?;
            tracing::info!(purged, "purged finished jobs past retention");
            Ok(None)
        }
        JobKind::SqliteBackup => {
            let worker = &ctx.settings.worker;
            let report = backup::sqlite_backup(&ctx.db, &worker.backup_dir, worker.backup_keep)
                .await
                .map_err(|e| JobError::Retryable(e.to_string()))?;
            tracing::info!(path = %report.path.display(), bytes = report.bytes, "backup written and checked");
            Ok(None)
        }
    }
}
