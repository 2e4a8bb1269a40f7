//! What a job kind is: the [`Kind`] trait every kind module implements, the
//! context its attempts run in, and the error that says whether an attempt
//! is worth repeating.

use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Settings;
use crate::config::WorkerSettings;
use crate::db::Db;
use crate::db::backup::BackupError;
use crate::db::jobs::Job;
use crate::email::{EmailError, Mailer};

/// One kind of job: its name in the `jobs` table and the API, its typed
/// payload, who may submit it, its retry policy and what an attempt does.
/// A kind is registered with one line in [`super::kinds`].
pub trait Kind {
    /// The `kind` column and the API's `kind` field.
    const NAME: &'static str;
    /// Who may submit it through `POST /api/v1/jobs/`.
    const SUBMITTERS: Submitters;
    /// What a job of this kind is given, stored as JSON in `payload`.
    type Payload: Serialize + DeserializeOwned + Send + Sync;
    /// Ready jobs of higher priority are claimed first: emails (10) before
    /// exports and maintenance (0).
    const PRIORITY: i32 = 0;

    /// Limits serde cannot express; checked when a user submits a job.
    fn check(_payload: &Self::Payload) -> Result<(), String> {
        Ok(())
    }

    /// The retry policy: how many attempts a job of this kind gets when its
    /// submitter does not say (every kind takes `JOB_MAX_ATTEMPTS` today).
    /// Which failures are retried at all is the [`JobError`] an attempt returns.
    fn max_attempts(settings: &WorkerSettings) -> i32 {
        settings.job_max_attempts
    }

    /// Runs one attempt; the output, if any, is stored with the job.
    fn perform(
        ctx: &Context<'_>,
        job: &Job,
        payload: Self::Payload,
    ) -> impl Future<Output = Result<Output, JobError>> + Send;
}

/// Who may submit a kind through the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitters {
    Anyone,
    Superusers,
    /// Only the api and the worker themselves enqueue it.
    Nobody,
}

impl Submitters {
    pub fn allow(self, superuser: bool) -> bool {
        match self {
            Self::Anyone => true,
            Self::Superusers => superuser,
            Self::Nobody => false,
        }
    }
}

/// What an attempt may use.
pub struct Context<'a> {
    pub db: &'a Db,
    pub settings: &'a Settings,
    /// `None` when email is not configured on this worker.
    pub mailer: Option<&'a Mailer>,
}

impl Context<'_> {
    /// The mailer; without one, email jobs wait (retry) for a worker that has it.
    pub fn mailer(&self) -> Result<&Mailer, JobError> {
        self.mailer.ok_or_else(|| {
            JobError::Retryable("email is not configured on the worker (SMTP_HOST, EMAILS_FROM_EMAIL)".into())
        })
    }
}

/// A job's stored output: (body, content type).
pub type Output = Option<(String, &'static str)>;

/// Why an attempt failed, and so whether another one can help. The `From`
/// conversions decide it per error type, so a kind's `perform` just uses `?`.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth another attempt (SMTP down, database busy).
    #[error("{0}")]
    Retryable(String),
    /// Will fail the same way every time (bad payload, mailbox refused).
    #[error("{0}")]
    Permanent(String),
}

impl From<sqlx::Error> for JobError {
    fn from(err: sqlx::Error) -> Self {
        Self::Retryable(format!("database: {err}"))
    }
}

impl From<EmailError> for JobError {
    fn from(err: EmailError) -> Self {
        if err.is_permanent() { Self::Permanent(err.to_string()) } else { Self::Retryable(err.to_string()) }
    }
}

impl From<BackupError> for JobError {
    fn from(err: BackupError) -> Self {
        Self::Retryable(err.to_string())
    }
}

/// A payload that does not parse as its kind's type can never run.
impl From<serde_json::Error> for JobError {
    fn from(err: serde_json::Error) -> Self {
        Self::Permanent(err.to_string())
    }
}
