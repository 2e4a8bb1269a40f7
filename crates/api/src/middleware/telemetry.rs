//! A span per request (method, route template, request id) over the lines
//! its handler logs, a closing log line whose span adds status and latency,
//! and the request metrics, all keyed by the
//! route template so `/items/{id}` is one series, not one per id. A 404 line
//! also carries the path asked for: "unmatched" alone does not say what was
//! missing.

use std::collections::HashMap;
use std::sync::{LazyLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Counter, Gauge, Histogram};
use tracing::Instrument;

use super::request_id;

/// Requests that matched no route share one label, so scanners cannot blow
/// up the number of series.
const UNMATCHED: &str = "unmatched";

/// Enough of a path to recognise it; a scanner's 8 KiB path stays out of the log.
const LOGGED_PATH_MAX: usize = 200;

pub async fn observe(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().map_or(UNMATCHED, |p| p.as_str()).to_owned();
    let request_id = request_id::of(&request).to_owned();
    let path = request.uri().path().to_owned();
    // The span the handler's own log lines carry. Fields given as `&str`
    // are written as they are; `%` would run each through the formatter.
    let handling = tracing::info_span!(
        "request",
        method = method.as_str(),
        route = route.as_str(),
        request_id = request_id.as_str()
    );

    let started = Instant::now();
    let in_flight = InFlight::enter();
    let response = next.run(request).instrument(handling).await;
    drop(in_flight);
    let latency = started.elapsed();

    let status = response.status().as_u16();
    // Hundredths of a millisecond: finer digits are noise, not information.
    let latency_ms = (latency.as_secs_f64() * 100_000.0).round() / 100.0;
    // The closing line gets a span of its own with every field at once:
    // recording status and latency on the handling span would re-format
    // its JSON fields on each record, a seventh of a /healthz request.
    let path = (status == 404).then(|| truncated(&path));
    let finished = tracing::info_span!(
        "request",
        method = method.as_str(),
        route = route.as_str(),
        request_id = request_id.as_str(),
        status,
        latency_ms,
        path
    );
    finished.in_scope(|| tracing::info!("request finished"));

    record(&method, &route, status, latency);
    response
}

/// One series of the request metrics: a method, a route and a status.
struct Series {
    requests: Counter,
    duration: Histogram,
}

/// Each series' handles, looked up in the recorder once. The recorder's own
/// lookup (`counter!` with labels) builds the series' key, three label
/// strings and a hash, on every call: a tenth of a `/healthz` request.
static SERIES: LazyLock<RwLock<HashMap<(Method, u16), ByRoute>>> = LazyLock::new(Default::default);

/// The series of one method and status, by route template.
type ByRoute = HashMap<Box<str>, Series>;

fn record(method: &Method, route: &str, status: u16, latency: Duration) {
    let key = (method.clone(), status);
    let seen = SERIES.read().unwrap_or_else(PoisonError::into_inner);
    if let Some(series) = seen.get(&key).and_then(|routes| routes.get(route)) {
        series.requests.increment(1);
        series.duration.record(latency.as_secs_f64());
        return;
    }
    drop(seen);
    let labels = [("method", method.to_string()), ("route", route.to_owned()), ("status", status.to_string())];
    let series = Series {
        requests: metrics::counter!("http_requests_total", &labels),
        duration: metrics::histogram!("http_request_duration_seconds", &labels),
    };
    series.requests.increment(1);
    series.duration.record(latency.as_secs_f64());
    SERIES.write().unwrap_or_else(PoisonError::into_inner).entry(key).or_default().insert(route.into(), series);
}

fn truncated(path: &str) -> &str {
    match path.char_indices().nth(LOGGED_PATH_MAX) {
        Some((end, _)) => &path[..end],
        None => path,
    }
}

/// The in-flight gauge goes back down even when the client disconnects and
/// the request future is dropped half-way.
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
