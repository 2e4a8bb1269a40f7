//! Test support (feature `test-support`, and this crate's own tests): real
//! protocol peers on loopback for what cannot run here, an SMTP server and a
//! Sentry ingestion endpoint, that record what the binaries send them;
//! [`python`], the virtualenv of the Python tools the tests call; and
//! [`on_both_backends!`](crate::on_both_backends), which runs a test on
//! each database.

pub mod python;
mod sentry;
mod smtp;

pub use self::sentry::SentryCatcher;
pub use smtp::{CaughtMessage, SmtpCatcher};

/// Runs `async fn $name(backend: Backend)` once per database as
/// `$name::sqlite` and `$name::postgres`, for the tests of every crate.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::db::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::db::Backend::Postgres).await
            }
        }
    )*};
}
