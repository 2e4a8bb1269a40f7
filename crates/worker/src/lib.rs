//! The worker: claims jobs from the queue and runs them, keeps its
//! heartbeat, and runs the maintenance schedules. `main.rs` is only the
//! command line around it; tests drive [`runner::Worker`] directly too.

pub mod heartbeat;
pub mod metrics;
pub mod runner;
pub mod schedule;

use std::sync::Arc;

use shared_core::email::Mailer;
use shared_core::{Db, Settings};

/// What every part of the worker shares.
pub struct Context {
    pub db: Db,
    pub settings: Arc<Settings>,
    /// `None` when email is not configured: `send_email` jobs then fail.
    pub mailer: Option<Mailer>,
    /// This process's id in the `workers` table and in job leases.
    pub id: String,
    pub host: String,
}

/// This machine's name (a container's id in Docker): what `worker
/// healthcheck`, run inside the same container, looks up.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Runs the worker until `shutdown` completes: jobs, heartbeat, schedules
/// and the metrics listener; then drains and exits.
pub async fn run(settings: Settings, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
    use std::future::IntoFuture;

    let db = Db::connect(&settings.database).await?;
    // The api owns migrations; a worker on a schema that is behind would run
    // jobs against tables it does not understand.
    shared_core::db::migrate::verify(&db).await?;
    let mailer = Mailer::from_settings(&settings).transpose()?;
    let metrics_listener = tokio::net::TcpListener::bind(settings.metrics_addr)
        .await
        .map_err(|err| anyhow::anyhow!("cannot listen on METRICS_ADDR {}: {err}", settings.metrics_addr))?;
    let host = host_name();
    let ctx =
        Arc::new(Context { id: shared_core::jobs::worker_id(&host), host, db, settings: Arc::new(settings), mailer });
    tracing::info!(
        worker_id = %ctx.id,
        backend = ctx.db.backend().as_str(),
        concurrency = ctx.settings.worker.concurrency,
        metrics = %metrics_listener.local_addr()?,
        "worker started"
    );

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let metrics_server =
        tokio::spawn(axum::serve(metrics_listener, metrics::router(shared_core::metrics::recorder())).into_future());
    let heartbeat = tokio::spawn({
        let (ctx, stopped) = (ctx.clone(), stopped.clone());
        async move { heartbeat::run(&ctx, stopped).await }
    });
    let schedules = tokio::spawn({
        let (ctx, stopped) = (ctx.clone(), stopped.clone());
        async move { schedule::run(&ctx, stopped).await }
    });
    let jobs = tokio::spawn(runner::Runner::new(ctx.clone()).run(stopped));

    shutdown.await;
    tracing::info!("shutdown requested; no new jobs will be claimed");
    let _ = stop.send(true);
    jobs.await?;
    schedules.await?;
    heartbeat.await?;
    metrics_server.abort();
    ctx.db.close().await;
    tracing::info!("stopped");
    Ok(())
}
