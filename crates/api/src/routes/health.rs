//! Liveness, readiness and version: what orchestrators and load balancers ask.

use std::future::Future;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;
use serde_json::json;

use shared_core::db::migrate;

use crate::json::Json;
use crate::rate_limit::RedisHealth;
use crate::state::AppState;

/// Liveness: answers while the process serves, touching no dependency, so a
/// database outage never gets the api restarted in a loop. A struct, not a
/// `json!` map: orchestrators ask often, and the map's allocations cost
/// 0.8k instructions a request (a fortieth of it).
pub async fn healthz() -> Json<Alive> {
    Json(Alive { status: "ok" })
}

#[derive(Serialize)]
pub struct Alive {
    status: &'static str,
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
    fn new(status: &'static str, latency_ms: f64, error: Option<String>) -> Self {
        Self { status, latency_ms, error }
    }
}

/// Each readiness check gets this long: an orchestrator's probe (typically
/// with a 1 s timeout) must get an answer, not a hang, while a dependency is
/// down. The checks run at the same time.
const CHECK_TIMEOUT: Duration = Duration::from_millis(500);

/// Runs one check within [`CHECK_TIMEOUT`], timing it.
async fn timed<T, E: std::fmt::Display>(
    name: &str,
    check: impl Future<Output = Result<T, E>>,
) -> (Result<T, String>, f64) {
    let started = Instant::now();
    let outcome = match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
    };
    if let Err(err) = &outcome {
        tracing::warn!(check = name, error = %err, "readiness check failed");
    }
    (outcome, started.elapsed().as_secs_f64() * 1000.0)
}

/// Readiness: the database answers and its schema is current. Errors are
/// named but not detailed: this endpoint is public.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let ((ping, ping_ms), (schema, schema_ms), (redis, redis_ms)) = tokio::join!(
        timed("database", state.db.ping()),
        timed("migrations", migrate::status(&state.db)),
        timed("redis", async { Ok::<_, String>(state.rate_limiter.redis_health().await) }),
    );
    let database = match ping {
        Ok(()) => Check::new("ok", ping_ms, None),
        Err(_) => Check::new("error", ping_ms, Some("database unreachable".into())),
    };
    let migrations = match schema {
        Ok(status) if status.is_current() => Check::new("ok", schema_ms, None),
        Ok(status) => Check::new("error", schema_ms, Some(format!("{} pending migration(s)", status.pending.len()))),
        Err(_) => Check::new("error", schema_ms, Some("migration state unreadable".into())),
    };
    let ready = database.status == "ok" && migrations.status == "ok";
    let mut checks = json!({ "database": database, "migrations": migrations });
    // Redis down degrades rate limiting to per-process counters; the api
    // still serves, so it does not fail readiness.
    let redis = match redis {
        Ok(RedisHealth::NotConfigured) => None,
        Ok(RedisHealth::Ok) => Some(Check::new("ok", redis_ms, None)),
        Ok(RedisHealth::Degraded(err)) => {
            tracing::warn!(error = %err, "readiness: redis check failed");
            Some(Check::new("degraded", redis_ms, Some("redis unreachable; rate limits are per process".into())))
        }
        Err(_) => Some(Check::new("degraded", redis_ms, Some("redis unreachable; rate limits are per process".into()))),
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
