//! The request timeout: a request not answered `REQUEST_TIMEOUT_SECONDS`
//! after it arrived gets a 408 (its JSON body comes from `json_errors`).
//!
//! tower-http's timeout starts a timer for every request and polls it
//! before the route, so every request puts an entry in the runtime's timer
//! wheel and takes it out again. Here the timer starts only when the route
//! first has to wait, set to the same deadline: a route that answers at once
//! (/healthz, anything without a database) never touches the timer wheel,
//! and nothing that runs before that first wait could have been interrupted
//! by a timer anyway. When the answer and the deadline are both there, the
//! answer goes out.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::http::{Response, StatusCode};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower::Service;

#[derive(Clone)]
pub struct Timeout<S> {
    inner: S,
    limit: Duration,
}

impl<S> Timeout<S> {
    pub fn new(inner: S, limit: Duration) -> Self {
        Self { inner, limit }
    }
}

impl<S, B> Service<Request> for Timeout<S>
where
    S: Service<Request, Response = Response<B>>,
    B: Default,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = Limited<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // A limit past what the clock can hold (REQUEST_TIMEOUT_SECONDS set
        // to "forever") is no limit.
        let deadline = Instant::now().checked_add(self.limit);
        Limited { response: self.inner.call(request), deadline, timer: None }
    }
}

pin_project! {
    /// A request's answer, or a 408 once its deadline has passed.
    pub struct Limited<F> {
        #[pin]
        response: F,
        deadline: Option<Instant>,
        #[pin]
        timer: Option<Sleep>,
    }
}

impl<F, B, E> Future for Limited<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Default,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(answer) = this.response.poll(cx) {
            return Poll::Ready(answer);
        }
        if this.timer.is_none()
            && let Some(deadline) = *this.deadline
        {
            this.timer.set(Some(tokio::time::sleep_until(deadline)));
        }
        match this.timer.as_pin_mut().map(|timer| timer.poll(cx)) {
            Some(Poll::Ready(())) => {
                let mut timed_out = Response::new(B::default());
                *timed_out.status_mut() = StatusCode::REQUEST_TIMEOUT;
                Poll::Ready(Ok(timed_out))
            }
            _ => Poll::Pending,
        }
    }
}
