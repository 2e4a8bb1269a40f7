//! The layers every request passes through, outermost first:
//! run to completion → error-report scope → request id → JSON error bodies →
//! security headers → (routing) → error-report tags → telemetry → CORS →
//! panic catcher → timeout → body limit → the route. (The error-report
//! layers exist only with a Sentry client.)

pub mod error_reporting;
pub mod json_errors;
pub mod panic;
pub mod rate_limit;
pub mod request_id;
pub mod run_to_completion;
pub mod security_headers;
pub mod telemetry;
pub mod trailing_slash;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode};
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use shared_core::config::HttpSettings;

pub use run_to_completion::RequestTasks;

pub fn apply(router: Router, http: &HttpSettings, tasks: &RequestTasks) -> Router {
    // Inside the router: what needs the route template (telemetry, the
    // error-report tags) and everything whose outcome the access log line
    // must record (CORS answers, panics, timeouts, the body limit).
    let routed = router
        .layer(RequestBodyLimitLayer::new(http.max_body_bytes))
        .layer(DefaultBodyLimit::max(http.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, http.request_timeout))
        .layer(axum::middleware::from_fn(panic::catch_panic))
        .layer(cors(&http.cors_origins))
        .layer(axum::middleware::from_fn(telemetry::observe));
    let routed = error_reporting::tag_requests(routed);
    // Around the whole router, so the layers are not copied into every
    // route's stack: a layer clones what it wraps on each request, and a
    // route's stack is cloned whole, while the router is one `Arc`.
    let whole = Router::new()
        .fallback_service(routed)
        .layer(security_headers::layer())
        .layer(axum::middleware::from_fn(json_errors::json_errors));
    error_reporting::scope_per_request(request_id::apply(whole))
        .layer(axum::middleware::from_fn_with_state(tasks.clone(), run_to_completion::run_to_completion))
}

/// Credentialed CORS for the configured origins only. Methods and headers
/// mirror the preflight, which is what FastAPI's `["*"]` amounts to; a
/// wildcard origin is refused at configuration time.
fn cors(origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_credentials(true)
        .allow_methods(AllowMethods::mirror_request())
        .allow_headers(AllowHeaders::mirror_request())
}
