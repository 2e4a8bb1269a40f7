//! Test support (feature `test-support`, and this crate's own tests): real
//! protocol peers on loopback for what cannot run here, an SMTP server and a
//! Sentry ingestion endpoint, that record what the binaries send them; and
//! [`python`], the virtualenv of the Python tools the tests call.

pub mod python;
mod sentry;
mod smtp;

pub use self::sentry::SentryCatcher;
pub use smtp::{CaughtMessage, SmtpCatcher};
