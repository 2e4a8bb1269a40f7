//! Every job kind, one module each, registered in [`job_kinds!`] below.
//!
//! Adding a kind: write a module here with a type implementing
//! [`Kind`](super::kind::Kind) (see `items_export.rs`), and add its line to
//! the list at the bottom. Parsing, the submit check, payload validation,
//! the worker's dispatch and the OpenAPI enums all come from that list.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::kind::{Context, JobError, Kind, Output, Submitters};
use crate::db::jobs::Job;

/// The payload of a kind that takes none: `{}`, nothing else.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoPayload {}

/// Checks a submitted payload against kind `K`: its type, then its limits.
/// (`&Value` is a serde deserializer: the payload is read in place, not cloned.)
fn validate<K: Kind>(payload: &Value) -> Result<(), String> {
    let parsed = K::Payload::deserialize(payload).map_err(|e| e.to_string())?;
    K::check(&parsed)
}

/// Runs one attempt of `job` as kind `K`.
async fn perform<K: Kind>(ctx: &Context<'_>, job: &Job) -> Result<Output, JobError> {
    let payload = K::Payload::deserialize(&job.payload.0)?;
    K::perform(ctx, job, payload).await
}

/// Declares the kind modules and the [`JobKind`] enum over them.
macro_rules! job_kinds {
    ($($variant:ident => $module:ident::$kind:ident),+ $(,)?) => {
        $(pub mod $module;)+
        $(pub use $module::$kind;)+

        /// Every registered kind, as a value (what a row's `kind` names).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum JobKind {
            $($variant),+
        }

        impl JobKind {
            pub const ALL: &[Self] = &[$(Self::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => <$kind as Kind>::NAME),+
                }
            }

            pub fn submitters(self) -> Submitters {
                match self {
                    $(Self::$variant => <$kind as Kind>::SUBMITTERS),+
                }
            }

            /// Checks a user-submitted payload; the message says what is wrong.
            pub fn validate(self, payload: &Value) -> Result<(), String> {
                match self {
                    $(Self::$variant => validate::<$kind>(payload)),+
                }
            }

            /// Runs one attempt of `job`, whose kind this is.
            pub async fn perform(self, ctx: &Context<'_>, job: &Job) -> Result<Output, JobError> {
                match self {
                    $(Self::$variant => perform::<$kind>(ctx, job).await),+
                }
            }
        }
    };
}

impl JobKind {
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.as_str() == text)
    }

    /// Whether a user may submit this kind through the API.
    pub fn submittable_by(self, superuser: bool) -> bool {
        self.submitters().allow(superuser)
    }
}

job_kinds! {
    SendEmail => send_email::SendEmail,
    PasswordRecovery => password_recovery::PasswordRecovery,
    ItemsExport => items_export::ItemsExport,
    Noop => noop::Noop,
    PurgeJobs => purge_jobs::PurgeJobs,
    SqliteBackup => sqlite_backup::SqliteBackup,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_name_and_parses_back() {
        for kind in JobKind::ALL {
            assert_eq!(JobKind::parse(kind.as_str()), Some(*kind));
        }
        let mut names: Vec<_> = JobKind::ALL.iter().map(|kind| kind.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), JobKind::ALL.len(), "{names:?}");
        assert_eq!(JobKind::parse("no_such_kind"), None);
    }

    #[test]
    fn a_payload_is_checked_against_its_kind() {
        assert_eq!(JobKind::ItemsExport.validate(&serde_json::json!({})), Ok(()));
        assert!(JobKind::ItemsExport.validate(&serde_json::json!({ "x": 1 })).is_err());
        assert_eq!(JobKind::Noop.validate(&serde_json::json!({ "sleep_ms": 5 })), Ok(()));
        let too_long = serde_json::json!({ "sleep_ms": noop::NOOP_MAX_SLEEP_MS + 1 });
        assert_eq!(JobKind::Noop.validate(&too_long), Err("sleep_ms must be at most 600000".to_owned()));
    }

    #[test]
    fn only_exports_and_superusers_noops_are_submittable() {
        let submittable = |superuser| {
            JobKind::ALL
                .iter()
                .filter(|kind| kind.submittable_by(superuser))
                .map(|kind| kind.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(submittable(false), ["items_export"]);
        assert_eq!(submittable(true), ["items_export", "noop"]);
    }
}
