//! The worker's metrics on its own listener: queue depth by status and kind
//! (refreshed with each heartbeat), job wait and run latency by kind and
//! outcome, retries, dead letters, jobs in flight, heartbeat age.
//! The depth gauges come from `shared_core::jobs::record_queue_depth`.

use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;

pub fn router(handle: PrometheusHandle) -> Router {
    Router::new().route(
        "/metrics",
        get(move || async move {
            handle.run_upkeep();
            handle.render()
        }),
    )
}
