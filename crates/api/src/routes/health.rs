//! Liveness, readiness and version: what orchestrators and load balancers ask.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;
use serde_json::json;

use shared_core::db::migrate;

use crate::rate_limit::RedisHealth;
use crate::state::AppState;

/// Liveness: answers while the process serves, touching no dependency, so a
/// database outage never gets the api restarted in a loop.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn health(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "environment": state.settings.environment.as_str(),
    }))
}

#[derive(Debug, Serialize)]
struct Check {
    status: &'static str,
    latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl Check {
    fn timed(started: Instant, status: &'static str, error: Option<String>) -> Self {
        Self { status, latency_ms: started.elapsed().as_secs_f64() * 1000.0, error }
    }
}

/// Readiness: the database answers and its schema is current. Errors are
/// named but not detailed: this endpoint is public.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let started = Instant::now();
    let database = match state.db.ping().await {
        Ok(()) => Check::timed(started, "ok", None),
        Err(err) => {
            tracing::warn!(error = %err, "readiness: database check failed");
            Check::timed(started, "error", Some("database unreachable".into()))
        }
    };
    let started = Instant::now();
    let migrations = match migrate::status(&state.db).await {
        Ok(status) if status.is_current() => Check::timed(started, "ok", None),
        Ok(status) => Check::timed(started, "error", Some(format!("{} pending migration(s)", status.pending.len()))),
        Err(err) => {
            tracing::warn!(error = %err, "readiness: migration check failed");
            Check::timed(started, "error", Some("migration state unreadable".into()))
        }
    };
    let ready = database.status == "ok" && migrations.status == "ok";
    let mut checks = json!({ "database": database, "migrations": migrations });
    // Redis down degrades rate limiting to per-process counters; the api
    // still serves, so it does not fail readiness.
    let started = Instant::now();
    let redis = match state.rate_limiter.redis_health().await {
        RedisHealth::NotConfigured => None,
        RedisHealth::Ok => Some(Check::timed(started, "ok", None)),
        RedisHealth::Degraded(err) => {
            tracing::warn!(error = %err, "readiness: redis check failed");
            Some(Check::timed(started, "degraded", Some("redis unreachable; rate limits are per process".into())))
        }
    };
    if let Some(redis) = redis {
        checks["redis"] = json!(redis);
    }
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!({ "status": if ready { "ok" } else { "error" }, "checks": checks })))
}

#[utoipa::path(
    get,
    path = "/api/v1/utils/health-check/",
    tag = "utils",
    operation_id = "utils-health_check",
    responses((status = 200, description = "Successful Response", body = bool, content_type = "application/json"))
)]
pub async fn health_check() -> Json<bool> {
    Json(true)
}
