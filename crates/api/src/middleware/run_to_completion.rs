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

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;
use futures_util::future::Either;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio_util::task::TaskTracker;
use tower::Service;

use super::BoxedResponse;
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

    /// A request started in `slot`: counted by the tracker until it ends.
    fn start<F>(&self, request: F, slot: OwnedSemaphorePermit) -> Completes
    where
        F: Future<Output = Result<Response, Infallible>> + Send + 'static,
    {
        Completes { running: Some(Box::pin(self.tracker.track_future(request))), slot: Some(slot) }
    }
}

/// The service around the whole router. A tower service of its own rather
/// than an axum `from_fn` middleware, which clones and boxes the stack
/// below it and boxes its own future on every request.
#[derive(Clone)]
pub struct RunToCompletion<S> {
    inner: S,
    tasks: RequestTasks,
}

impl<S> RunToCompletion<S> {
    pub fn new(inner: S, tasks: RequestTasks) -> Self {
        Self { inner, tasks }
    }
}

impl<S> Service<Request> for RunToCompletion<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    /// Started at once while a slot is free (nearly always); otherwise a
    /// future that waits for one and starts the request then.
    type Future = Either<Completes, BoxedResponse>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match self.tasks.slots.clone().try_acquire_owned() {
            Ok(slot) => Either::Left(self.tasks.start(self.inner.call(request), slot)),
            Err(TryAcquireError::Closed) => Either::Right(Box::pin(std::future::ready(Ok(shutting_down())))),
            Err(TryAcquireError::NoPermits) => {
                // Until a slot is free the request has not started: a
                // client that leaves meanwhile leaves nothing half done.
                let (tasks, mut inner) = (self.tasks.clone(), self.inner.clone());
                Either::Right(Box::pin(async move {
                    let Ok(slot) = tasks.slots.clone().acquire_owned().await else {
                        return Ok(shutting_down());
                    };
                    std::future::poll_fn(|cx| inner.poll_ready(cx)).await?;
                    tasks.start(inner.call(request), slot).await
                }))
            }
        }
    }
}

/// Closed: the server is shutting down and takes no new work.
fn shutting_down() -> Response {
    detail(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
}

/// A request's future that, dropped before it is done, finishes in a task
/// (still tracked: the tracker counts the request until its future ends).
pub struct Completes {
    running: Option<BoxedResponse>,
    slot: Option<OwnedSemaphorePermit>,
}

impl Future for Completes {
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
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
