//! The OpenAPI document and the offline Swagger UI / ReDoc pages.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{on_both_backends, spawn_app};
use reqwest::header;
use serde_json::Value;
use shared_core::db::Backend;

on_both_backends!(docs_pages_and_their_assets_are_served_by_the_binary);

async fn docs_pages_and_their_assets_are_served_by_the_binary(backend: Backend) {
    let app = spawn_app(backend).await;
    let openapi: Value = app.http.get(app.url("/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(openapi["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!(openapi["paths"]["/api/v1/utils/health-check/"]["get"]["operationId"], "utils-health_check");

    let swagger = app.http.get(app.url("/docs")).send().await.unwrap().text().await.unwrap();
    let redoc = app.http.get(app.url("/redoc")).send().await.unwrap().text().await.unwrap();
    assert!(swagger.contains("/api/v1/openapi.json") && redoc.contains("/api/v1/openapi.json"));
    // No CDN: every script and stylesheet the pages load is served by us.
    for page in [&swagger, &redoc] {
        assert!(!page.contains("http://") && !page.contains("https://"), "{page}");
    }
    for (path, content_type, min_len) in [
        ("/docs/swagger-ui-bundle.js", "text/javascript", 100_000),
        ("/docs/swagger-ui.css", "text/css", 10_000),
        ("/redoc/redoc.standalone.js", "text/javascript", 100_000),
    ] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()[header::CONTENT_TYPE], content_type);
        assert!(response.bytes().await.unwrap().len() > min_len, "{path}");
        assert!(swagger.contains(path) || redoc.contains(path), "{path} is referenced by a page");
    }
    app.shutdown().await;
}
