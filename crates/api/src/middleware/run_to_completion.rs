//! A request whose handler has started runs to completion even when its
//! client goes away, as under uvicorn. Hyper drops a request's future when
//! the connection closes, which would stop a handler between two awaits: a
//! browser that navigates away right after "Sign up" would leave no account,
//! or an account without its welcome email. So everything below this layer
//! runs in a task of its own, and the connection only waits for its answer.
//!
//! The tasks are tracked, so shutdown drains them as it drains connections,
//! and bounded: at most `MAX_IN_FLIGHT_REQUESTS` run at once, attached to a
//! client or not; further requests wait for a slot. Each is also bounded in
//! time by the request timeout inside it.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::error::detail;

#[derive(Clone)]
pub struct RequestTasks {
    tracker: TaskTracker,
    slots: Arc<Semaphore>,
}

impl RequestTasks {
    pub fn new(max_in_flight: usize) -> Self {
        Self { tracker: TaskTracker::new(), slots: Arc::new(Semaphore::new(max_in_flight)) }
    }

    /// Returns once every request task has finished; no new ones start after.
    pub async fn drained(&self) {
        self.slots.close();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

pub async fn run_to_completion(State(tasks): State<RequestTasks>, request: Request, next: Next) -> Response {
    let Ok(slot) = tasks.slots.clone().acquire_owned().await else {
        // Closed: the server is shutting down and takes no new work.
        return detail(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
    };
    let task = tasks.tracker.spawn(async move {
        let response = next.run(request).await;
        drop(slot);
        response
    });
    match task.await {
        Ok(response) => response,
        // The panic layer inside answers panics; this is only reached if the
        // task itself was cancelled, which nothing here does.
        Err(err) => {
            tracing::error!(error = %err, "request task ended without an answer");
            detail(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
    }
}
