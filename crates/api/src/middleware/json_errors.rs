//! Error responses produced below the handlers (axum's 405, the body limit's
//! 413, the timeout's 408, a missing content type's 415) come with plain-text
//! or empty bodies. Clients of the contract expect `{"detail": ...}` on every
//! error, so any non-JSON error body is replaced here.
//!
//! A plain function over the response (tower's `MapResponseLayer`), not an
//! axum `from_fn` middleware: that one clones and boxes the whole stack
//! below it and boxes its own future, on every request.

use axum::http::{StatusCode, header};
use axum::response::Response;
use tower::util::MapResponseLayer;

use crate::error::detail;

pub fn layer() -> MapResponseLayer<fn(Response) -> Response> {
    MapResponseLayer::new(json_errors)
}

fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    // Keep the original headers (e.g. `Allow` on a 405), swap the body.
    let (mut parts, _) = response.into_parts();
    let (json_parts, body) = detail(status, message(status)).into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.extend(json_parts.headers);
    Response::from_parts(parts, body)
}

/// Starlette's wording (Python's `HTTPStatus` phrases).
fn message(status: StatusCode) -> &'static str {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => "Request Entity Too Large",
        StatusCode::REQUEST_TIMEOUT => "Request Timeout",
        other => other.canonical_reason().unwrap_or("Error"),
    }
}
