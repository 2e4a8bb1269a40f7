//! The OpenAPI document, Swagger UI at `/docs` and ReDoc at `/redoc`, with
//! their assets compiled into the binary so they work with no internet access.

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use utoipa::openapi::OpenApi;

use crate::json::Json;

pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

static SWAGGER_UI_JS: &[u8] = include_bytes!("../../assets/swagger-ui-bundle.js");
static SWAGGER_UI_CSS: &[u8] = include_bytes!("../../assets/swagger-ui.css");
static REDOC_JS: &[u8] = include_bytes!("../../assets/redoc.standalone.js");

pub fn router<S: Clone + Send + Sync + 'static>(openapi: Arc<OpenApi>) -> Router<S> {
    let title = html_escape(&openapi.info.title);
    let swagger = Html(format!(
        r##"<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title} - Swagger UI</title>
<link rel="stylesheet" href="/docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{
  url: "{OPENAPI_PATH}",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  persistAuthorization: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset]
}});
</script></body></html>"##
    ));
    let redoc = Html(format!(
        r##"<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title} - ReDoc</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><redoc spec-url="{OPENAPI_PATH}"></redoc>
<script src="/redoc/redoc.standalone.js"></script></body></html>"##
    ));
    Router::new()
        .route(OPENAPI_PATH, get(move || async move { Json(openapi) }))
        .route("/docs", get(move || async move { swagger }))
        .route("/redoc", get(move || async move { redoc }))
        .route("/docs/swagger-ui-bundle.js", get(|| async { asset("text/javascript", SWAGGER_UI_JS) }))
        .route("/docs/swagger-ui.css", get(|| async { asset("text/css", SWAGGER_UI_CSS) }))
        .route("/redoc/redoc.standalone.js", get(|| async { asset("text/javascript", REDOC_JS) }))
}

fn asset(content_type: &'static str, body: &'static [u8]) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=86400")], body).into_response()
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
