//! What the `api` and the `worker` binaries share: configuration, the database
//! handle and its migrations, and telemetry set-up.

pub mod config;
pub mod db;
pub mod shutdown;
pub mod telemetry;

pub use config::Settings;
pub use db::Db;
