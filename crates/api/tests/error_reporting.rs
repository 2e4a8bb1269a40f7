//! Error reports to Sentry (`SENTRY_DSN`, honoured outside local as the
//! FastAPI template does), received by an ingestion endpoint of the test's
//! own (`SentryCatcher`): a 500 and a panic arrive with the request id and
//! the route template, without request bodies or credentials; a 4xx does
//! not arrive at all.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use axum::Router;
use axum::routing::post;
use common::api_process::ApiProcess;
use common::{SUPERUSER, SUPERUSER_PASSWORD, TestDb, on_both_backends, settings_for};
use serde_json::Value;
use shared_core::db::Backend;
use shared_core::testing::SentryCatcher;
use sqlx::Connection;

on_both_backends!(a_500_from_the_api_binary_is_reported_with_its_request);

fn report_to(env: &mut std::collections::HashMap<String, String>, catcher: &SentryCatcher) {
    env.insert("ENVIRONMENT".into(), "staging".into());
    env.insert("SENTRY_DSN".into(), catcher.dsn());
}

async fn a_500_from_the_api_binary_is_reported_with_its_request(backend: Backend) {
    let catcher = SentryCatcher::start().await;
    let db = TestDb::new(backend).await;
    let api = ApiProcess::start(&db, |env| report_to(env, &catcher)).await;
    let base = format!("http://127.0.0.1:{}", api.port);
    let http = reqwest::Client::new();
    let form = [("username", SUPERUSER), ("password", SUPERUSER_PASSWORD)];
    let login: Value =
        http.post(format!("{base}/api/v1/login/access-token")).form(&form).send().await.unwrap().json().await.unwrap();
    let token = login["access_token"].as_str().unwrap().to_owned();

    // A database that lost a table: every item query fails, a real 500.
    match backend {
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query("DROP TABLE item").execute(&mut conn).await.unwrap();
        }
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::query("DROP TABLE item").execute(&mut conn).await.unwrap();
        }
    }
    let missing = http.get(format!("{base}/api/v1/nothing")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let failed = http
        .get(format!("{base}/api/v1/items/"))
        .bearer_auth(&token)
        .header("x-request-id", "report-me-1")
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 500);

    let event = catcher
        .wait_for(Duration::from_secs(10), |e| e["tags"]["request_id"] == "report-me-1")
        .await
        .unwrap_or_else(|| panic!("no event for the 500; received {:?}\n{}", catcher.events(), api.log()));
    // Sentry's protocol leaves out the default level, error.
    assert!(event.get("level").is_none_or(|level| level == "error"), "{event}");
    assert_eq!(event["tags"]["route"], "/api/v1/items/", "{event}");
    assert_eq!(event["transaction"], "GET /api/v1/items/", "{event}");
    assert_eq!(event["environment"], "staging", "{event}");
    assert_eq!(event["request"]["method"], "GET", "{event}");
    let text = event.to_string();
    assert!(!text.contains(&token), "the bearer token was sent: {event}");
    assert_eq!(catcher.events().len(), 1, "only the 500 is reported, not the 404: {:?}", catcher.events());
}

async fn boom() -> &'static str {
    panic!("handler bug")
}

/// The in-process stack with error reporting initialised as the binaries
/// do it: a panicking handler's report carries the route and request id,
/// not the body the client sent nor its credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_reported_with_its_request_but_not_its_body() {
    let catcher = SentryCatcher::start().await;
    let db = TestDb::new(Backend::Sqlite).await;
    let settings = settings_for(&db, |env| report_to(env, &catcher));
    let _reporting = shared_core::telemetry::init(&settings);

    let tasks = api::middleware::RequestTasks::new(8);
    let app = api::middleware::apply(Router::new().route("/boom", post(boom)), &settings.http, &tasks);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/boom", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, tower::make::Shared::new(app)).await });

    let response = reqwest::Client::new()
        .post(&url)
        .header("x-request-id", "panic-report-1")
        .header("authorization", "Bearer not-for-sentry")
        .body(r#"{"password": "secret-body-value"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    let event = catcher
        .wait_for(Duration::from_secs(10), |e| e["tags"]["request_id"] == "panic-report-1")
        .await
        .unwrap_or_else(|| panic!("no event for the panic; received {:?}", catcher.events()));
    assert_eq!(event["tags"]["route"], "/boom", "{event}");
    let text = event.to_string();
    assert!(text.contains("handler bug"), "{event}");
    assert!(!text.contains("secret-body-value"), "the request body was sent: {event}");
    assert!(!text.contains("not-for-sentry"), "the Authorization header was sent: {event}");
}
