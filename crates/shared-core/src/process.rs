//! What both binaries do around their command: read the settings (listing
//! every problem), set up logging, run on a tokio runtime, and turn the
//! outcome into an exit code.

use std::fmt::Display;
use std::future::Future;
use std::process::ExitCode;

use crate::config::vars::ReadBy;
use crate::config::{Loaded, Settings};
use crate::telemetry;

/// The settings, or the exit code after printing what is wrong with them.
pub fn load_settings(binary: ReadBy) -> Result<Loaded, ExitCode> {
    Settings::from_env(binary).map_err(|err| {
        eprintln!("{err}");
        ExitCode::FAILURE
    })
}

/// Logging (and error reporting) as configured, panics logged through it,
/// and the start-up warnings. Keep the returned guard for the process's
/// lifetime: dropping it flushes the error reports.
#[must_use]
pub fn init_logging(loaded: &Loaded) -> telemetry::ErrorReporting {
    let reporting = telemetry::init(&loaded.settings);
    std::panic::set_hook(Box::new(|info| tracing::error!(panic = %info, "panic")));
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    reporting
}

/// Runs `work` on a multi-threaded runtime; an error (with its causes) is
/// reported once, as a log line when logging is set up (a JSON line for the
/// log collector), else on stderr, and exits 1.
pub fn run<E: Display>(work: impl Future<Output = Result<(), E>>) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("the tokio runtime starts");
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if tracing::dispatcher::has_been_set() {
                tracing::error!(error = %format!("{err:#}"), "exiting");
            } else {
                eprintln!("error: {err:#}");
            }
            ExitCode::FAILURE
        }
    }
}
