//! Tag `login`: every row of the contract's table, on both databases.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::{SUPERUSER, on_both_backends, spawn_app, spawn_app_with};
use reqwest::Method;
use serde_json::{Value, json};
use shared_core::db::Backend;

on_both_backends!(
    access_token_for_valid_credentials_case_insensitive_email,
    access_token_errors,
    access_token_from_a_multipart_form,
    form_fields_are_validated_as_fastapi_does,
    test_token_returns_the_caller,
    password_recovery_answers_the_same_and_queues_the_same_work,
    reset_password_with_the_mailed_token,
    reset_password_errors,
    recovery_html_content_is_for_superusers,
);

async fn login(app: &common::TestApp, form: &[(&str, &str)]) -> (u16, Value) {
    let response = app.http.post(app.url("/api/v1/login/access-token")).form(form).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn reset_password(app: &common::TestApp, token: &str, new_password: &str) -> (u16, Value) {
    let body = json!({"token": token, "new_password": new_password});
    let (status, body) = app.call(Method::POST, "/api/v1/reset-password/", None, Some(body)).await;
    (status.as_u16(), body)
}

async fn access_token_for_valid_credentials_case_insensitive_email(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, _, email) = app.new_user().await;
    let (status, body) = login(&app, &[("username", &email.to_uppercase()), ("password", "password123")]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "bearer");
    // grant_type, scope, client_id and client_secret are accepted and ignored.
    let form = [
        ("username", email.as_str()),
        ("password", "password123"),
        ("grant_type", "password"),
        ("scope", "x y"),
        ("client_id", "c"),
        ("client_secret", "s"),
    ];
    assert_eq!(login(&app, &form).await.0, 200);
    let token = body["access_token"].as_str().unwrap();
    let (status, me) = app.call(Method::GET, "/api/v1/users/me", Some(token), None).await;
    assert_eq!((status.as_u16(), me["email"].as_str()), (200, Some(email.as_str())));
    app.shutdown().await;
}

async fn access_token_errors(backend: Backend) {
    let app = spawn_app(backend).await;
    let (user, _, email) = app.new_user().await;
    let wrong = login(&app, &[("username", &email), ("password", "wrong-password")]).await;
    assert_eq!(wrong, (400, json!({"detail": "Incorrect email or password"})));
    let unknown = login(&app, &[("username", "nobody@example.com"), ("password", "password123")]).await;
    assert_eq!(unknown, (400, json!({"detail": "Incorrect email or password"})));

    let admin = app.superuser_token().await;
    let path = format!("/api/v1/users/{}", user["id"].as_str().unwrap());
    app.call(Method::PATCH, &path, Some(&admin), Some(json!({"is_active": false}))).await;
    let inactive = login(&app, &[("username", &email), ("password", "password123")]).await;
    assert_eq!(inactive, (400, json!({"detail": "Inactive user"})));

    let (status, missing) = login(&app, &[("username", &email)]).await;
    assert_eq!(status, 422);
    assert_eq!(missing["detail"][0]["type"], "missing");
    assert_eq!(missing["detail"][0]["loc"], json!(["body", "password"]));
    app.shutdown().await;
}

/// The template's frontend posts the login form as `multipart/form-data`
/// (axios turns its `formData` into a FormData object).
async fn access_token_from_a_multipart_form(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, _, email) = app.new_user().await;
    let form = reqwest::multipart::Form::new().text("username", email.clone()).text("password", "password123");
    let response = app.http.post(app.url("/api/v1/login/access-token")).multipart(form).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    let (status, me) = app.call(Method::GET, "/api/v1/users/me", body["access_token"].as_str(), None).await;
    assert_eq!((status.as_u16(), me["email"].as_str()), (200, Some(email.as_str())));

    let form = reqwest::multipart::Form::new()
        .text("grant_type", "password")
        .text("username", email.clone())
        .text("password", "wrong-password")
        .text("scope", "")
        .text("client_id", "frontend");
    let response = app.http.post(app.url("/api/v1/login/access-token")).multipart(form).send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"detail": "Incorrect email or password"}));
    app.shutdown().await;
}

async fn post_multipart(app: &common::TestApp, form: reqwest::multipart::Form) -> (u16, Value) {
    let response = app.http.post(app.url("/api/v1/login/access-token")).multipart(form).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn post_raw(app: &common::TestApp, content_type: &str, body: &'static str) -> (u16, Value) {
    let response = app
        .http
        .post(app.url("/api/v1/login/access-token"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// FastAPI's answers for `OAuth2PasswordRequestForm`, in either encoding.
async fn form_fields_are_validated_as_fastapi_does(backend: Backend) {
    let app = spawn_app_with(backend, |env| {
        env.insert("MAX_BODY_BYTES".into(), "4096".into());
    })
    .await;
    let missing =
        |field: &str| json!({"type": "missing", "loc": ["body", field], "msg": "Field required", "input": null});

    // An empty value is no value.
    let (status, body) = login(&app, &[("username", ""), ("password", "password123")]).await;
    assert_eq!((status, body), (422, json!({"detail": [missing("username")]})));
    let form = reqwest::multipart::Form::new().text("username", "").text("password", "");
    assert_eq!(post_multipart(&app, form).await, (422, json!({"detail": [missing("username"), missing("password")]})));

    // grant_type, when given, must be "password".
    let (status, body) = login(&app, &[("username", "a@example.com"), ("password", "x"), ("grant_type", "code")]).await;
    let mismatch = json!({
        "type": "string_pattern_mismatch", "loc": ["body", "grant_type"],
        "msg": "String should match pattern '^password$'", "input": "code", "ctx": {"pattern": "^password$"},
    });
    assert_eq!((status, body), (422, json!({"detail": [mismatch]})));

    // An uploaded file is not a string.
    let file = reqwest::multipart::Part::bytes(b"secret".to_vec()).file_name("password.txt");
    let form = reqwest::multipart::Form::new().text("username", "a@example.com").part("password", file);
    let (status, body) = post_multipart(&app, form).await;
    assert_eq!((status, body["detail"][0]["type"].as_str()), (422, Some("string_type")));

    // Another content type reads as an empty form; a broken multipart body
    // is FastAPI's 400.
    let both_missing = json!({"detail": [missing("username"), missing("password")]});
    assert_eq!(post_raw(&app, "application/json", r#"{"username":"a","password":"b"}"#).await, (422, both_missing));
    let broken = post_raw(&app, "multipart/form-data; boundary=xyz", "--xyz\r\nnot a part").await;
    assert_eq!(broken, (400, json!({"detail": "There was an error parsing the body"})));
    let no_boundary = post_raw(&app, "multipart/form-data", "username=a").await;
    assert_eq!(no_boundary, (400, json!({"detail": "There was an error parsing the body"})));

    // The body limit holds for multipart too.
    let form = reqwest::multipart::Form::new().text("username", "a".repeat(8192)).text("password", "x");
    let (status, body) = post_multipart(&app, form).await;
    assert_eq!((status, body), (413, json!({"detail": "Request Entity Too Large"})));
    app.shutdown().await;
}

async fn test_token_returns_the_caller(backend: Backend) {
    let app = spawn_app(backend).await;
    let (user, token, _) = app.new_user().await;
    let (status, body) = app.call(Method::POST, "/api/v1/login/test-token", Some(&token), None).await;
    assert_eq!(status, 200);
    assert_eq!(body, user);
    let (status, body) = app.call(Method::POST, "/api/v1/login/test-token", None, None).await;
    assert_eq!((status.as_u16(), body), (401, json!({"detail": "Not authenticated"})));
    app.shutdown().await;
}

/// Email configured: emails are queued as jobs for the worker (which
/// delivers them; see the worker's tests for delivery to an SMTP server).
async fn with_mail(backend: Backend) -> common::TestApp {
    spawn_app_with(backend, |env| {
        common::with_smtp(env, 2525);
        env.insert("FRONTEND_HOST".into(), "https://dashboard.example.com".into());
    })
    .await
}

/// Known address or not, the answer is the same and so is the work behind
/// it: one recovery queued for the worker, which mails only a user (the
/// worker's tests/through_api.rs reads the email back).
async fn password_recovery_answers_the_same_and_queues_the_same_work(backend: Backend) {
    let app = with_mail(backend).await;
    let (_, _, email) = app.new_user().await;
    let expected = json!({"message": "If that email is registered, we sent a password recovery link"});
    for address in ["nobody@example.com", email.as_str()] {
        let (status, body) = app.call(Method::POST, &format!("/api/v1/password-recovery/{address}"), None, None).await;
        assert_eq!((status.as_u16(), &body), (200, &expected));
    }
    let queued: Vec<String> = app.queued_recoveries().await.into_iter().map(|r| r.email).collect();
    assert_eq!(queued, ["nobody@example.com", email.as_str()]);
    assert!(app.queued_emails().await.is_empty(), "the api itself sends nothing");
    app.shutdown().await;
}

async fn reset_password_with_the_mailed_token(backend: Backend) {
    let app = with_mail(backend).await;
    let (_, _, email) = app.new_user().await;
    app.call(Method::POST, &format!("/api/v1/password-recovery/{email}"), None, None).await;
    // The token the worker puts in the link.
    let token = app.queued_recoveries().await.remove(0).token;

    let (status, body) = reset_password(&app, &token, "brand-new-pass").await;
    assert_eq!((status, body), (200, json!({"message": "Password updated successfully"})));
    assert_eq!(login(&app, &[("username", &email), ("password", "password123")]).await.0, 400);
    app.token(&email, "brand-new-pass").await;
    app.shutdown().await;
}

async fn reset_password_errors(backend: Backend) {
    let app = spawn_app(backend).await;
    let (user, _, email) = app.new_user().await;
    let bad = reset_password(&app, "not-a-token", "brand-new-pass").await;
    assert_eq!(bad, (400, json!({"detail": "Invalid token"})));

    // A valid token for an address nobody has.
    let tokens = &app.state.tokens;
    let ghost = tokens.create_reset_token("ghost@example.com", Duration::from_secs(60)).unwrap();
    let unknown = reset_password(&app, &ghost, "brand-new-pass").await;
    assert_eq!(unknown, (400, json!({"detail": "Invalid token"})));

    let admin = app.superuser_token().await;
    let path = format!("/api/v1/users/{}", user["id"].as_str().unwrap());
    app.call(Method::PATCH, &path, Some(&admin), Some(json!({"is_active": false}))).await;
    let token = tokens.create_reset_token(&email, Duration::from_secs(60)).unwrap();
    let inactive = reset_password(&app, &token, "brand-new-pass").await;
    assert_eq!(inactive, (400, json!({"detail": "Inactive user"})));

    let short = reset_password(&app, "t", "short").await;
    assert_eq!(short.0, 422);
    assert_eq!(short.1["detail"][0]["type"], "string_too_short");
    app.shutdown().await;
}

async fn recovery_html_content_is_for_superusers(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.superuser_token().await;
    let response = app
        .http
        .post(app.url(&format!("/api/v1/password-recovery-html-content/{SUPERUSER}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(response.text().await.unwrap().contains("/reset-password?token="));

    let (status, body) =
        app.call(Method::POST, "/api/v1/password-recovery-html-content/nobody@example.com", Some(&admin), None).await;
    assert_eq!(
        (status.as_u16(), body),
        (404, json!({"detail": "The user with this username does not exist in the system."}))
    );

    let (_, token, email) = app.new_user().await;
    let (status, body) =
        app.call(Method::POST, &format!("/api/v1/password-recovery-html-content/{email}"), Some(&token), None).await;
    assert_eq!((status.as_u16(), body), (403, json!({"detail": "The user doesn't have enough privileges"})));
    app.shutdown().await;
}
