//! One typed settings struct, read once at start from the environment (and
//! `./.env`), validated as a whole.

mod dotenv;
mod reader;
mod secret;
pub mod vars;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use rand::distr::{Alphanumeric, SampleString};

use crate::auth::password::MIN_PASSWORD_CHARS;
use reader::Reader;
pub use secret::{Secret, redact_url, url_password};
use vars::ReadBy;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Local,
    Staging,
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Staging => "staging",
            Self::Production => "production",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
    /// LOG_FORMAT unset in local: pretty when the logs go to a terminal,
    /// JSON when they go to a file, a pipe or a container's log driver.
    PrettyOnTerminal,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Pretty => "pretty",
            Self::PrettyOnTerminal => "pretty on a terminal, else json",
        }
    }
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: Secret,
    pub pool_size: u32,
    pub acquire_timeout: Duration,
}

impl DatabaseSettings {
    /// The same Postgres server, credentials and parameters, with database
    /// `name` instead; `None` for SQLite. (restore.sh checks a database
    /// restored beside the live one through this.)
    pub fn on_database(&self, name: &str) -> Option<Self> {
        let url = self.url.expose();
        let rest = url.strip_prefix("postgres://").or_else(|| url.strip_prefix("postgresql://"))?;
        let scheme = &url[..url.len() - rest.len()];
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let query = rest[authority_end..].find('?').map_or("", |at| &rest[authority_end + at..]);
        let url = format!("{scheme}{}/{}{query}", &rest[..authority_end], userinfo(name));
        Some(Self { url: Secret::new(url), ..self.clone() })
    }
}

#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub listen_addr: SocketAddr,
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    /// Requests handled at once, whether or not their client is still
    /// connected (a started request runs to completion).
    pub max_in_flight_requests: usize,
    pub header_read_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub max_connections: usize,
    pub trusted_proxies: Vec<IpNet>,
    pub cors_origins: Vec<String>,
}

/// Read whether or not email is on, so `config check` shows what is in force.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    /// Empty when SMTP_HOST is unset.
    pub host: String,
    pub port: u16,
    pub starttls: bool,
    pub ssl: bool,
    pub user: Option<String>,
    pub password: Option<Secret>,
    /// Empty when EMAILS_FROM_EMAIL is unset.
    pub from_email: String,
    pub from_name: String,
}

#[derive(Debug, Clone)]
pub struct RateLimitSettings {
    /// Requests per client per rolling minute, on every /api/v1 route.
    pub per_minute: u32,
    /// Failed logins and password resets per (address, account).
    pub login_failures_per_account: u32,
    /// Failed logins and password resets per address, whatever the account.
    pub login_failures_per_client: u32,
    pub recovery_per_client: u32,
    pub recovery_per_email: u32,
}

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub concurrency: usize,
    pub scan_interval: Duration,
    pub job_retention: Duration,
    pub backup_dir: PathBuf,
    pub backup_keep: usize,
    pub job_max_attempts: i32,
    pub job_lease: Duration,
    pub job_backoff_base: Duration,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub environment: Environment,
    pub project_name: String,
    pub secret_key: Secret,
    pub access_token_expire: Duration,
    pub email_reset_token_expire: Duration,
    pub frontend_host: String,
    pub database: DatabaseSettings,
    pub redis_url: Option<Secret>,
    pub redis_key_prefix: String,
    pub http: HttpSettings,
    pub metrics_addr: SocketAddr,
    /// Where errors are reported; `None` when unset, and always in local.
    pub sentry_dsn: Option<Secret>,
    pub log_level: String,
    pub log_format: LogFormat,
    pub migrate_on_start: bool,
    pub shutdown_grace: Duration,
    pub first_superuser: String,
    pub first_superuser_password: Secret,
    /// Email is on only when SMTP_HOST and EMAILS_FROM_EMAIL are both set
    /// ([`Settings::email_enabled`]).
    pub smtp: SmtpSettings,
    pub rate_limit: RateLimitSettings,
    pub worker: WorkerSettings,
    /// What was in force for each variable read, recorded while reading.
    shown: Vec<(&'static str, String)>,
}

/// One thing wrong with the configuration, naming the variable to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub var: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration ({} problem(s)):", self.problems.len())?;
        for p in &self.problems {
            writeln!(f, "  {}: {}", p.var, p.message)?;
        }
        Ok(())
    }
}

/// Settings plus what start-up should warn about once logging is up.
#[derive(Debug)]
pub struct Loaded {
    pub settings: Settings,
    pub warnings: Vec<String>,
}

const CHANGETHIS: &str = "changethis";
const MIN_SECRET_KEY_BYTES: usize = 32;

impl Settings {
    /// Reads the process environment, after loading `./.env` if there is one
    /// (real environment variables win over the file).
    pub fn from_env(binary: ReadBy) -> Result<Loaded, ConfigError> {
        // Only ./.env, not a parent directory's: a file two levels up must not
        // configure a production process by surprise.
        let process: HashMap<String, String> = std::env::vars().collect();
        let lookup = |name: &str| process.get(name).cloned();
        let mut env = dotenv::read(std::path::Path::new(".env"), &lookup)
            .map_err(|message| ConfigError {
                problems: vec![ConfigProblem { var: ".env".into(), message: format!("cannot be read: {message}") }],
            })?
            .unwrap_or_default();
        env.extend(process);
        Self::from_map(binary, &env)
    }

    /// Reads settings from `env` for `binary`: the weak-secret rule applies
    /// only to variables that binary reads (the worker never reads
    /// FIRST_SUPERUSER_PASSWORD, so its default must not stop the worker).
    pub fn from_map(binary: ReadBy, env: &HashMap<String, String>) -> Result<Loaded, ConfigError> {
        let mut r = Reader::new(env);

        let environment = read_environment(&mut r);
        r.show("ENVIRONMENT", environment.as_str());
        let local = environment == Environment::Local;
        let project_name = r.string("PROJECT_NAME");

        let secret_key = match r.secret("SECRET_KEY") {
            Some(key) => key,
            None if local => {
                r.warnings.push(
                    "SECRET_KEY is unset: using a random key, so tokens die with this process; set SECRET_KEY to keep them".into(),
                );
                r.show("SECRET_KEY", "[redacted]");
                Secret::new(Alphanumeric.sample_string(&mut rand::rng(), 64))
            }
            None => {
                r.problem("SECRET_KEY", "is required outside local; set it to a random string of 32 bytes or more (e.g. `openssl rand -hex 32`)");
                Secret::new(String::new())
            }
        };

        let database_url = read_database_url(&mut r);
        r.show("DATABASE_URL", redact_url(database_url.expose()));
        let database = DatabaseSettings {
            url: database_url,
            pool_size: r.positive("DATABASE_POOL_SIZE").min(u64::from(u32::MAX)) as u32,
            acquire_timeout: Duration::from_secs(r.positive("DATABASE_ACQUIRE_TIMEOUT_SECONDS")),
        };

        let frontend_host = r.string("FRONTEND_HOST").trim_end_matches('/').to_owned();
        if frontend_host == "*" {
            r.problem("FRONTEND_HOST", "`*` is not an origin; write the frontend's as https://host[:port]");
        }
        let mut cors_origins = vec![frontend_host.clone()];
        for origin in r.list("BACKEND_CORS_ORIGINS") {
            let origin = origin.trim_end_matches('/').to_owned();
            if origin == "*" {
                r.problem(
                    "BACKEND_CORS_ORIGINS",
                    "`*` is not allowed because CORS requests carry credentials; list the origins",
                );
            } else if !(origin.starts_with("http://") || origin.starts_with("https://")) {
                r.problem(
                    "BACKEND_CORS_ORIGINS",
                    format!("`{origin}` is not an origin; write it as https://host[:port]"),
                );
            } else if !cors_origins.contains(&origin) {
                cors_origins.push(origin);
            }
        }

        let trusted_proxies = r
            .list("TRUSTED_PROXIES")
            .into_iter()
            .filter_map(|entry| {
                let parsed = entry.parse::<IpNet>().or_else(|_| entry.parse::<std::net::IpAddr>().map(IpNet::from));
                if parsed.is_err() {
                    r.problem("TRUSTED_PROXIES", format!("`{entry}` is not an IP address or CIDR range"));
                }
                parsed.ok()
            })
            .collect();

        // A local api runs with admin/changethis and the private routes:
        // reachable from this machine only, unless LISTEN_ADDR says otherwise
        // (the images and compose files set 0.0.0.0:8000).
        let listen_host = if local { [127, 0, 0, 1] } else { [0, 0, 0, 0] };
        let http = HttpSettings {
            listen_addr: r.parse_or(
                "LISTEN_ADDR",
                SocketAddr::from((listen_host, 8000)),
                "an address like 0.0.0.0:8000",
            ),
            request_timeout: Duration::from_secs(r.positive("REQUEST_TIMEOUT_SECONDS")),
            max_body_bytes: r.positive("MAX_BODY_BYTES") as usize,
            max_in_flight_requests: r.positive("MAX_IN_FLIGHT_REQUESTS") as usize,
            header_read_timeout: Duration::from_secs(r.positive("HTTP_HEADER_READ_TIMEOUT_SECONDS")),
            keep_alive_timeout: Duration::from_secs(r.positive("HTTP_KEEP_ALIVE_TIMEOUT_SECONDS")),
            max_connections: r.positive("HTTP_MAX_CONNECTIONS") as usize,
            trusted_proxies,
            cors_origins,
        };
        // Distinct ports, so an api and a worker run side by side on one host.
        let metrics_port = if binary == ReadBy::Worker { 9101 } else { 9100 };
        let metrics_addr = r.parse_or(
            "METRICS_ADDR",
            SocketAddr::from(([127, 0, 0, 1], metrics_port)),
            "an address like 127.0.0.1:9100",
        );

        let log_level = r.string("LOG_LEVEL");
        if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
            r.problem("LOG_LEVEL", format!("`{log_level}` is not a tracing filter; use e.g. info or info,sqlx=warn"));
        }
        let log_format = match r.optional("LOG_FORMAT").map(|v| v.to_ascii_lowercase()).as_deref() {
            None if local => LogFormat::PrettyOnTerminal,
            None => LogFormat::Json,
            Some("json") => LogFormat::Json,
            Some("pretty" | "text") => LogFormat::Pretty,
            Some(other) => {
                r.problem("LOG_FORMAT", format!("`{other}` is not json or pretty"));
                LogFormat::Json
            }
        };

        r.show("LOG_FORMAT", log_format.as_str());
        let sentry_dsn = read_sentry_dsn(&mut r, local);

        let first_superuser = r.string("FIRST_SUPERUSER");
        let first_superuser_password = r
            .secret("FIRST_SUPERUSER_PASSWORD")
            .unwrap_or_else(|| Secret::new(Reader::declared_default("FIRST_SUPERUSER_PASSWORD")));
        r.show("FIRST_SUPERUSER_PASSWORD", "[redacted]");

        let smtp = read_smtp(&mut r, &project_name);

        let rate_limit = RateLimitSettings {
            per_minute: r.per_minute("RATE_LIMIT_PER_MINUTE"),
            login_failures_per_account: r.per_minute("LOGIN_FAILURES_PER_ACCOUNT_PER_MINUTE"),
            login_failures_per_client: r.per_minute("LOGIN_FAILURES_PER_CLIENT_PER_MINUTE"),
            recovery_per_client: r.per_minute("PASSWORD_RECOVERY_PER_CLIENT_PER_MINUTE"),
            recovery_per_email: r.per_minute("PASSWORD_RECOVERY_PER_EMAIL_PER_MINUTE"),
        };
        let worker = WorkerSettings {
            concurrency: r.positive("WORKER_CONCURRENCY") as usize,
            scan_interval: Duration::from_secs(60 * r.positive("SCAN_INTERVAL_MINUTES")),
            job_retention: Duration::from_secs(86_400 * r.positive("JOB_RETENTION_DAYS")),
            backup_dir: PathBuf::from(r.string("BACKUP_DIR")),
            backup_keep: r.positive("BACKUP_KEEP") as usize,
            job_max_attempts: r.positive("JOB_MAX_ATTEMPTS").min(1000) as i32,
            job_lease: Duration::from_secs(r.positive("JOB_LEASE_SECONDS")),
            job_backoff_base: Duration::from_millis(r.positive("JOB_BACKOFF_BASE_MS")),
        };

        let redis_url = r.secret("REDIS_URL");
        if let Some(url) = &redis_url {
            r.show("REDIS_URL", redact_url(url.expose()));
        }
        let settings = Settings {
            environment,
            project_name,
            secret_key,
            access_token_expire: Duration::from_secs(60 * r.positive("ACCESS_TOKEN_EXPIRE_MINUTES")),
            email_reset_token_expire: Duration::from_secs(3600 * r.positive("EMAIL_RESET_TOKEN_EXPIRE_HOURS")),
            frontend_host,
            database,
            redis_url,
            redis_key_prefix: r.string("REDIS_KEY_PREFIX"),
            http,
            metrics_addr,
            sentry_dsn,
            log_level,
            log_format,
            migrate_on_start: r.bool("MIGRATE_ON_START"),
            shutdown_grace: Duration::from_secs(r.parse::<u64>("SHUTDOWN_GRACE_SECONDS", "a whole number of seconds")),
            first_superuser,
            first_superuser_password,
            smtp,
            rate_limit,
            worker,
            shown: r.shown(),
        };
        check_weak_secrets(&settings, binary, &mut r);
        report_ignored(env, &mut r);

        if r.problems.is_empty() {
            Ok(Loaded { settings, warnings: r.warnings })
        } else {
            Err(ConfigError { problems: r.problems })
        }
    }

    pub fn email_enabled(&self) -> bool {
        !self.smtp.host.is_empty() && !self.smtp.from_email.is_empty()
    }

    /// The effective configuration as `VARIABLE = value` pairs, secrets
    /// redacted, of the variables `binary` reads: what `config check` prints.
    pub fn effective(&self, binary: ReadBy) -> Vec<(&'static str, String)> {
        let email = if self.email_enabled() { "enabled" } else { "disabled (set SMTP_HOST and EMAILS_FROM_EMAIL)" };
        let read = self.shown.iter().filter(|(name, _)| vars::find(name).is_some_and(|v| v.is_read_by(binary)));
        // "email" is no variable: what SMTP_HOST and EMAILS_FROM_EMAIL add up to, for both binaries.
        read.cloned().chain([("email", email.to_owned())]).collect()
    }
}

fn read_environment(r: &mut Reader<'_>) -> Environment {
    let raw = r
        .optional("ENVIRONMENT")
        .or_else(|| r.optional("FASTAPI_ENV").map(|v| if v == "development" { "local".to_owned() } else { v }));
    match raw.as_deref().map(str::trim) {
        None | Some("local") => Environment::Local,
        Some("staging") => Environment::Staging,
        Some("production") => Environment::Production,
        Some(other) => {
            r.problem("ENVIRONMENT", format!("`{other}` is not local, staging or production"));
            Environment::Production
        }
    }
}

/// The FastAPI template reports to Sentry only outside local; so do we.
fn read_sentry_dsn(r: &mut Reader<'_>, local: bool) -> Option<Secret> {
    let dsn = r.secret("SENTRY_DSN")?;
    if let Err(err) = dsn.expose().parse::<sentry::types::Dsn>() {
        r.problem("SENTRY_DSN", format!("is not a Sentry DSN ({err}); copy it from the project's client keys"));
        return None;
    }
    if local {
        r.warnings.push("SENTRY_DSN is ignored in ENVIRONMENT=local (as in the FastAPI template)".into());
        return None;
    }
    Some(dsn)
}

fn read_database_url(r: &mut Reader<'_>) -> Secret {
    let url = match (r.secret("DATABASE_URL"), r.optional("POSTGRES_SERVER")) {
        (Some(url), _) => url,
        // The FastAPI stack's .env describes Postgres piece by piece.
        (None, Some(server)) => {
            let user = userinfo(&r.string("POSTGRES_USER"));
            let password =
                r.secret("POSTGRES_PASSWORD").map(|p| format!(":{}", userinfo(p.expose()))).unwrap_or_default();
            let port = r.string("POSTGRES_PORT");
            let db = r.string("POSTGRES_DB");
            Secret::new(format!("postgresql://{user}{password}@{server}:{port}/{db}"))
        }
        (None, None) => Secret::new(Reader::declared_default("DATABASE_URL")),
    };
    let scheme_ok = ["postgres://", "postgresql://", "sqlite:"].iter().any(|s| url.expose().starts_with(s));
    if !scheme_ok {
        r.problem("DATABASE_URL", "must start with postgres://, postgresql:// or sqlite: (e.g. sqlite:./data/app.db)");
    }
    url
}

/// Percent-encodes a URL user, password or database name, as the FastAPI
/// stack's pydantic URL builder does: a generated password with `@`, `/` or
/// `:` must not change where the URL points.
fn userinfo(part: &str) -> String {
    const RESERVED: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
    percent_encoding::utf8_percent_encode(part, RESERVED).to_string()
}

fn read_smtp(r: &mut Reader<'_>, project_name: &str) -> SmtpSettings {
    let host = r.optional("SMTP_HOST");
    let from_email = r.string("EMAILS_FROM_EMAIL");
    let port = r.parse::<u16>("SMTP_PORT", "a port number");
    let starttls = r.bool("SMTP_TLS");
    let ssl = r.bool("SMTP_SSL");
    let user = r.optional("SMTP_USER");
    let password = r.secret("SMTP_PASSWORD");
    let from_name = r.optional("EMAILS_FROM_NAME").unwrap_or_else(|| project_name.to_owned());
    r.show("EMAILS_FROM_NAME", from_name.clone());
    if starttls && ssl && host.is_some() {
        r.problem("SMTP_SSL", "SMTP_TLS (STARTTLS) and SMTP_SSL (implicit TLS) exclude each other; set one to false");
    }
    SmtpSettings { host: host.unwrap_or_default(), port, starttls, ssl, user, password, from_email, from_name }
}

/// Variables a deployment may still set that this stack does not read: the
/// FastAPI template's backend settings we do not have, and our own renamed
/// ones. Each is named at start, so switching images never drops a setting
/// silently. (Everything else the template's backend reads works as it does.)
const IGNORED: &[(&str, &str)] = &[
    ("API_V1_STR", "the API prefix is fixed at /api/v1"),
    ("EMAIL_TEST_USER", "only the FastAPI template's own tests read it"),
    (
        "LOGIN_RATE_LIMIT_PER_MINUTE",
        "replaced by LOGIN_FAILURES_PER_ACCOUNT_PER_MINUTE and the other failure and recovery limits",
    ),
];

fn report_ignored(env: &HashMap<String, String>, r: &mut Reader<'_>) {
    for (name, why) in IGNORED {
        let set = env.get(*name).is_some_and(|v| !v.is_empty());
        // The template's own value for the prefix changes nothing.
        if set && !(*name == "API_V1_STR" && env[*name] == "/api/v1") {
            r.warnings.push(format!("{name} is set but not read: {why}"));
        }
    }
}

/// The contract's `changethis` rule: fatal outside local, a warning in local.
fn check_weak_secrets(s: &Settings, binary: ReadBy, r: &mut Reader<'_>) {
    let mut weak = Vec::new();
    if s.secret_key.expose() == CHANGETHIS {
        weak.push(("SECRET_KEY", "is `changethis`; set a random string (e.g. `openssl rand -hex 32`)".to_owned()));
    } else if !s.secret_key.expose().is_empty() && s.secret_key.expose().len() < MIN_SECRET_KEY_BYTES {
        weak.push(("SECRET_KEY", format!("is shorter than {MIN_SECRET_KEY_BYTES} bytes; use `openssl rand -hex 32`")));
    }
    let first_password = s.first_superuser_password.expose();
    if first_password == CHANGETHIS {
        weak.push(("FIRST_SUPERUSER_PASSWORD", "is `changethis`; set a strong password".to_owned()));
    } else if first_password.chars().count() < MIN_PASSWORD_CHARS {
        weak.push((
            "FIRST_SUPERUSER_PASSWORD",
            format!("is shorter than {MIN_PASSWORD_CHARS} characters, the minimum of every password; set a longer one"),
        ));
    }
    if url_password(s.database.url.expose()) == Some(CHANGETHIS) {
        weak.push(("DATABASE_URL", "has the password `changethis`; set a strong database password".to_owned()));
    }
    let read_here = |var: &str| vars::find(var).is_some_and(|v| v.is_read_by(binary));
    for (var, message) in weak.into_iter().filter(|(var, _)| read_here(var)) {
        if s.environment == Environment::Local {
            r.warnings.push(format!("{var} {message}"));
        } else {
            r.problem(var, message);
        }
    }
}

#[cfg(test)]
mod tests;
