//! /healthz, /readyz, /health, the utils health check, and /metrics on its
//! own listener.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{on_both_backends, spawn_app};
use serde_json::Value;
use shared_core::db::Backend;

on_both_backends!(
    liveness_and_version,
    readiness_reports_each_check,
    readiness_fails_when_the_schema_is_behind,
    metrics_are_private_and_counted_by_route_template
);

async fn liveness_and_version(backend: Backend) {
    let app = spawn_app(backend).await;
    let healthz = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(healthz.status(), 200);
    assert_eq!(healthz.json::<Value>().await.unwrap(), serde_json::json!({"status": "ok"}));

    let health: Value = app.http.get(app.url("/health")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(health["environment"], "local");

    let check = app.http.get(app.url("/api/v1/utils/health-check/")).send().await.unwrap();
    assert_eq!(check.status(), 200);
    assert_eq!(check.text().await.unwrap(), "true");
    app.shutdown().await;
}

async fn readiness_reports_each_check(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    for check in ["database", "migrations"] {
        assert_eq!(body["checks"][check]["status"], "ok", "{body}");
        assert!(body["checks"][check]["latency_ms"].as_f64().is_some(), "{body}");
    }
    app.shutdown().await;
}

async fn readiness_fails_when_the_schema_is_behind(backend: Backend) {
    let app = spawn_app(backend).await;
    // What a deploy that forgot to migrate looks like from inside.
    shared_core::with_pool!(&app.state.db, |pool| {
        sqlx::query("DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)")
            .execute(pool)
            .await
            .map(drop)
    })
    .unwrap();
    let response = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["checks"]["database"]["status"], "ok");
    assert_eq!(body["checks"]["migrations"]["status"], "error");
    assert_eq!(body["checks"]["migrations"]["error"], "1 pending migration(s)");
    // Liveness does not depend on it.
    assert_eq!(app.http.get(app.url("/healthz")).send().await.unwrap().status(), 200);
    app.shutdown().await;
}

async fn metrics_are_private_and_counted_by_route_template(backend: Backend) {
    let app = spawn_app(backend).await;
    for _ in 0..3 {
        app.http.get(app.url("/api/v1/utils/health-check/")).send().await.unwrap();
    }
    app.http.get(app.url("/no/such/route")).send().await.unwrap();
    // A method of the client's own invention is not a series of its own.
    let invented = reqwest::Method::from_bytes(b"FROBNICATE").unwrap();
    app.http.request(invented, app.url("/no/such/route")).send().await.unwrap();

    let public = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), 404, "metrics must not be on the public listener");

    let text = app.http.get(app.metrics_url()).send().await.unwrap().text().await.unwrap();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with(r#"http_requests_total{method="GET",route="/api/v1/utils/health-check/",status="200"}"#)
        })
        .unwrap_or_else(|| panic!("no counter for the route template in:\n{text}"));
    let count: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 3.0, "{line}");
    assert!(text.contains(r#"route="unmatched",status="404""#), "unknown paths share one label:\n{text}");
    assert!(!text.contains("/no/such/route"));
    assert!(text.contains(r#"method="OTHER",route="unmatched",status="404""#), "{text}");
    assert!(!text.contains("FROBNICATE"), "{text}");
    assert!(text.contains("http_request_duration_seconds_bucket"));
    assert!(text.contains("http_requests_in_flight"));
    assert!(text.contains(&format!(r#"db_pool_connections{{backend="{}",state="idle"}}"#, backend.as_str())));
    app.shutdown().await;
}
