//! Prometheus metrics, served on their own listener (`METRICS_ADDR`) so they
//! are never reachable through the public port.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;

use shared_core::Db;

#[derive(Clone)]
struct MetricsState {
    handle: PrometheusHandle,
    db: Db,
}

pub fn router(handle: PrometheusHandle, db: Db) -> Router {
    Router::new().route("/metrics", get(render)).with_state(MetricsState { handle, db })
}

async fn render(State(state): State<MetricsState>) -> String {
    // Pool gauges are read at scrape time: exact, and free between scrapes.
    let (open, idle) = state.db.pool_usage();
    let backend = state.db.backend().as_str();
    metrics::gauge!("db_pool_connections", "backend" => backend, "state" => "idle").set(idle as f64);
    metrics::gauge!("db_pool_connections", "backend" => backend, "state" => "in_use")
        .set(f64::from(open) - idle as f64);
    shared_core::jobs::record_queue_depth(&state.db).await;
    state.handle.run_upkeep();
    state.handle.render()
}
