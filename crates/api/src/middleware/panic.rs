//! A panic in a handler becomes a logged 500 with the request id in its body;
//! the connection and the process carry on serving. (tower-http's
//! `CatchPanicLayer` hands its handler the panic payload only, not the
//! request, so it cannot put the request id in the body.) A tower layer of
//! its own rather than an axum `from_fn` middleware, which clones and boxes
//! the stack below it on every request. A panic while the route's future is
//! made is caught as well as one while it runs, as `from_fn` did (it made
//! the future inside its own).

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::BoxError;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{self, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use futures_util::future::CatchUnwind;
use pin_project_lite::pin_project;
use serde_json::json;
use tower::Service;

use super::request_id;
use crate::json::Json;

#[derive(Clone)]
pub struct CatchPanic<S> {
    inner: S,
}

impl<S> CatchPanic<S> {
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S, B> Service<Request> for CatchPanic<S>
where
    S: Service<Request, Response = http::Response<B>>,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Caught<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let request_id = request_id::kept(&request);
        let response = match catch_unwind(AssertUnwindSafe(|| self.inner.call(request))) {
            Ok(response) => Some(AssertUnwindSafe(response).catch_unwind()),
            Err(payload) => {
                log_panic(&*payload);
                None
            }
        };
        Caught { response, request_id }
    }
}

pin_project! {
    /// The route's response, or the 500 for a panic in it. `response` is
    /// `None` when the route panicked while it was being started, before
    /// it had a future.
    pub struct Caught<F> {
        #[pin]
        response: Option<CatchUnwind<AssertUnwindSafe<F>>>,
        request_id: Option<HeaderValue>,
    }
}

impl<F, B, E> Future for Caught<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(response) = this.response.as_pin_mut() else {
            return Poll::Ready(Ok(internal_error(this.request_id.as_ref())));
        };
        Poll::Ready(match std::task::ready!(response.poll(cx)) {
            Ok(result) => result.map(|response| response.map(Body::new)),
            Err(payload) => {
                log_panic(&*payload);
                Ok(internal_error(this.request_id.as_ref()))
            }
        })
    }
}

fn log_panic(payload: &(dyn Any + Send)) {
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("non-string panic payload");
    tracing::error!(panic = %message, "handler panicked");
}

fn internal_error(request_id: Option<&HeaderValue>) -> Response {
    let body = json!({ "detail": "Internal Server Error", "request_id": request_id::text(request_id) });
    (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
}
