//! Tag `utils`: the test email (health-check is in tests/health.rs).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{on_both_backends, spawn_app, spawn_app_with};
use reqwest::Method;
use serde_json::json;
use shared_core::db::Backend;

on_both_backends!(
    test_email_is_queued_for_the_address,
    test_email_without_smtp_is_a_503,
    test_email_validates_its_address
);

async fn test_email_is_queued_for_the_address(backend: Backend) {
    let app = spawn_app_with(backend, |env| {
        common::with_smtp(env, 2525);
        env.insert("PROJECT_NAME".into(), "Acme".into());
    })
    .await;
    let admin = app.superuser_token().await;
    let (status, body) =
        app.call(Method::POST, "/api/v1/utils/test-email/?email_to=Ops@Example.com", Some(&admin), None).await;
    assert_eq!((status.as_u16(), body), (201, json!({"message": "Test email sent"})));
    let emails = app.queued_emails().await;
    assert_eq!(emails.len(), 1, "one send_email job, delivered by the worker (crates/worker/tests)");
    // Normalised as pydantic's EmailStr does: the domain lowercased, the local part kept.
    assert_eq!(emails[0].to, "Ops@example.com");
    assert_eq!(emails[0].subject, "Acme - Test email");
    app.shutdown().await;
}

/// The contract leaves an unconfigured mailer open; FastAPI would fail inside
/// the SMTP library (a 500). A 503 that names the settings is the honest answer.
async fn test_email_without_smtp_is_a_503(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.superuser_token().await;
    let (status, body) =
        app.call(Method::POST, "/api/v1/utils/test-email/?email_to=ops@example.com", Some(&admin), None).await;
    assert_eq!(
        (status.as_u16(), body),
        (503, json!({"detail": "Email is not configured (set SMTP_HOST and EMAILS_FROM_EMAIL)"}))
    );
    assert!(app.queued_emails().await.is_empty());
    app.shutdown().await;
}

async fn test_email_validates_its_address(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.superuser_token().await;
    let (status, body) = app.call(Method::POST, "/api/v1/utils/test-email/", Some(&admin), None).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["detail"][0]["type"], "missing");
    assert_eq!(body["detail"][0]["loc"], json!(["query", "email_to"]));
    let (status, body) =
        app.call(Method::POST, "/api/v1/utils/test-email/?email_to=not-an-email", Some(&admin), None).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["detail"][0]["loc"], json!(["query", "email_to"]));
    assert!(body["detail"][0]["msg"].as_str().unwrap().starts_with("value is not a valid email address"), "{body}");
    app.shutdown().await;
}
