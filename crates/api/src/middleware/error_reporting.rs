//! Error reports (Sentry, when `SENTRY_DSN` is set): each request gets a
//! scope of its own, carrying its method, URL and non-sensitive headers (no
//! body, no Authorization or cookies), its request id and its route
//! template, so an event raised by its ERROR log line (a 500, a panic)
//! names the request. Without a Sentry client these layers are not added.

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use sentry::integrations::tower::{NewSentryLayer, SentryHttpLayer};

use super::request_id;

fn enabled() -> bool {
    sentry::Hub::main().client().is_some()
}

/// The per-request scope; outside the request id layer.
pub fn scope_per_request(router: Router) -> Router {
    if !enabled() {
        return router;
    }
    router.layer(SentryHttpLayer::new()).layer(NewSentryLayer::<Request>::new_from_top())
}

/// Tags the request's scope; inside the request id layer.
pub fn tag_requests(router: Router) -> Router {
    if !enabled() {
        return router;
    }
    router.layer(axum::middleware::from_fn(tag_scope))
}

async fn tag_scope(request: Request, next: Next) -> Response {
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
    next.run(request).await
}
