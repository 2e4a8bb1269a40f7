//! Every environment variable the binaries read, in one table: its name,
//! its default, whether it is a secret, which binary reads it and its help.
//! The defaults `Settings::from_map` uses, `--help`, the `_FILE` rule for
//! secrets, `config check` and the table in docs/configuration.md
//! (scripts/config-table.py) all come from here, so a new variable is
//! documented the moment it is declared. A default written as prose ("random
//! in local") is worked out in code; every other one is parsed from here.

/// Which binary reads a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadBy {
    Both,
    Api,
    Worker,
}

#[derive(Debug)]
pub struct Var {
    pub name: &'static str,
    pub default: &'static str,
    /// Secrets may come from `<NAME>_FILE` and are never printed.
    pub secret: bool,
    pub read_by: ReadBy,
    pub help: &'static str,
}

impl Var {
    pub fn is_read_by(&self, binary: ReadBy) -> bool {
        self.read_by == ReadBy::Both || self.read_by == binary
    }
}

const fn var(name: &'static str, default: &'static str, read_by: ReadBy, help: &'static str) -> Var {
    Var { name, default, secret: false, read_by, help }
}

const fn secret(name: &'static str, default: &'static str, read_by: ReadBy, help: &'static str) -> Var {
    Var { name, default, secret: true, read_by, help }
}

use ReadBy::{Api, Both, Worker};

pub const VARS: &[Var] = &[
    var("ENVIRONMENT", "local", Both, "local, staging or production; outside local weak secrets stop the process"),
    var("FASTAPI_ENV", "", Both, "FastAPI compatibility: `development` means ENVIRONMENT=local"),
    var("PROJECT_NAME", "Full Stack FastAPI Project", Both, "shown in the API docs and emails"),
    secret("SECRET_KEY", "random in local", Both, "JWT signing key, at least 32 bytes; required outside local"),
    var("ACCESS_TOKEN_EXPIRE_MINUTES", "11520", Api, "access token lifetime"),
    var("EMAIL_RESET_TOKEN_EXPIRE_HOURS", "48", Api, "password-reset token lifetime"),
    var("FRONTEND_HOST", "http://localhost:5173", Both, "frontend origin: links in emails and a CORS origin"),
    var("BACKEND_CORS_ORIGINS", "", Api, "extra CORS origins, comma-separated (or a JSON list)"),
    secret("DATABASE_URL", "sqlite:./data/app.db", Both, "postgres://, postgresql:// or sqlite: URL"),
    var("POSTGRES_SERVER", "", Both, "FastAPI compatibility: builds DATABASE_URL when that is unset"),
    var("POSTGRES_PORT", "5432", Both, "FastAPI compatibility, with POSTGRES_SERVER"),
    var("POSTGRES_USER", "postgres", Both, "FastAPI compatibility, with POSTGRES_SERVER"),
    secret("POSTGRES_PASSWORD", "", Both, "FastAPI compatibility, with POSTGRES_SERVER"),
    var("POSTGRES_DB", "app", Both, "FastAPI compatibility, with POSTGRES_SERVER"),
    var("DATABASE_POOL_SIZE", "10", Both, "maximum database connections per process"),
    var("DATABASE_ACQUIRE_TIMEOUT_SECONDS", "5", Both, "how long a request waits for a free connection"),
    secret("REDIS_URL", "", Both, "redis://host:6379/0; unset means per-process rate limits"),
    var("REDIS_KEY_PREFIX", "app:", Both, "prefix of every Redis key this stack writes"),
    var("LISTEN_ADDR", "127.0.0.1:8000 in local, 0.0.0.0:8000 elsewhere", Api, "public HTTP listener"),
    var("METRICS_ADDR", "api 127.0.0.1:9100, worker 127.0.0.1:9101", Both, "Prometheus /metrics listener, private"),
    secret(
        "SENTRY_DSN",
        "",
        Both,
        "errors (500s, panics, failed jobs) are reported there, outside local as the template does",
    ),
    var("LOG_LEVEL", "info", Both, "tracing filter, e.g. `info` or `info,sqlx=warn`"),
    var("LOG_FORMAT", "local: pretty on a terminal, else json", Both, "json or pretty (no colours off a terminal)"),
    var("REQUEST_TIMEOUT_SECONDS", "30", Api, "a request running longer is answered 408"),
    var("MAX_BODY_BYTES", "1048576", Api, "larger request bodies are answered 413"),
    var("HTTP_HEADER_READ_TIMEOUT_SECONDS", "10", Api, "a request head must arrive within this (slow clients are cut)"),
    var(
        "HTTP_KEEP_ALIVE_TIMEOUT_SECONDS",
        "130",
        Api,
        "idle kept-alive connections close after this (above Caddy's 120)",
    ),
    var("HTTP_MAX_CONNECTIONS", "4096", Api, "open connections at most; the oldest idle one is closed for a new one"),
    var("MAX_IN_FLIGHT_REQUESTS", "1024", Api, "requests handled at once; more wait for a slot"),
    var("TRUSTED_PROXIES", "", Api, "comma-separated IPs or CIDRs whose X-Forwarded-For is believed"),
    var("MIGRATE_ON_START", "true", Api, "apply migrations before listening; false only verifies them"),
    var("SHUTDOWN_GRACE_SECONDS", "30", Both, "how long SIGTERM waits for in-flight work"),
    var("FIRST_SUPERUSER", "admin@example.com", Api, "superuser created at start when missing"),
    secret("FIRST_SUPERUSER_PASSWORD", "changethis", Api, "its password; outside local at least 8 characters"),
    var("SMTP_HOST", "", Both, "email is on when SMTP_HOST and EMAILS_FROM_EMAIL are set"),
    var("SMTP_PORT", "587", Both, "SMTP port"),
    var("SMTP_TLS", "true", Both, "STARTTLS"),
    var("SMTP_SSL", "false", Both, "implicit TLS (usually port 465)"),
    var("SMTP_USER", "", Both, "SMTP login"),
    secret("SMTP_PASSWORD", "", Both, "SMTP password"),
    var("EMAILS_FROM_EMAIL", "", Both, "sender address"),
    var("EMAILS_FROM_NAME", "PROJECT_NAME", Both, "sender name"),
    var("RATE_LIMIT_PER_MINUTE", "600", Api, "requests per client per rolling minute"),
    var("LOGIN_FAILURES_PER_ACCOUNT_PER_MINUTE", "10", Api, "failed logins and resets per address and account"),
    var("LOGIN_FAILURES_PER_CLIENT_PER_MINUTE", "100", Api, "failed logins and resets per address"),
    var("PASSWORD_RECOVERY_PER_CLIENT_PER_MINUTE", "20", Api, "password-recovery requests per address"),
    var("PASSWORD_RECOVERY_PER_EMAIL_PER_MINUTE", "5", Api, "password-recovery requests per target email"),
    var("WORKER_CONCURRENCY", "4", Worker, "jobs run at once by one worker"),
    var("SCAN_INTERVAL_MINUTES", "60", Worker, "period of the maintenance schedules"),
    var("JOB_RETENTION_DAYS", "7", Worker, "finished jobs older than this are purged"),
    var("BACKUP_DIR", "./data/backups", Worker, "where SQLite online backups go"),
    var("BACKUP_KEEP", "7", Worker, "how many backups are kept"),
    var("JOB_MAX_ATTEMPTS", "5", Both, "attempts of a job before it is failed for good"),
    var("JOB_LEASE_SECONDS", "30", Worker, "a claimed job returns to the queue if its worker is silent this long"),
    var("JOB_BACKOFF_BASE_MS", "2000", Worker, "first retry delay; doubles per attempt, with jitter"),
];

pub fn find(name: &str) -> Option<&'static Var> {
    VARS.iter().find(|v| v.name == name)
}

/// The variables section of `--help` for one binary.
pub fn help_text(binary: ReadBy) -> String {
    let mut out =
        String::from("Environment variables (also read from ./.env; a secret may instead be given as <NAME>_FILE):\n");
    for v in VARS.iter().filter(|v| v.is_read_by(binary)) {
        let default = if v.default.is_empty() { "unset" } else { v.default };
        let secret = if v.secret { ", secret" } else { "" };
        out.push_str(&format!("  {:<33} {} [default: {default}{secret}]\n", v.name, v.help));
    }
    out
}
