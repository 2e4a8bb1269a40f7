//! The `api` binary's command line, run as a real process.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::process::Command;

use common::api_process::free_port;
use common::{SECRET_KEY, TestDb};
use shared_core::config::vars::ReadBy;
use shared_core::db::Backend;

fn api(dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_api"));
    // A clean environment: only what each test sets, no .env from the repo.
    command.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).current_dir(dir);
    command
}

#[test]
fn help_documents_every_variable() {
    let dir = tempfile::tempdir().unwrap();
    let output = api(dir.path()).arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for var in shared_core::config::vars::VARS.iter().filter(|v| v.read_by != ReadBy::Worker) {
        assert!(help.contains(var.name), "{} missing from --help", var.name);
    }
    assert!(help.contains("<NAME>_FILE"));
}

#[test]
fn config_check_lists_every_problem_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let output = api(dir.path())
        .args(["config", "check"])
        .env("ENVIRONMENT", "production")
        .env("SECRET_KEY", "changethis")
        .env("DATABASE_URL", "mysql://nope")
        .env("REQUEST_TIMEOUT_SECONDS", "soon")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    for needle in ["SECRET_KEY", "FIRST_SUPERUSER_PASSWORD", "DATABASE_URL", "REQUEST_TIMEOUT_SECONDS"] {
        assert!(stderr.contains(needle), "{needle} not named in:\n{stderr}");
    }
}

#[test]
fn config_check_prints_the_effective_configuration_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let output = api(dir.path())
        .args(["config", "check"])
        .env("ENVIRONMENT", "production")
        .env("SECRET_KEY", SECRET_KEY)
        .env("FIRST_SUPERUSER_PASSWORD", "a-real-password")
        .env("DATABASE_URL", "postgresql://app:db-password@db:5432/app")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("postgresql://app:[redacted]@db:5432/app"), "{stdout}");
    for secret in [SECRET_KEY, "a-real-password", "db-password"] {
        assert!(!stdout.contains(secret), "{secret} printed:\n{stdout}");
    }
}

#[test]
fn config_check_shows_the_settings_the_api_reads_as_they_are_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let output = api(dir.path()).args(["config", "check"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let shown: Vec<&str> = stdout.lines().filter_map(|line| line.split_whitespace().next()).collect();
    let worker_only = shared_core::config::vars::VARS.iter().filter(|v| v.read_by == ReadBy::Worker);
    for var in worker_only {
        assert!(!shown.contains(&var.name), "{} is the worker's, yet shown:\n{stdout}", var.name);
    }
    // Email is off by default, and STARTTLS would still be on once it is set.
    let line = |name: &str| stdout.lines().find(|l| l.split_whitespace().next() == Some(name)).unwrap_or_default();
    assert!(line("SMTP_TLS").ends_with(" true"), "{stdout}");
    assert!(line("SMTP_SSL").ends_with(" false"), "{stdout}");
    assert!(line("LISTEN_ADDR").ends_with(" 127.0.0.1:8000"), "local listens on loopback:\n{stdout}");
}

#[test]
fn a_short_first_superuser_password_stops_the_api_outside_local() {
    let dir = tempfile::tempdir().unwrap();
    let output = api(dir.path())
        .env("ENVIRONMENT", "production")
        .env("SECRET_KEY", SECRET_KEY)
        .env("FIRST_SUPERUSER_PASSWORD", "x")
        .env("DATABASE_URL", format!("sqlite:{}", dir.path().join("app.db").display()))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("FIRST_SUPERUSER_PASSWORD: is shorter than 8 characters"), "{stderr}");
    assert!(!dir.path().join("app.db").exists(), "refused before touching the database");
}

#[test]
fn dotenv_in_the_working_directory_is_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "PROJECT_NAME=\"From Dotenv\"\nLOG_LEVEL=debug\n").unwrap();
    let output = api(dir.path()).args(["config", "check"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("From Dotenv"), "{stdout}");
}

/// `cp .env.example .env` (README, compose.dev.yml) and the server's .env made
/// from compose/.env.example: the binaries read them as Compose does,
/// unquoted values with spaces included.
#[test]
fn the_example_env_files_work_as_shipped() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for example in [".env.example", "compose/.env.example"] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(root.join(example), dir.path().join(".env")).unwrap();
        // Production secrets come from files, never from .env.
        let output = api(dir.path())
            .args(["config", "check"])
            .env("SECRET_KEY", SECRET_KEY)
            .env("FIRST_SUPERUSER_PASSWORD", "a-real-password")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{example}: {}{stdout}", String::from_utf8_lossy(&output.stderr));
        assert!(stdout.contains("Full Stack FastAPI Project"), "{example}: {stdout}");
    }
}

#[test]
fn a_dotenv_line_compose_would_refuse_is_named_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "PROJECT_NAME=ok\nMY KEY=1\n").unwrap();
    let output = api(dir.path()).args(["config", "check"]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains(".env") && stderr.contains("line 2: key cannot contain a space"), "{stderr}");
}

#[tokio::test]
async fn migrate_then_healthcheck_against_a_running_api() {
    let db = TestDb::new(Backend::Sqlite).await;
    let dir = db.dir();
    let migrate = api(&dir).arg("migrate").env("DATABASE_URL", &db.url).output().unwrap();
    assert!(migrate.status.success(), "{}", String::from_utf8_lossy(&migrate.stderr));

    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let nobody_home = api(&dir).arg("healthcheck").env("LISTEN_ADDR", &listen).status().unwrap();
    assert!(!nobody_home.success(), "healthcheck must fail with no api listening");

    let mut server = api(&dir)
        .env("DATABASE_URL", &db.url)
        .env("LISTEN_ADDR", &listen)
        .env("METRICS_ADDR", "127.0.0.1:0")
        .env("MIGRATE_ON_START", "false")
        .spawn()
        .unwrap();
    let mut healthy = false;
    for _ in 0..100 {
        if api(&dir).arg("healthcheck").env("LISTEN_ADDR", format!("0.0.0.0:{port}")).status().unwrap().success() {
            healthy = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(healthy, "healthcheck never saw the api");
}
