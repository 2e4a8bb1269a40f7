//! Credentialed CORS for the configured origins only. Methods and headers
//! mirror the preflight, which is what FastAPI's `["*"]` amounts to; a
//! wildcard origin is refused at configuration time.
//!
//! The headers are those tower-http's `CorsLayer` wrote with that
//! configuration (`tests/http_behaviour.rs` holds them, header by header),
//! answered by a service of our own: tower-http's built a header map and
//! the `Vary` text anew for every request and merged the map into the
//! response, about 6k instructions on every request (docs/benchmarks.md).
//! As there, every response gets `Vary` and
//! `Access-Control-Allow-Credentials`, a configured origin is echoed in
//! `Access-Control-Allow-Origin`, and any OPTIONS request is a preflight,
//! answered before the route.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::Response;
use pin_project_lite::pin_project;
use tower::Service;

/// What a response varies with: the origin, and for a preflight the method
/// and headers asked for.
static VARY: HeaderValue =
    HeaderValue::from_static("origin, access-control-request-method, access-control-request-headers");
static TRUE: HeaderValue = HeaderValue::from_static("true");

/// The configured origins, each as the header value a browser sends.
pub fn origins(configured: &[String]) -> Arc<[HeaderValue]> {
    configured.iter().filter_map(|origin| HeaderValue::from_str(origin).ok()).collect()
}

#[derive(Clone)]
pub struct Cors<S> {
    inner: S,
    origins: Arc<[HeaderValue]>,
}

impl<S> Cors<S> {
    pub fn new(inner: S, origins: Arc<[HeaderValue]>) -> Self {
        Self { inner, origins }
    }

    /// The request's origin, when it is one of the configured ones.
    fn allowed_origin(&self, request: &Request) -> Option<HeaderValue> {
        request.headers().get(header::ORIGIN).filter(|origin| self.origins.contains(origin)).cloned()
    }
}

impl<S> Service<Request> for Cors<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = CorsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let origin = self.allowed_origin(&request);
        if request.method() == Method::OPTIONS {
            return CorsFuture::Preflight { response: Some(preflight(&request, origin)) };
        }
        CorsFuture::Route { response: self.inner.call(request), origin }
    }
}

/// 200 with no body: the answer every response gets, and the method and
/// headers asked for, mirrored.
fn preflight(request: &Request, origin: Option<HeaderValue>) -> Response {
    let mut response = Response::default();
    let headers = response.headers_mut();
    answer(headers, origin);
    let asked = request.headers();
    if let Some(method) = asked.get(header::ACCESS_CONTROL_REQUEST_METHOD) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, method.clone());
    }
    if let Some(names) = asked.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, names.clone());
    }
    response
}

/// What every response gets. A route's own `Vary` is kept, CORS's added
/// beside it; the other two replace whatever the route set.
fn answer(headers: &mut HeaderMap, origin: Option<HeaderValue>) {
    headers.append(header::VARY, VARY.clone());
    headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE.clone());
    if let Some(origin) = origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
}

pin_project! {
    #[project = CorsProjection]
    pub enum CorsFuture<F> {
        Route {
            #[pin]
            response: F,
            origin: Option<HeaderValue>,
        },
        Preflight {
            response: Option<Response>,
        },
    }
}

impl<F, E> Future for CorsFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            CorsProjection::Route { response, origin } => {
                let mut response = std::task::ready!(response.poll(cx))?;
                answer(response.headers_mut(), origin.take());
                Poll::Ready(Ok(response))
            }
            // Polled once: a future is not polled again once it is ready.
            CorsProjection::Preflight { response } => Poll::Ready(Ok(response.take().unwrap_or_default())),
        }
    }
}
