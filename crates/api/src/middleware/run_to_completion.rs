//! A request whose handler has started runs to completion even when its
//! client goes away, as under uvicorn. Hyper drops a request's future when
//! the connection closes, which would stop a handler between two awaits: a
//! browser that navigates away right after "Sign up" would leave no account,
//! or an account without its welcome email. So a request dropped half-way
//! goes on in a task of its own; one whose client stays (nearly every one)
//! runs where it is, without a task spawned and another thread woken for it.
//!
//! The requests are tracked, so shutdown drains them as it drains
//! connections, and bounded: at most `MAX_IN_FLIGHT_REQUESTS` run at once,
//! attached to a client or not; further requests wait for a slot. Each is
//! also bounded in time by the request timeout inside it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
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

    /// Returns once every request has finished; no new ones start after.
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
    let running = Box::pin(tasks.tracker.track_future(next.run(request)));
    Completes { running: Some(running), slot: Some(slot) }.await
}

type Running = Pin<Box<dyn Future<Output = Response> + Send>>;

/// A request's future that, dropped before it is done, finishes in a task
/// (still tracked: the tracker counts the request until its future ends).
struct Completes {
    running: Option<Running>,
    slot: Option<OwnedSemaphorePermit>,
}

impl Future for Completes {
    type Output = Response;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let Some(running) = self.running.as_mut() else {
            // Polled again after its answer, which hyper never does.
            return Poll::Pending;
        };
        let response = std::task::ready!(running.as_mut().poll(cx));
        self.running = None;
        self.slot = None;
        Poll::Ready(response)
    }
}

impl Drop for Completes {
    fn drop(&mut self) {
        let (Some(running), slot) = (self.running.take(), self.slot.take()) else {
            return;
        };
        // Outside a runtime (it is shutting down) there is nothing to run on.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                drop(running.await);
                drop(slot);
            });
        }
    }
}
