//! Error reports (Sentry, when `SENTRY_DSN` is set): each request gets a
//! scope of its own, carrying its method, URL and non-sensitive headers (no
//! body, no Authorization or cookies), its request id and its route
//! template, so an event raised by its ERROR log line (a 500, a panic)
//! names the request. Without a Sentry client these layers are not added.

use axum::extract::{MatchedPath, Request};
use sentry::integrations::tower::{NewSentryLayer, SentryHttpLayer};
use tower::ServiceBuilder;
use tower::layer::util::{Identity, Stack};
use tower::util::MapRequestLayer;

use super::request_id;

fn enabled() -> bool {
    sentry::Hub::main().client().is_some()
}

/// The per-request scope, outermost first; outside the request id layer.
pub fn scope_layers() -> Option<Stack<SentryHttpLayer, Stack<NewSentryLayer<Request>, Identity>>> {
    enabled()
        .then(|| ServiceBuilder::new().layer(NewSentryLayer::new_from_top()).layer(SentryHttpLayer::new()).into_inner())
}

type TagScope = MapRequestLayer<fn(Request) -> Request>;

/// Tags the request's scope; inside the request id layer, where the route
/// template is known. (It runs as the request enters, inside the scope's
/// future.)
pub fn tag_layer() -> Option<TagScope> {
    enabled().then(|| MapRequestLayer::new(tag_scope as fn(Request) -> Request))
}

fn tag_scope(request: Request) -> Request {
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let request_id = request_id::of(&request);
    sentry::configure_scope(|scope| {
        if let Some(route) = &route {
            scope.set_tag("route", route);
            scope.set_transaction(Some(&format!("{} {route}", request.method())));
        }
        if !request_id.is_empty() {
            scope.set_tag("request_id", request_id);
        }
    });
    request
}
