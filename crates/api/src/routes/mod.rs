//! The public router: every route, the OpenAPI document built from the same
//! declarations, and the middleware stack.

pub mod docs;
pub mod health;

use std::sync::Arc;

use axum::Router;
use axum::http::Uri;
use axum::routing::get;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::middleware::{self, trailing_slash::KnownPaths};
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(description = "Users, items and background jobs over HTTP."),
    tags(
        (name = "login"),
        (name = "users"),
        (name = "utils"),
        (name = "items"),
        (name = "private"),
        (name = "jobs"),
    )
)]
struct ApiDoc;

pub fn router(state: AppState) -> Router {
    let (api, mut openapi) =
        OpenApiRouter::with_openapi(ApiDoc::openapi()).routes(routes!(health::health_check)).split_for_parts();
    openapi.info.title = state.settings.project_name.clone();
    openapi.info.version = env!("CARGO_PKG_VERSION").to_owned();

    let known = KnownPaths::new(openapi.paths.paths.keys().map(String::as_str));
    let router = Router::new()
        .merge(api)
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/health", get(health::health))
        .merge(docs::router(Arc::new(openapi)))
        .fallback(move |uri: Uri| async move { known.fallback(&uri) })
        .with_state(state.clone());
    middleware::apply(router, &state.settings.http)
}
