//! Logging set-up: JSON lines for machines, human-readable text for a person
//! at a terminal. Span fields (the request id among them) appear on every
//! line logged inside the span.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber, writing to stderr. Safe to call more than
/// once (tests build many apps in one process); only the first call takes
/// effect. Colours only on a terminal: escape codes in a log file or a
/// container's log are noise.
pub fn init(level: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let terminal = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(terminal);
    let pretty = match format {
        LogFormat::Json => false,
        LogFormat::Pretty => true,
        LogFormat::PrettyOnTerminal => terminal,
    };
    let installed = if pretty {
        builder.try_init()
    } else {
        builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init()
    };
    drop(installed);
}
