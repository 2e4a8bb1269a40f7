//! The layers every request passes through, outermost first:
//! run to completion → error-report scope → request id → error-report tags →
//! telemetry → JSON error bodies → security headers → CORS → panic catcher →
//! timeout → body limit → the route. (The error-report layers exist only
//! with a Sentry client.)

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
    let router = router
        .layer(RequestBodyLimitLayer::new(http.max_body_bytes))
        .layer(DefaultBodyLimit::max(http.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, http.request_timeout))
        .layer(axum::middleware::from_fn(panic::catch_panic))
        .layer(cors(&http.cors_origins))
        .layer(security_headers::layer())
        .layer(axum::middleware::from_fn(json_errors::json_errors))
        .layer(axum::middleware::from_fn(telemetry::observe));
    let router = request_id::apply(error_reporting::tag_requests(router));
    error_reporting::scope_per_request(router)
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
