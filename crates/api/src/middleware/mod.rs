//! The layers every request passes through, outermost first:
//! run to completion → error-report scope → request id → JSON error bodies →
//! security headers → (routing) → error-report tags → telemetry → CORS →
//! panic catcher → timeout → body limit → the route. (The error-report
//! layers exist only with a Sentry client.)

pub mod cors;
pub mod error_reporting;
pub mod json_errors;
pub mod panic;
pub mod rate_limit;
pub mod request_id;
pub mod run_to_completion;
pub mod security_headers;
pub mod telemetry;
pub mod timeout;
pub mod trailing_slash;

use std::convert::Infallible;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::response::Response;
use tower::{Service, ServiceBuilder};
use tower_http::limit::RequestBodyLimitLayer;

use shared_core::config::HttpSettings;

pub use run_to_completion::RequestTasks;

/// A response future of a layer's slow path (waiting for a slot, for Redis),
/// boxed so that the usual path stays unboxed.
type BoxedResponse = std::pin::Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

/// The app as the server runs it: the router inside every layer, one
/// concrete service.
pub trait App:
    Service<Request, Response = Response, Error = Infallible, Future: Send + 'static> + Clone + Send + Sync + 'static
{
}

impl<S> App for S where
    S: Service<Request, Response = Response, Error = Infallible, Future: Send + 'static>
        + Clone
        + Send
        + Sync
        + 'static
{
}

pub fn apply(router: Router, http: &HttpSettings, tasks: &RequestTasks) -> impl App + use<> {
    // The request metrics keep the recorder's handles from a series' first
    // request on (`telemetry`), so the recorder is in place before any.
    shared_core::metrics::recorder();
    // Each group is one layer. `Router::layer` boxes every service it
    // wraps, and a request clones its route's stack, box by box: added one
    // by one, these layers made 43 boxed clones per /healthz request (a
    // `from_fn` layer clones the whole stack below it on every call too).
    //
    // Inside the router: what needs the route template (telemetry, the
    // error-report tags) and everything whose outcome the access log line
    // must record (CORS answers, panics, timeouts, the body limit).
    let origins = cors::origins(&http.cors_origins);
    let request_timeout = http.request_timeout;
    let routed = router.layer(
        ServiceBuilder::new()
            .option_layer(error_reporting::tag_layer())
            .layer_fn(telemetry::Observe::new)
            .layer_fn(move |inner| cors::Cors::new(inner, origins.clone()))
            .layer_fn(panic::CatchPanic::new)
            .layer_fn(move |inner| timeout::Timeout::new(inner, request_timeout))
            .layer(DefaultBodyLimit::max(http.max_body_bytes))
            .layer(RequestBodyLimitLayer::new(http.max_body_bytes)),
    );
    // Around the whole router, once, and not boxed: as the fallback of an
    // outer `Router`, these layers cost that router's dispatch and a boxed
    // clone of the stack on every request.
    let tasks = tasks.clone();
    ServiceBuilder::new()
        .layer_fn(move |inner| run_to_completion::RunToCompletion::new(inner, tasks.clone()))
        .option_layer(error_reporting::scope_layers())
        .layer_fn(request_id::RequestIds::new)
        .layer(json_errors::layer())
        .layer(security_headers::layer())
        .service(routed)
}
