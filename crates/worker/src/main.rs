use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use shared_core::config::vars::{self, ReadBy};
use shared_core::db::{Db, migrate};
use shared_core::{Settings, telemetry};

/// The background worker of the stack: durable jobs and schedules.
#[derive(Parser)]
#[command(name = "worker", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run jobs until SIGTERM (the default).
    Run,
}

fn main() -> ExitCode {
    let command = Cli::command().after_help(vars::help_text(ReadBy::Worker));
    let cli = Cli::from_arg_matches(&command.get_matches()).unwrap_or_else(|err| err.exit());
    let loaded = match Settings::from_env() {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::FAILURE;
        }
    };
    telemetry::init(&loaded.settings.log_level, loaded.settings.log_format);
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("the tokio runtime starts");
    let result = runtime.block_on(async {
        match cli.command.unwrap_or(Command::Run) {
            Command::Run => run(loaded.settings).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "exiting");
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    let db = Db::connect(&settings.database).await?;
    // The api owns migrations; a worker on a schema that is behind would run
    // jobs against tables it does not understand.
    migrate::verify(&db).await?;
    tracing::info!(backend = db.backend().as_str(), "worker ready; idle until SIGTERM");
    shared_core::shutdown::signal().await;
    db.close().await;
    tracing::info!("stopped");
    Ok(())
}
