//! What the `api` and the `worker` binaries share: configuration, the database
//! handle and its migrations, and telemetry set-up.

pub mod auth;
pub mod config;
pub mod db;
pub mod email;
pub mod jobs;
pub mod metrics;
pub mod process;
pub mod rfc3339;
pub mod shutdown;
pub mod telemetry;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;

pub use config::Settings;
pub use db::Db;
