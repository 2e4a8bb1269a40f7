//! Headers that cost nothing and close whole classes of browser attacks on an
//! API: no MIME sniffing, no framing, no referrer leaking tokens in URLs.
//! Caddy sets them too; the api sets them so it is safe without Caddy. A
//! route that sets one of them itself keeps its own value.

use axum::http::{HeaderValue, header};
use axum::response::Response;
use tower_http::set_header::response::SetMultipleResponseHeadersLayer;

pub fn layer() -> SetMultipleResponseHeadersLayer<Response> {
    SetMultipleResponseHeadersLayer::if_not_present(vec![
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")).into(),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")).into(),
        (header::REFERRER_POLICY, HeaderValue::from_static("strict-origin-when-cross-origin")).into(),
    ])
}
