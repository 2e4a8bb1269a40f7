//! `x-request-id`: the caller's id when it sent one fit for the logs,
//! else a new UUID. It is set in the request's header, where the layers
//! below read it (an extension as well cost a map entry and two
//! allocations per request), and echoed on the response. A caller's id
//! ends up in every log line of its request, so one that is not short and
//! plain is replaced like a missing one.
//!
//! One service of our own instead of tower-http's three layers (drop an
//! unfit id, set, propagate), which wrapped the request and its response
//! future three times and made each UUID's header through a `String`.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;
use pin_project_lite::pin_project;
use tower::Service;
use uuid::Uuid;

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(Clone)]
pub struct RequestIds<S> {
    inner: S,
}

impl<S> RequestIds<S> {
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S> Service<Request> for RequestIds<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Echoed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let id = match request.headers().get(&X_REQUEST_ID) {
            Some(given) if fit_for_logs(given) => Some(given.clone()),
            _ => {
                let id = new_id();
                // Below this layer the header holds a fit id or none.
                match &id {
                    Some(id) => request.headers_mut().insert(X_REQUEST_ID.clone(), id.clone()),
                    None => request.headers_mut().remove(&X_REQUEST_ID),
                };
                id
            }
        };
        Echoed { response: self.inner.call(request), id }
    }
}

pin_project! {
    /// The response on its way, with the id to echo on it.
    pub struct Echoed<F> {
        #[pin]
        response: F,
        id: Option<HeaderValue>,
    }
}

impl<F, E> Future for Echoed<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = std::task::ready!(this.response.poll(cx))?;
        if let Some(id) = this.id.take()
            && !response.headers().contains_key(&X_REQUEST_ID)
        {
            response.headers_mut().insert(X_REQUEST_ID.clone(), id);
        }
        Poll::Ready(Ok(response))
    }
}

/// A new UUID as a header value, written without a `String` between.
// Not inlined, so that scripts/bench/callgrind.sh can show it on its own.
#[inline(never)]
fn new_id() -> Option<HeaderValue> {
    let mut text = [0; uuid::fmt::Hyphenated::LENGTH];
    HeaderValue::from_bytes(Uuid::new_v4().hyphenated().encode_lower(&mut text).as_bytes()).ok()
}

/// The request's id as text ("" for none). Below this layer only: above
/// it, the header holds whatever the caller sent.
pub fn of(request: &Request) -> &str {
    text(request.headers().get(&X_REQUEST_ID))
}

/// The request's id, kept for when the request has been handed on: a
/// reference to the same bytes, not a copy.
pub fn kept(request: &Request) -> Option<HeaderValue> {
    request.headers().get(&X_REQUEST_ID).cloned()
}

/// A kept id as text ("" for none).
pub fn text(id: Option<&HeaderValue>) -> &str {
    id.and_then(|id| id.to_str().ok()).unwrap_or_default()
}

fn fit_for_logs(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}
