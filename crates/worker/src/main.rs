use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use shared_core::config::vars::{self, ReadBy};
use shared_core::db::{Db, backup};
use shared_core::process;

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
    /// Exit 0 when a worker on this host has a fresh heartbeat, 1 otherwise.
    Healthcheck,
    /// Take an online backup of the SQLite database into BACKUP_DIR now.
    Backup,
    /// Check FILE and put it in place of the SQLite database (stop the api and worker first).
    Restore { file: PathBuf },
}

fn main() -> ExitCode {
    let command = Cli::command().after_help(vars::help_text(ReadBy::Worker));
    let cli = Cli::from_arg_matches(&command.get_matches()).unwrap_or_else(|err| err.exit());
    let loaded = match process::load_settings(ReadBy::Worker) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let _reporting = process::init_logging(&loaded);
    let settings = loaded.settings;
    process::run(async {
        match cli.command.unwrap_or(Command::Run) {
            Command::Run => worker::run(settings, shared_core::shutdown::signal()).await,
            Command::Healthcheck => {
                let db = Db::connect(&settings.database).await?;
                if worker::heartbeat::healthy(&db, &worker::host_name()).await? {
                    Ok(())
                } else {
                    Err(anyhow::anyhow!("no fresh worker heartbeat on this host"))
                }
            }
            Command::Backup => {
                let db = Db::connect(&settings.database).await?;
                let report =
                    backup::sqlite_backup(&db, &settings.worker.backup_dir, settings.worker.backup_keep).await?;
                println!("{}", report.path.display());
                Ok(())
            }
            Command::Restore { file } => {
                let target = sqlite_path(settings.database.url.expose())?;
                let report = backup::sqlite_restore(&file, &target).await?;
                println!("restored {} into {} (integrity {})", file.display(), target.display(), report.integrity);
                for (table, rows) in report.row_counts {
                    println!("  {table}: {rows} rows");
                }
                Ok(())
            }
        }
    })
}

/// The file of a `sqlite:` DATABASE_URL.
fn sqlite_path(url: &str) -> anyhow::Result<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"));
    let rest =
        rest.ok_or_else(|| anyhow::anyhow!("restore needs a sqlite: DATABASE_URL; for Postgres use pg_restore"))?;
    Ok(PathBuf::from(rest.split('?').next().unwrap_or(rest)))
}
