//! Start-up and shutdown: connect, bring the schema up to date, bind the
//! listeners, serve until told to stop, then drain within the grace period.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::watch;

use shared_core::Settings;
use shared_core::auth::password::PasswordHasher;
use shared_core::auth::token::TokenKeys;
use shared_core::db::migrate::{self, SchemaError};
use shared_core::db::{Db, DbError};

use crate::middleware::RequestTasks;
use crate::rate_limit::RateLimiter;
use crate::state::{AppState, Resources};
use crate::superuser::{self, SuperuserError};
use crate::{metrics, routes, server};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error(transparent)]
    Superuser(#[from] SuperuserError),
    #[error("REDIS_URL is not valid: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("cannot listen on {addr} ({var}): {source}")]
    Bind { var: &'static str, addr: SocketAddr, source: std::io::Error },
}

pub struct Application {
    listener: TcpListener,
    metrics_listener: TcpListener,
    metrics: PrometheusHandle,
    state: AppState,
}

impl Application {
    /// Everything that can fail at start fails here, before a port opens:
    /// a load balancer never sees an api that cannot serve.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let db = Db::connect(&settings.database).await?;
        prepare_schema(&db, &settings).await?;
        let hasher = PasswordHasher::new(password_hashing_slots());
        if !db.is_read_only() {
            superuser::ensure(&db, &settings, &hasher).await?;
        }
        let tokens = TokenKeys::new(&settings.secret_key);
        let rate_limiter = RateLimiter::new(&settings)?;
        let bind = |var, addr| async move {
            TcpListener::bind(addr).await.map_err(|source| StartupError::Bind { var, addr, source })
        };
        let listener = bind("LISTEN_ADDR", settings.http.listen_addr).await?;
        let metrics_listener = bind("METRICS_ADDR", settings.metrics_addr).await?;
        let state = AppState::new(Resources { settings, db, hasher, tokens, rate_limiter });
        Ok(Self { listener, metrics_listener, metrics: shared_core::metrics::recorder(), state })
    }

    pub fn address(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn metrics_address(&self) -> SocketAddr {
        self.metrics_listener.local_addr().expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then stops accepting, lets
    /// in-flight requests finish for up to `SHUTDOWN_GRACE_SECONDS`, and
    /// closes the pools.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let Self { listener, metrics_listener, metrics: handle, state } = self;
        let grace = state.settings.shutdown_grace;
        let (stop, stopped) = watch::channel(false);
        let when_stopped = |mut rx: watch::Receiver<bool>| async move {
            drop(rx.wait_for(|stop| *stop).await);
        };

        let tasks = RequestTasks::new(state.settings.http.max_in_flight_requests);
        let app = routes::router(state.clone(), &tasks);
        let limits = server::Limits::from_settings(&state.settings.http);
        let mut public = tokio::spawn(server::serve(listener, app, limits, when_stopped(stopped.clone())));
        let metrics_app = metrics::router(handle.clone(), state.db.clone());
        let private = tokio::spawn(
            axum::serve(metrics_listener, metrics_app).with_graceful_shutdown(when_stopped(stopped)).into_future(),
        );
        let upkeep = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        });

        tokio::select! {
            () = shutdown => tracing::info!(grace_seconds = grace.as_secs(), "shutdown requested; draining in-flight requests"),
            served = &mut public => {
                tracing::error!("the public listener stopped on its own");
                served.map_err(std::io::Error::other)?;
            }
        }
        // Fails only when both servers are already gone, which is fine.
        let _ = stop.send(true);
        // Connections first, then the requests whose client left before
        // their answer: both within the one grace period.
        let drained = async {
            let served = (&mut public).await;
            tasks.drained().await;
            served
        };
        match tokio::time::timeout(grace, drained).await {
            Ok(served) => served.map_err(std::io::Error::other)?,
            Err(_) => {
                tracing::warn!("grace period over; closing the connections still open");
                public.abort();
            }
        }
        upkeep.abort();
        private.abort();
        state.db.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Password hashing is CPU-bound (tens of milliseconds each): at most one
/// per core runs at once, so a login flood queues instead of starving
/// everything else.
fn password_hashing_slots() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

/// Migrates when allowed; otherwise (MIGRATE_ON_START=false, or a read-only
/// SQLite file) only verifies, and refuses a schema that is behind.
pub async fn prepare_schema(db: &Db, settings: &Settings) -> Result<(), SchemaError> {
    if settings.migrate_on_start && !db.is_read_only() {
        migrate::run(db).await
    } else {
        migrate::verify(db).await.map(drop)
    }
}
