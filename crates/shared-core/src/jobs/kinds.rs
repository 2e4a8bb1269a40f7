//! The job kinds, their payloads, and who may submit which.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// Delivers one email (every email of Part A goes through it).
    SendEmail,
    /// Mails a reset link if the address belongs to a user. The api queues
    /// one for every recovery request, known address or not, so that the
    /// answer takes the same work either way; the lookup happens here.
    PasswordRecovery,
    /// CSV of the owner's items, fetched through the jobs API.
    ItemsExport,
    /// Does nothing (optionally sleeps): smoke tests and benchmarks.
    Noop,
    /// Maintenance: deletes finished jobs past the retention.
    PurgeJobs,
    /// Maintenance: online backup of a SQLite database.
    SqliteBackup,
}

impl JobKind {
    pub const ALL: [Self; 6] =
        [Self::SendEmail, Self::PasswordRecovery, Self::ItemsExport, Self::Noop, Self::PurgeJobs, Self::SqliteBackup];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SendEmail => "send_email",
            Self::PasswordRecovery => "password_recovery",
            Self::ItemsExport => "items_export",
            Self::Noop => "noop",
            Self::PurgeJobs => "purge_jobs",
            Self::SqliteBackup => "sqlite_backup",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// Whether a user may submit this kind through the API: exports for
    /// everyone, noop for superusers, internal kinds for nobody.
    pub fn submittable_by(self, superuser: bool) -> bool {
        match self {
            Self::ItemsExport => true,
            Self::Noop => superuser,
            Self::SendEmail | Self::PasswordRecovery | Self::PurgeJobs | Self::SqliteBackup => false,
        }
    }
}

/// Longest a noop may sleep: enough for tests that need a job in flight.
pub const NOOP_MAX_SLEEP_MS: u64 = 600_000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoopPayload {
    #[serde(default)]
    pub sleep_ms: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemsExportPayload {}

/// The address a recovery was asked for, and the reset token for it (made
/// by the api, whose SECRET_KEY verifies it later).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PasswordRecoveryPayload {
    pub email: String,
    pub token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendEmailPayload {
    pub to: String,
    pub subject: String,
    pub html: String,
}

/// Checks a user-submitted payload for `kind`; the message says what is wrong.
pub fn validate_payload(kind: JobKind, payload: &Value) -> Result<(), String> {
    match kind {
        JobKind::Noop => {
            let parsed: NoopPayload = serde_json::from_value(payload.clone()).map_err(|e| e.to_string())?;
            if parsed.sleep_ms > NOOP_MAX_SLEEP_MS {
                return Err(format!("sleep_ms must be at most {NOOP_MAX_SLEEP_MS}"));
            }
            Ok(())
        }
        JobKind::ItemsExport => {
            serde_json::from_value::<ItemsExportPayload>(payload.clone()).map(drop).map_err(|e| e.to_string())
        }
        JobKind::SendEmail => {
            serde_json::from_value::<SendEmailPayload>(payload.clone()).map(drop).map_err(|e| e.to_string())
        }
        JobKind::PasswordRecovery => {
            serde_json::from_value::<PasswordRecoveryPayload>(payload.clone()).map(drop).map_err(|e| e.to_string())
        }
        JobKind::PurgeJobs | JobKind::SqliteBackup => Ok(()),
    }
}
