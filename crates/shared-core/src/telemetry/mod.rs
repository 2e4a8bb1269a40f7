//! Logging set-up: JSON lines for machines, human-readable text for a person
//! at a terminal. Span fields (the request id among them) appear on every
//! line logged inside the span.
//!
//! With `SENTRY_DSN`, every ERROR event (a 500, a panic, a job failed for
//! good) also becomes a Sentry event, and WARN events its breadcrumbs. Only
//! what the log line says is sent: no request bodies, and the request
//! headers Sentry considers sensitive (Authorization, cookies) are left out.

mod batch_writer;
mod json_line;

use std::io::IsTerminal;

use sentry::integrations::tracing::{BreadcrumbLayer, ErrorLayer};
use tracing_subscriber::filter::{LevelFilter, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, Settings};

/// Keeps the log writer and the Sentry client alive. Dropping it writes out
/// every log line still queued and sends the error reports still queued
/// (for up to two seconds).
pub struct ErrorReporting {
    _log_writer: Option<batch_writer::Guard>,
    _sentry: Option<sentry::ClientInitGuard>,
}

/// Installs the global subscriber, writing to stderr, and, when configured,
/// the Sentry client. Safe to call more than once (tests build many apps in
/// one process); only the first call takes effect. Colours only on a
/// terminal: escape codes in a log file or a container's log are noise.
///
/// Lines are written in batches by a thread of their own
/// ([`batch_writer`]): a request does not wait on a system call for its log
/// line. Nothing is dropped, and the returned guard writes out the rest
/// when the process ends.
pub fn init(settings: &Settings) -> ErrorReporting {
    let reporting = settings.sentry_dsn.as_ref().map(|dsn| {
        let mut options = sentry::ClientOptions::default();
        options.release = Some(env!("CARGO_PKG_VERSION").into());
        options.environment = Some(settings.environment.as_str().into());
        options.send_default_pii = false;
        sentry::init((dsn.expose(), options))
    });
    // What an event is about (request id and route, job id and kind) is
    // tagged on the scope of each request and each job.
    let errors = reporting.is_some().then(|| ErrorLayer::new().with_filter(LevelFilter::ERROR));
    let breadcrumbs = reporting
        .is_some()
        .then(|| BreadcrumbLayer::new().with_filter(filter_fn(|metadata| *metadata.level() == tracing::Level::WARN)));

    let filter = EnvFilter::try_new(&settings.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    let terminal = std::io::stderr().is_terminal();
    let pretty = match settings.log_format {
        LogFormat::Json => false,
        LogFormat::Pretty => true,
        LogFormat::PrettyOnTerminal => terminal,
    };
    let (writer, log_writer) = batch_writer::start(std::io::stderr()).expect("the log writer thread starts");
    let fmt = if pretty {
        tracing_subscriber::fmt::layer().with_writer(writer).with_ansi(terminal).boxed()
    } else {
        json_line::JsonLines::new(writer).boxed()
    };
    let installed = tracing_subscriber::registry().with(filter).with(fmt).with(breadcrumbs).with(errors).try_init();
    ErrorReporting { _log_writer: installed.is_ok().then_some(log_writer), _sentry: reporting }
}
