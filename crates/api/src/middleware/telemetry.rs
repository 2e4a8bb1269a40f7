//! A span per request (method, route template, request id) over the lines
//! its handler logs and over its closing log line, for which status and
//! latency are added to it, and the request metrics, all keyed by the
//! route template so `/items/{id}` is one series, not one per id. A 404 line
//! also carries the path asked for: "unmatched" alone does not say what was
//! missing.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{LazyLock, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, Uri};
use axum::response::Response;
use metrics::{Counter, Gauge, Histogram};
use pin_project_lite::pin_project;
use tower::Service;
use tracing::field::Empty;
use tracing::instrument::Instrumented;
use tracing::{Instrument, Span};

use super::request_id;

/// Requests that matched no route share one label, so scanners cannot blow
/// up the number of series.
const UNMATCHED: &str = "unmatched";

/// Enough of a path to recognise it; a scanner's 8 KiB path stays out of the log.
const LOGGED_PATH_MAX: usize = 200;

/// The telemetry service, around every route. A tower service of its own
/// rather than an axum `from_fn` middleware: that one clones and boxes the
/// whole stack below it and boxes its own future, on every request.
#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
}

impl<S> Observe<S> {
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S> Service<Request> for Observe<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Observed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // Kept by reference count, not copied: the path is logged only for a 404.
        let started = Started {
            method: request.method().clone(),
            route: request.extensions().get::<MatchedPath>().cloned(),
            uri: request.uri().clone(),
            at: Instant::now(),
            in_flight: InFlight::enter(),
        };
        // The span the handler's own log lines carry, and then the closing
        // line. Fields given as `&str` are written as they are; `%` would
        // run each through the formatter.
        let handling = tracing::info_span!(
            "request",
            method = started.method.as_str(),
            route = started.route(),
            request_id = request_id::of(&request),
            status = Empty,
            latency_ms = Empty,
            path = Empty
        );
        let response = handling.in_scope(|| self.inner.call(request)).instrument(handling);
        Observed { response, started: Some(started) }
    }
}

pin_project! {
    /// A request on its way through the route; its line and metrics are
    /// written when the response is ready. A request whose client goes away
    /// still runs to the end (`run_to_completion`); one dropped half-way all
    /// the same (the runtime shutting down) writes neither, and the
    /// in-flight gauge goes back down.
    pub struct Observed<F> {
        #[pin]
        response: Instrumented<F>,
        started: Option<Started>,
    }
}

impl<F, E> Future for Observed<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let result = std::task::ready!(this.response.as_mut().poll(cx));
        if let (Ok(response), Some(started)) = (&result, this.started.take()) {
            started.finish(response.status().as_u16(), this.response.span());
        }
        Poll::Ready(result)
    }
}

/// What is known of a request when it arrives.
struct Started {
    method: Method,
    route: Option<MatchedPath>,
    uri: Uri,
    at: Instant,
    in_flight: InFlight,
}

impl Started {
    fn route(&self) -> &str {
        route(self.route.as_ref())
    }

    /// The access log line and the request metrics.
    fn finish(self, status: u16, handling: &Span) {
        let Self { method, route: matched, uri, at, in_flight } = self;
        drop(in_flight);
        let route = route(matched.as_ref());
        let latency = at.elapsed();
        // Hundredths of a millisecond: finer digits are noise, not information.
        let latency_ms = (latency.as_secs_f64() * 100_000.0).round() / 100.0;
        let path = (status == 404).then(|| truncated(uri.path()));
        // Added to the request's span in one record, which writes its
        // stored fields once more: a span of its own for the line cost
        // twice that.
        tracing::record_all!(handling, status, latency_ms, path);
        // Logged inside the span, not with it as an explicit parent: a log
        // filter that names the span (`[request]=info`) looks only at the
        // spans entered.
        handling.in_scope(|| tracing::info!("request finished"));
        record(&method, route, status, latency);
    }
}

/// One series of the request metrics: a method, a route and a status.
struct Series {
    requests: Counter,
    duration: Histogram,
}

/// Each series' handles, looked up in the recorder once. The recorder's own
/// lookup (`counter!` with labels) builds the series' key, three label
/// strings and a hash, on every call: a tenth of a `/healthz` request.
static SERIES: LazyLock<RwLock<HashMap<(&'static str, u16), ByRoute>>> = LazyLock::new(Default::default);

/// The series of one method and status, by route template.
type ByRoute = HashMap<Box<str>, Series>;

// Not inlined, so that scripts/bench/callgrind.sh can show it on its own.
#[inline(never)]
fn record(method: &Method, route: &str, status: u16, latency: Duration) {
    let key = (method_label(method), status);
    let seen = SERIES.read().unwrap_or_else(PoisonError::into_inner);
    if let Some(series) = seen.get(&key).and_then(|routes| routes.get(route)) {
        series.requests.increment(1);
        series.duration.record(latency.as_secs_f64());
        return;
    }
    drop(seen);
    let labels = [("method", key.0.to_owned()), ("route", route.to_owned()), ("status", status.to_string())];
    let series = Series {
        requests: metrics::counter!("http_requests_total", &labels),
        duration: metrics::histogram!("http_request_duration_seconds", &labels),
    };
    series.requests.increment(1);
    series.duration.record(latency.as_secs_f64());
    SERIES.write().unwrap_or_else(PoisonError::into_inner).entry(key).or_default().insert(route.into(), series);
}

/// HTTP's own methods by name; any other is "OTHER". A client may send any
/// token as a method, and each would otherwise be a series of its own
/// (the access line still has the method as sent).
fn method_label(method: &Method) -> &'static str {
    const STANDARD: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"];
    STANDARD.into_iter().find(|name| *name == method.as_str()).unwrap_or("OTHER")
}

/// The route template, or one label for every path no route matched.
fn route(matched: Option<&MatchedPath>) -> &str {
    matched.map_or(UNMATCHED, MatchedPath::as_str)
}

fn truncated(path: &str) -> &str {
    match path.char_indices().nth(LOGGED_PATH_MAX) {
        Some((end, _)) => &path[..end],
        None => path,
    }
}

/// The in-flight gauge goes back down even when the request's future is
/// dropped half-way.
struct InFlight;

/// Looked up once, as the series above are. The recorder is installed at
/// start-up (`shared_core::metrics::recorder`), before any request.
static IN_FLIGHT: LazyLock<Gauge> = LazyLock::new(|| metrics::gauge!("http_requests_in_flight"));

impl InFlight {
    fn enter() -> Self {
        IN_FLIGHT.increment(1.0);
        Self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.decrement(1.0);
    }
}
