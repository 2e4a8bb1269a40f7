//! The worker's metrics on its own listener: queue depth by status and kind
//! (refreshed with each heartbeat), job wait and run latency by kind and
//! outcome, retries, dead letters, jobs in flight, heartbeat age.

use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use shared_core::db::Db;
use shared_core::db::jobs::{self, JobStatus};
use shared_core::jobs::kinds::JobKind;

pub fn router(handle: PrometheusHandle) -> Router {
    Router::new().route(
        "/metrics",
        get(move || async move {
            handle.run_upkeep();
            handle.render()
        }),
    )
}

pub async fn refresh_queue_depth(db: &Db) {
    match jobs::depth(db).await {
        Ok(rows) => {
            // A pair with no jobs returns no row; its gauge must read 0, not its last value.
            for status in JobStatus::ALL {
                for kind in JobKind::ALL {
                    metrics::gauge!("job_queue_depth", "status" => status.as_str(), "kind" => kind.as_str()).set(0.0);
                }
            }
            for (status, kind, count) in rows {
                metrics::gauge!("job_queue_depth", "status" => status, "kind" => kind).set(count as f64);
            }
        }
        Err(err) => tracing::warn!(error = %err, "cannot read the queue depth"),
    }
}
