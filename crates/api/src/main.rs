use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use api::startup::Application;
use shared_core::config::Loaded;
use shared_core::config::vars::{self, ReadBy};
use shared_core::db::{Db, migrate};
use shared_core::process;

/// mimalloc rather than glibc's malloc: a request allocates on one runtime
/// thread and frees on another, and a page of items allocates hundreds of
/// small values at once, both of which send glibc's malloc to its arena
/// locks (futex calls in every request, 4.5 a page on Postgres). Measured in
/// docs/benchmarks.md, stop 26. Password hashing takes its 64 MiB from the
/// system allocator all the same (`shared_core::auth::password`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The HTTP api of the stack: users, items, jobs, wire-compatible with the FastAPI template.
#[derive(Parser)]
#[command(name = "api", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate (unless MIGRATE_ON_START=false), then serve HTTP (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Exit 0 when the api on LISTEN_ADDR answers /healthz, 1 otherwise.
    Healthcheck,
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Print the effective configuration (secrets redacted); exit 1 when invalid.
    Check,
}

fn main() -> ExitCode {
    let command = Cli::command().after_help(vars::help_text(ReadBy::Api));
    let cli = Cli::from_arg_matches(&command.get_matches()).unwrap_or_else(|err| err.exit());
    let loaded = match process::load_settings(ReadBy::Api) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let subcommand = cli.command.unwrap_or(Command::Serve);
    // Held until the process exits, so a fatal error is reported too.
    let _reporting = matches!(subcommand, Command::Serve | Command::Migrate).then(|| process::init_logging(&loaded));
    process::run(async {
        match subcommand {
            Command::Serve => serve(loaded).await,
            Command::Migrate => run_migrations(loaded).await,
            Command::Config { action: ConfigAction::Check } => {
                print_config(&loaded);
                Ok(())
            }
            Command::Healthcheck => {
                if api::healthcheck::probe(loaded.settings.http.listen_addr).await {
                    Ok(())
                } else {
                    Err(anyhow::anyhow!("unhealthy"))
                }
            }
        }
    })
}

async fn serve(loaded: Loaded) -> anyhow::Result<()> {
    let app = Application::build(loaded.settings).await?;
    tracing::info!(
        address = %app.address(),
        metrics = %app.metrics_address(),
        backend = app.state().db.backend().as_str(),
        "listening"
    );
    app.run_until(shared_core::shutdown::signal()).await?;
    Ok(())
}

async fn run_migrations(loaded: Loaded) -> anyhow::Result<()> {
    let db = Db::connect(&loaded.settings.database).await?;
    migrate::run(&db).await?;
    let status = migrate::status(&db).await?;
    tracing::info!(pending = status.pending.len(), "migrations applied");
    db.close().await;
    Ok(())
}

fn print_config(loaded: &Loaded) {
    println!("configuration is valid");
    for (name, value) in loaded.settings.effective(ReadBy::Api) {
        println!("  {name:<33} {value}");
    }
    for warning in &loaded.warnings {
        println!("warning: {warning}");
    }
}
