use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use shared_core::config::vars::{self, ReadBy};
use shared_core::db::{Db, backup, copy, tables};
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
    #[command(flatten)]
    Configured(Configured),
    /// Copy the rows of "user", item and jobs from a SQLite database of this stack into a
    /// Postgres database migrated to the same version, in one transaction.
    CopyToPostgres(CopyArgs),
}

/// The commands that work on the configured database (DATABASE_URL and the rest of the settings).
#[derive(Subcommand)]
enum Configured {
    /// Run jobs until SIGTERM (the default).
    Run,
    /// Exit 0 when a worker on this host has a fresh heartbeat, 1 otherwise.
    Healthcheck,
    /// Take an online backup of the SQLite database into BACKUP_DIR now.
    Backup,
    /// Check FILE and put it in place of the SQLite database (stop the api and worker first).
    Restore { file: PathBuf },
    /// Print the rows of "user", item and jobs in the configured database; exit 1 when it has no
    /// "user" table.
    CountRows {
        /// Count in this database of the configured Postgres server instead (restore.sh checks a
        /// database restored beside the live one before swapping it in).
        #[arg(long)]
        database: Option<String>,
    },
}

#[derive(Args)]
struct CopyArgs {
    /// Empty "user", item and jobs in the target first (in the same transaction). Without it a
    /// target with rows is refused.
    #[arg(long)]
    replace: bool,
    /// The SQLite file (a path or a sqlite: URL): a backup from `worker backup`, or the database
    /// with the api and worker stopped.
    sqlite_file: String,
    /// postgres:// URL of the target, migrated by `api migrate` (not `api serve`, which creates the
    /// first superuser). Give the password in PGPASSWORD to keep it off the command line.
    #[arg(value_parser = postgres_url)]
    postgres_url: String,
}

fn main() -> ExitCode {
    let command = Cli::command().after_help(vars::help_text(ReadBy::Worker));
    let cli = Cli::from_arg_matches(&command.get_matches()).unwrap_or_else(|err| err.exit());
    match cli.command.unwrap_or(Command::Configured(Configured::Run)) {
        Command::Configured(command) => configured(command),
        // Between two databases named on the command line: no settings, and
        // no log but the outcome (an error goes to stderr).
        Command::CopyToPostgres(args) => process::run(async move {
            let file = sqlite_path(&args.sqlite_file).unwrap_or_else(|| PathBuf::from(&args.sqlite_file));
            let copied = copy::sqlite_to_postgres(&file, &args.postgres_url, args.replace).await?;
            let counts: Vec<String> = copied.iter().map(|(table, rows)| format!("{table}={rows}")).collect();
            println!("copied {}", counts.join(" "));
            Ok::<_, copy::CopyError>(())
        }),
    }
}

fn configured(command: Configured) -> ExitCode {
    let loaded = match process::load_settings(ReadBy::Worker) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let _reporting = process::init_logging(&loaded);
    let settings = loaded.settings;
    process::run(async {
        match command {
            Configured::Run => worker::run(settings, shared_core::shutdown::signal()).await,
            Configured::Healthcheck => {
                let db = Db::connect(&settings.database).await?;
                if worker::heartbeat::healthy(&db, &worker::host_name()).await? {
                    Ok(())
                } else {
                    Err(anyhow::anyhow!("no fresh worker heartbeat on this host"))
                }
            }
            Configured::Backup => {
                let db = Db::connect(&settings.database).await?;
                let report =
                    backup::sqlite_backup(&db, &settings.worker.backup_dir, settings.worker.backup_keep).await?;
                println!("{}", report.path.display());
                Ok(())
            }
            Configured::Restore { file } => {
                let url = settings.database.url.expose();
                let target = sqlite_path(url).ok_or_else(|| {
                    anyhow::anyhow!("restore needs a sqlite: DATABASE_URL; for Postgres use pg_restore")
                })?;
                let report = backup::sqlite_restore(&file, &target).await?;
                println!("restored {} into {} (integrity {})", file.display(), target.display(), report.integrity);
                for (table, rows) in report.row_counts {
                    println!("  {table}: {rows} rows");
                }
                Ok(())
            }
            Configured::CountRows { database } => {
                let target = match database {
                    None => settings.database.clone(),
                    Some(name) => settings
                        .database
                        .on_database(&name)
                        .ok_or_else(|| anyhow::anyhow!("--database needs a Postgres DATABASE_URL"))?,
                };
                let db = Db::connect(&target).await?;
                let counts = tables::row_counts(&db).await;
                db.close().await;
                let counts = counts?;
                for (table, rows) in &counts {
                    println!("{table:<8} {rows}");
                }
                if counts.iter().any(|(table, _)| *table == "user") {
                    Ok(())
                } else {
                    Err(anyhow::anyhow!("the database has no \"user\" table"))
                }
            }
        }
    })
}

/// The file of a `sqlite:` URL (`sqlite:///data/app.db`, `sqlite:./x.db`,
/// query parameters dropped); `None` for anything else.
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    Some(PathBuf::from(rest.split('?').next().unwrap_or(rest)))
}

/// A usage error (exit 2) for anything but a Postgres URL.
fn postgres_url(url: &str) -> Result<String, String> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(url.to_owned())
    } else {
        Err("must start with postgres:// or postgresql://".to_owned())
    }
}
