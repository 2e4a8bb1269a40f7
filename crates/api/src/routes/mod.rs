//! The public router: every route, the OpenAPI document built from the same
//! declarations, and the middleware stack.

pub mod docs;
pub mod health;
pub mod items;
pub mod jobs;
pub mod login;
pub mod private;
pub mod responses;
pub mod users;
pub mod utils;

use std::sync::Arc;

use axum::Router;
use axum::http::Uri;
use axum::routing::get;
use shared_core::config::Environment;
use utoipa::openapi::security::{Flow, OAuth2, Password, Scopes, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::middleware::rate_limit::RateLimitLayer;
use crate::middleware::{self, RequestTasks, trailing_slash::KnownPaths};
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(description = "Users, items and background jobs over HTTP."),
    modifiers(&PasswordFlow),
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

/// The `Authorize` button of `/docs`: OAuth2 password flow against the login
/// route, named as FastAPI names it.
struct PasswordFlow;

impl Modify for PasswordFlow {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let flow = Flow::Password(Password::new("/api/v1/login/access-token", Scopes::new()));
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("OAuth2PasswordBearer", SecurityScheme::OAuth2(OAuth2::new([flow])));
    }
}

/// Every route behind a token answers 400 `Inactive user` for a deactivated
/// account (FastAPI's `get_current_active_user`): documented here once, on
/// the finished document, rather than on each route.
fn document_inactive_user(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::ResponseBuilder;
    for item in openapi.paths.paths.values_mut() {
        let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
        for operation in operations.into_iter().flatten() {
            if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
                let responses = &mut operation.responses.responses;
                responses
                    .entry("400".into())
                    .or_insert_with(|| ResponseBuilder::new().description("Inactive user").build().into());
            }
        }
    }
}

pub fn router(state: AppState, tasks: &RequestTasks) -> impl middleware::App + use<> {
    let mut api = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(login::login_access_token))
        .routes(routes!(login::test_token))
        .routes(routes!(login::recover_password))
        .routes(routes!(login::reset_password))
        .routes(routes!(login::recover_password_html_content))
        .routes(routes!(users::read_users, users::create_user))
        .routes(routes!(users::read_user_me, users::update_user_me, users::delete_user_me))
        .routes(routes!(users::update_password_me))
        .routes(routes!(users::register_user))
        .routes(routes!(users::read_user_by_id, users::update_user, users::delete_user))
        .routes(routes!(utils::test_email))
        .routes(routes!(health::health_check))
        .routes(routes!(items::read_items, items::create_item))
        .routes(routes!(items::read_item, items::update_item, items::delete_item))
        .routes(routes!(jobs::create_job, jobs::read_jobs))
        .routes(routes!(jobs::read_job))
        .routes(routes!(jobs::cancel_job))
        .routes(routes!(jobs::read_job_result));
    if state.settings.environment == Environment::Local {
        api = api.routes(routes!(private::create_user));
    }
    let (api, mut openapi) = api.split_for_parts();
    document_inactive_user(&mut openapi);
    openapi.info.title = state.settings.project_name.clone();
    openapi.info.version = env!("CARGO_PKG_VERSION").to_owned();

    let known = KnownPaths::new(openapi.paths.paths.keys().map(String::as_str));
    let api = api.layer(RateLimitLayer::new(state.clone()));
    let router = Router::new()
        .merge(api)
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/health", get(health::health))
        .merge(docs::router(Arc::new(openapi)))
        .fallback(move |uri: Uri| async move { known.fallback(&uri) })
        .with_state(state.clone());
    middleware::apply(router, &state.settings.http, tasks)
}
