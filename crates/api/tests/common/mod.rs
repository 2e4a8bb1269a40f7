//! The test harness: the real app on a random port, against a fresh database
//! per test (a new SQLite file, or a new Postgres database created and then
//! dropped), reached over real sockets.
#![allow(dead_code, unused_macros)] // each test binary uses a different part

pub mod api_process;
pub mod own_postgres;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use api::startup::Application;
use api::state::AppState;
use shared_core::Settings;
use shared_core::db::{Backend, Db};
use shared_core::jobs::kinds::JobKind;
use shared_core::jobs::kinds::password_recovery::PasswordRecoveryPayload;
use shared_core::jobs::kinds::send_email::SendEmailPayload;
use sqlx::Connection;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[allow(unused_imports)]
pub(crate) use shared_core::on_both_backends;

pub const SECRET_KEY: &str = "test-secret-key-of-at-least-32-bytes!";
pub const SUPERUSER: &str = "admin@example.com";
pub const SUPERUSER_PASSWORD: &str = "admin-password-1";

/// The Postgres server the Postgres half of the suite uses. Required: a
/// missing server fails those tests, it never skips them.
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A database that exists for one test and is removed when dropped.
pub struct TestDb {
    pub url: String,
    pub backend: Backend,
    dir: tempfile::TempDir,
    /// (admin URL, database name) of a Postgres database to drop.
    postgres: Option<(String, String)>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let url = format!("sqlite:{}", dir.path().join("app.db").display());
                Self { url, backend, dir, postgres: None }
            }
            Backend::Postgres => Self::on_postgres(&postgres_admin_url()).await,
        }
    }

    /// A fresh database on the Postgres server at `admin` (e.g. a cluster
    /// of the test's own).
    pub async fn on_postgres(admin: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(admin)
            .await
            .unwrap_or_else(|err| panic!("Postgres at {admin} (TEST_POSTGRES_URL) is required for this test: {err}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("CREATE DATABASE");
        conn.close().await.ok();
        let base = admin.rsplit_once('/').map_or(admin, |(base, _)| base);
        let url = format!("{base}/{name}");
        Self { url, backend: Backend::Postgres, dir, postgres: Some((admin.to_owned(), name)) }
    }

    /// A scratch directory that lives as long as the database.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub async fn connect(&self) -> Db {
        let settings = settings_for(self, |_| {});
        Db::connect(&settings.database).await.expect("connect to the test database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin, name)) = self.postgres.take() else { return };
        // Drop runs inside the test's runtime, which cannot be blocked on; a
        // short-lived thread with its own runtime does the cleanup.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                        .execute(&mut conn)
                        .await;
                }
            });
        });
        let _ = dropped.join();
    }
}

/// Email enabled, plain SMTP (no STARTTLS) to 127.0.0.1:PORT: an api queues
/// its emails; a worker delivers them to whatever listens there (an
/// `SmtpCatcher` in the tests that read them back).
pub fn with_smtp(env: &mut HashMap<String, String>, port: u16) {
    env.insert("SMTP_HOST".into(), "127.0.0.1".into());
    env.insert("SMTP_PORT".into(), port.to_string());
    env.insert("SMTP_TLS".into(), "false".into());
    env.insert("EMAILS_FROM_EMAIL".into(), "noreply@example.com".into());
}

/// Polls `check` every 50 ms until it holds; panics naming `what` once
/// `within` has passed. Tests wait on a condition, never for a fixed time:
/// a fixed sleep is too short on a loaded machine and too long on an idle one.
pub async fn wait_until<F, Fut>(what: &str, within: std::time::Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The environment every test app starts from: random ports, a fixed key,
/// quiet logs. `customise` adds or overrides variables.
pub fn test_env(db: &TestDb, customise: impl FnOnce(&mut HashMap<String, String>)) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = [
        ("ENVIRONMENT", "local"),
        ("SECRET_KEY", SECRET_KEY),
        ("LISTEN_ADDR", "127.0.0.1:0"),
        ("METRICS_ADDR", "127.0.0.1:0"),
        ("LOG_LEVEL", "warn"),
        ("FIRST_SUPERUSER", SUPERUSER),
        ("FIRST_SUPERUSER_PASSWORD", SUPERUSER_PASSWORD),
        ("SHUTDOWN_GRACE_SECONDS", "5"),
        ("RATE_LIMIT_PER_MINUTE", "100000"),
        ("LOGIN_FAILURES_PER_ACCOUNT_PER_MINUTE", "100000"),
        ("LOGIN_FAILURES_PER_CLIENT_PER_MINUTE", "100000"),
        ("PASSWORD_RECOVERY_PER_CLIENT_PER_MINUTE", "100000"),
        ("PASSWORD_RECOVERY_PER_EMAIL_PER_MINUTE", "100000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    env.insert("DATABASE_URL".into(), db.url.clone());
    // The default (`./data/backups`) is relative: a worker run in the
    // test's own process would write its backups into the source tree.
    env.insert("BACKUP_DIR".into(), db.dir().join("backups").display().to_string());
    customise(&mut env);
    env
}

pub fn settings_for(db: &TestDb, customise: impl FnOnce(&mut HashMap<String, String>)) -> Settings {
    Settings::from_map(shared_core::config::vars::ReadBy::Api, &test_env(db, customise))
        .expect("the test configuration is valid")
        .settings
}

pub struct TestApp {
    pub address: SocketAddr,
    pub metrics_address: SocketAddr,
    pub state: AppState,
    pub http: reqwest::Client,
    pub db: TestDb,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.metrics_address)
    }

    /// Stops the server the way SIGTERM does and waits for the drain.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("the server task").expect("a clean shutdown");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            server.abort();
        }
    }
}

/// A client that shows redirects instead of following them.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("an HTTP client")
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(backend: Backend, customise: impl FnOnce(&mut HashMap<String, String>)) -> TestApp {
    let db = TestDb::new(backend).await;
    spawn_app_on(db, customise).await
}

/// Starts the app on an existing database (e.g. one a test prepared).
pub async fn spawn_app_on(db: TestDb, customise: impl FnOnce(&mut HashMap<String, String>)) -> TestApp {
    let settings = settings_for(&db, customise);
    let app = Application::build(settings).await.expect("the app starts");
    let (address, metrics_address, state) = (app.address(), app.metrics_address(), app.state().clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    TestApp { address, metrics_address, state, http: http_client(), db, stop: Some(stop), server: Some(server) }
}

/// Requests as a client of the contract makes them.
impl TestApp {
    /// Sends `method path` with an optional bearer token and JSON body;
    /// returns the status and the body (JSON, or a string for other bodies).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the request is answered");
        let status = response.status();
        let text = response.text().await.expect("a body");
        let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        (status, value)
    }

    /// Logs in through the form endpoint; panics unless it succeeds.
    pub async fn token(&self, email: &str, password: &str) -> String {
        let response = self
            .http
            .post(self.url("/api/v1/login/access-token"))
            .form(&[("username", email), ("password", password)])
            .send()
            .await
            .expect("login is answered");
        assert_eq!(response.status(), 200, "login of {email} failed");
        let body: serde_json::Value = response.json().await.expect("a token body");
        body["access_token"].as_str().expect("an access token").to_owned()
    }

    pub async fn superuser_token(&self) -> String {
        self.token(SUPERUSER, SUPERUSER_PASSWORD).await
    }

    /// Signs up a fresh user and logs in: (user body, token, email).
    pub async fn new_user(&self) -> (serde_json::Value, String, String) {
        let email = format!("user-{}@example.com", uuid::Uuid::new_v4().simple());
        let (status, user) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/users/signup",
                None,
                Some(serde_json::json!({ "email": email, "password": "password123", "full_name": "Test User" })),
            )
            .await;
        assert_eq!(status, 200, "{user}");
        let token = self.token(&email, "password123").await;
        (user, token, email)
    }
}

impl TestApp {
    /// The payloads of the queued jobs of `kind`, oldest first.
    async fn queued(&self, kind: JobKind) -> Vec<serde_json::Value> {
        let filter = shared_core::db::jobs::JobFilter { kind: Some(kind), ..Default::default() };
        let (jobs, _) = shared_core::db::jobs::list(&self.state.db, &filter, 0, 1000).await.expect("list jobs");
        jobs.into_iter().rev().map(|job| job.payload.0).collect()
    }

    /// The emails queued as `send_email` jobs, oldest first.
    pub async fn queued_emails(&self) -> Vec<SendEmailPayload> {
        let payloads = self.queued(JobKind::SendEmail).await;
        payloads.into_iter().map(|p| serde_json::from_value(p).expect("an email payload")).collect()
    }

    /// The password recoveries queued for the worker, oldest first.
    pub async fn queued_recoveries(&self) -> Vec<PasswordRecoveryPayload> {
        let payloads = self.queued(JobKind::PasswordRecovery).await;
        payloads.into_iter().map(|p| serde_json::from_value(p).expect("a recovery payload")).collect()
    }
}
