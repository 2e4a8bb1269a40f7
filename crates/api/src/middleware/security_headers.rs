//! Headers that cost nothing and close whole classes of browser attacks on an
//! API: no MIME sniffing, no framing, no referrer leaking tokens in URLs.
//! Caddy sets them too; the api sets them so it is safe without Caddy. A
//! route that sets one of them itself keeps its own value.

use axum::http::{HeaderName, HeaderValue, header};
use tower::ServiceBuilder;
use tower::layer::util::{Identity, Stack};
use tower_http::set_header::SetResponseHeaderLayer;

type Set = SetResponseHeaderLayer<HeaderValue>;
type Layers = Stack<Set, Stack<Set, Stack<Set, Identity>>>;

/// One layer per header, each holding its value: tower-http's
/// multiple-headers layer boxes each value's maker and clones the boxes on
/// every request.
pub fn layers() -> Layers {
    let set = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
    };
    ServiceBuilder::new()
        .layer(set(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(set(header::X_FRAME_OPTIONS, "DENY"))
        .layer(set(header::REFERRER_POLICY, "strict-origin-when-cross-origin"))
        .into_inner()
}
