//! Prometheus metrics, served on their own listener (`METRICS_ADDR`) so they
//! are never reachable through the public port.

use std::sync::OnceLock;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use shared_core::Db;

/// Latency buckets from 1 ms to 10 s: covers a cache hit and a slow export.
const SECONDS_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The process-wide recorder. `metrics` has one global recorder, so it is
/// installed once even when a test process builds many apps.
pub fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .expect("the bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).expect("no other metrics recorder is installed");
            handle
        })
        .clone()
}

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
    state.handle.run_upkeep();
    state.handle.render()
}
