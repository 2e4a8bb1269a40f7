//! Headers that cost nothing and close whole classes of browser attacks on an
//! API: no MIME sniffing, no framing, no referrer leaking tokens in URLs.
//! Caddy sets them too; the api sets them so it is safe without Caddy. A
//! route that sets one of them itself keeps its own value.
//!
//! A plain function over the response (tower's `MapResponseLayer`), each
//! header looked up once: tower-http's layer, one per header, looked each
//! up twice (is it there, then insert).

use axum::http::{HeaderName, HeaderValue, header};
use axum::response::Response;
use tower::util::MapResponseLayer;

const HEADERS: [(HeaderName, HeaderValue); 3] = [
    (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
    (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    (header::REFERRER_POLICY, HeaderValue::from_static("strict-origin-when-cross-origin")),
];

pub fn layer() -> MapResponseLayer<fn(Response) -> Response> {
    MapResponseLayer::new(with_security_headers)
}

fn with_security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in HEADERS {
        headers.entry(name).or_insert(value);
    }
    response
}
