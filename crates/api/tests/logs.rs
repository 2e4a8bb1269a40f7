//! What the `api` binary logs, as a real process: JSON lines without colour
//! codes when its stderr is a pipe, human-readable text with colours on a
//! terminal (a pseudo-terminal made by util-linux `script`), the path on 404
//! lines, a rounded latency, and a fatal start-up error said once, with its
//! cause.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn api(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_api"));
    // ENVIRONMENT and LOG_FORMAT unset: the defaults of `cargo run -p api`.
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", format!("sqlite:{}", dir.join("app.db").display()))
        .env("FIRST_SUPERUSER_PASSWORD", common::SUPERUSER_PASSWORD)
        .current_dir(dir);
    command
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn wait_until_ready(url: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while reqwest::get(url).await.is_err() {
        assert!(Instant::now() < deadline, "{url} did not answer within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs the api with its stderr piped and `LOG_LEVEL` as given (unset:
/// the default), sends it `requests` (path, expected status) once it
/// answers, stops it with SIGTERM and returns what it logged.
async fn logged_while_serving(log_level: Option<&str>, requests: &[(&str, u16)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut command = api(dir.path());
    command.env("LISTEN_ADDR", format!("127.0.0.1:{port}")).env("METRICS_ADDR", "127.0.0.1:0");
    if let Some(level) = log_level {
        command.env("LOG_LEVEL", level);
    }
    let child = command.stderr(Stdio::piped()).spawn().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_until_ready(&format!("{base}/healthz"), Duration::from_secs(30)).await;
    for (path, status) in requests {
        assert_eq!(reqwest::get(format!("{base}{path}")).await.unwrap().status(), *status, "{path}");
    }
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stderr).unwrap()
}

#[tokio::test]
async fn piped_logs_are_json_lines_without_colour_with_the_path_of_a_404() {
    let stderr = logged_while_serving(None, &[("/no/such/page?secret=1", 404), ("/healthz", 200)]).await;

    assert!(!stderr.contains('\u{1b}'), "colour codes in piped logs:\n{stderr}");
    let lines: Vec<Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("not a JSON line ({err}): {line}")))
        .collect();
    let finished: Vec<&Value> = lines.iter().filter(|l| l["message"] == "request finished").collect();
    let not_found = finished.iter().find(|l| l["span"]["status"] == 404).expect("a 404 line");
    assert_eq!(not_found["span"]["route"], "unmatched");
    assert_eq!(not_found["span"]["path"], "/no/such/page", "the path, without the query string");
    let healthz = finished.iter().find(|l| l["span"]["route"] == "/healthz").expect("a /healthz line");
    assert!(healthz["span"].get("path").is_none(), "paths only on 404 lines: {healthz}");
    // The layout docs/operations.md shows: the span's fields sorted by name, then its name.
    let raw = stderr.lines().find(|l| l.contains("request finished") && l.contains("/healthz")).unwrap();
    let span = &raw[raw.find(",\"span\":").unwrap()..];
    let fields = ["latency_ms", "method", "request_id", "route", "status", "name"].map(|f| format!("\"{f}\":"));
    let at: Vec<usize> =
        fields.iter().map(|f| span.find(f.as_str()).unwrap_or_else(|| panic!("{f} in {raw}"))).collect();
    assert!(at.is_sorted(), "{raw}");
    assert!(span.ends_with(r#""name":"request"}}"#), "{raw}");
    assert_eq!(healthz["span"].as_object().unwrap().len(), fields.len(), "{raw}");
    for line in &finished {
        let latency = line["span"]["latency_ms"].as_f64().unwrap();
        assert!(((latency * 100.0).round() - latency * 100.0).abs() < 1e-6, "latency_ms not rounded: {latency}");
    }
}

/// A filter that names the request's span lets its access lines through,
/// and nothing else at that level.
#[tokio::test]
async fn a_log_filter_on_the_request_span_keeps_the_access_lines() {
    let stderr = logged_while_serving(Some("warn,[request]=info"), &[("/api/v1/utils/health-check/", 200)]).await;
    let mut finished = stderr.lines().filter(|line| line.contains(r#""message":"request finished""#));
    assert!(finished.any(|line| line.contains("/api/v1/utils/health-check/")), "{stderr}");
    // `serve` logs "listening" at INFO, outside any span.
    assert!(!stderr.contains(r#""message":"listening""#), "an INFO line outside the span: {stderr}");
}

#[test]
fn on_a_terminal_the_logs_are_for_people() {
    let dir = tempfile::tempdir().unwrap();
    // `script` runs the command on a new pseudo-terminal and copies what it
    // writes there to its own stdout.
    let command = format!("exec {} migrate", env!("CARGO_BIN_EXE_api"));
    let api_env = api(dir.path());
    let env = api_env.get_envs().filter_map(|(key, value)| Some((key, value?)));
    let output = Command::new("script")
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .env_clear()
        .envs(env)
        .current_dir(dir.path())
        .output()
        .expect("util-linux script runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().find(|l| l.contains("migrations applied")).unwrap_or_else(|| panic!("no line:\n{text}"));
    assert!(!line.trim_start().starts_with('{'), "JSON on a terminal: {line}");
    assert!(line.contains("\u{1b}["), "no colours on a terminal: {line:?}");

    // The same command with its stderr piped: JSON.
    let piped = api(dir.path()).arg("migrate").output().unwrap();
    let stderr = String::from_utf8(piped.stderr).unwrap();
    let line = stderr.lines().find(|l| l.contains("migrations applied")).unwrap();
    assert!(serde_json::from_str::<Value>(line).is_ok(), "{line}");
}

#[test]
fn an_unreachable_database_is_reported_once_with_its_address() {
    let dir = tempfile::tempdir().unwrap();
    let closed = free_port();
    let started = Instant::now();
    let output = api(dir.path())
        .env("DATABASE_URL", format!("postgres://postgres@127.0.0.1:{closed}/app"))
        .env("DATABASE_ACQUIRE_TIMEOUT_SECONDS", "1")
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("METRICS_ADDR", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    let stderr = String::from_utf8(output.stderr).unwrap();
    let reported: Vec<&str> = stderr.lines().filter(|l| l.contains("cannot connect")).collect();
    assert_eq!(reported.len(), 1, "the error is printed once:\n{stderr}");
    let needle = format!("connection refused at 127.0.0.1:{closed}");
    assert_eq!(reported[0].matches(&needle).count(), 1, "{stderr}");
    assert!(!stderr.contains("pool timed out"), "{stderr}");
}
