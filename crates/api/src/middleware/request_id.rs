//! `x-request-id`: tower-http's `SetRequestId` generates a UUID when the
//! caller sent none and puts the id in the request extensions, and
//! `PropagateRequestId` echoes it on the response. A caller's id ends up in
//! every log line of its request, so one that is not short and plain is
//! dropped first and replaced like a missing one.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use tower::ServiceBuilder;
use tower::layer::util::{Identity, Stack};
use tower::util::MapRequestLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

type DropUnfitCallerId = MapRequestLayer<fn(Request) -> Request>;
type Layers =
    Stack<PropagateRequestIdLayer, Stack<SetRequestIdLayer<MakeRequestUuid>, Stack<DropUnfitCallerId, Identity>>>;

/// The id layers, outermost first: drop an unfit caller id, set, propagate.
pub fn layers() -> Layers {
    ServiceBuilder::new()
        .layer(MapRequestLayer::new(drop_unfit_caller_id as fn(Request) -> Request))
        .layer(SetRequestIdLayer::new(X_REQUEST_ID.clone(), MakeRequestUuid))
        .layer(PropagateRequestIdLayer::new(X_REQUEST_ID.clone()))
        .into_inner()
}

/// The request's id as text ("" outside the request id layers).
pub fn of(request: &Request) -> &str {
    text(request.extensions().get::<RequestId>())
}

/// The request's id, kept for when the request has been handed on: a
/// reference to the same bytes, not a copy.
pub fn kept(request: &Request) -> Option<RequestId> {
    request.extensions().get::<RequestId>().cloned()
}

/// A kept id as text ("" for none).
pub fn text(id: Option<&RequestId>) -> &str {
    id.and_then(|id| id.header_value().to_str().ok()).unwrap_or_default()
}

fn drop_unfit_caller_id(mut request: Request) -> Request {
    if request.headers().get(&X_REQUEST_ID).is_some_and(|id| !fit_for_logs(id)) {
        request.headers_mut().remove(&X_REQUEST_ID);
    }
    request
}

fn fit_for_logs(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}
