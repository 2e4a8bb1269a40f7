//! The requests the FastAPI template's React frontend makes, sent the way its
//! generated client (legacy axios) sends them: the login form as
//! `multipart/form-data`, every other body as JSON, `Accept: application/json,
//! text/plain, */*`, and `Authorization: Bearer <token>` from local storage.
//! Each test walks one part of the UI end to end, on both databases.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{SUPERUSER, SUPERUSER_PASSWORD, TestApp, on_both_backends, spawn_app_with};
use reqwest::Method;
use serde_json::{Value, json};
use shared_core::db::Backend;

on_both_backends!(sign_up_log_in_and_manage_items, user_settings, admin_manages_users, forgot_password);

/// What axios sends with every request.
const ACCEPT: &str = "application/json, text/plain, */*";

/// The frontend's client: a base URL and, once logged in, a token.
struct Frontend<'a> {
    app: &'a TestApp,
    token: Option<String>,
}

impl<'a> Frontend<'a> {
    fn new(app: &'a TestApp) -> Self {
        Self { app, token: None }
    }

    /// `LoginService.loginAccessToken({ formData: { username, password } })`:
    /// axios turns `formData` into a FormData object, i.e. multipart.
    async fn log_in(&mut self, username: &str, password: &str) -> (u16, Value) {
        let form =
            reqwest::multipart::Form::new().text("username", username.to_owned()).text("password", password.to_owned());
        let response = self
            .app
            .http
            .post(self.app.url("/api/v1/login/access-token"))
            .header("accept", ACCEPT)
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        if status == 200 {
            self.token = Some(body["access_token"].as_str().unwrap().to_owned());
        }
        (status, body)
    }

    fn log_out(&mut self) {
        self.token = None;
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.app.http.request(method, self.app.url(path)).header("accept", ACCEPT);
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}

async fn app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |env| common::with_smtp(env, 2525)).await
}

fn new_email() -> String {
    format!("person-{}@example.com", uuid::Uuid::new_v4().simple())
}

async fn sign_up_log_in_and_manage_items(backend: Backend) {
    let app = app(backend).await;
    let mut ui = Frontend::new(&app);
    let email = new_email();
    let (status, user) = ui
        .send(
            Method::POST,
            "/api/v1/users/signup",
            Some(json!({"email": email, "password": "password123", "full_name": "Ada Lovelace"})),
        )
        .await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(ui.log_in(&email, "password123").await.0, 200);
    let (status, me) = ui.send(Method::GET, "/api/v1/users/me", None).await;
    assert_eq!((status, &me["email"]), (200, &json!(email)));

    // Items page: list, add, edit, delete.
    let (status, page) = ui.send(Method::GET, "/api/v1/items/?skip=0&limit=5", None).await;
    assert_eq!((status, page), (200, json!({"data": [], "count": 0})));
    let (status, item) =
        ui.send(Method::POST, "/api/v1/items/", Some(json!({"title": "Notes", "description": "first"}))).await;
    assert_eq!(status, 200, "{item}");
    let path = format!("/api/v1/items/{}", item["id"].as_str().unwrap());
    let (status, edited) = ui.send(Method::PUT, &path, Some(json!({"title": "Notes v2", "description": ""}))).await;
    assert_eq!((status, &edited["title"], &edited["description"]), (200, &json!("Notes v2"), &json!("")));
    let (status, page) = ui.send(Method::GET, "/api/v1/items/?skip=0&limit=5", None).await;
    assert_eq!((status, &page["count"]), (200, &json!(1)));
    assert_eq!(page["data"][0]["id"], item["id"]);
    let (status, deleted) = ui.send(Method::DELETE, &path, None).await;
    assert_eq!((status, deleted), (200, json!({"message": "Item deleted successfully"})));

    // Logged out, the same request is refused as the frontend expects.
    ui.log_out();
    let (status, body) = ui.send(Method::GET, "/api/v1/users/me", None).await;
    assert_eq!((status, body), (401, json!({"detail": "Not authenticated"})));
    app.shutdown().await;
}

async fn user_settings(backend: Backend) {
    let app = app(backend).await;
    let mut ui = Frontend::new(&app);
    let email = new_email();
    ui.send(Method::POST, "/api/v1/users/signup", Some(json!({"email": email, "password": "password123"}))).await;
    ui.log_in(&email, "password123").await;

    let renamed = new_email();
    let (status, me) =
        ui.send(Method::PATCH, "/api/v1/users/me", Some(json!({"full_name": "New Name", "email": renamed}))).await;
    assert_eq!((status, &me["full_name"], &me["email"]), (200, &json!("New Name"), &json!(renamed)));

    let change = json!({"current_password": "password123", "new_password": "password456"});
    let (status, body) = ui.send(Method::PATCH, "/api/v1/users/me/password", Some(change)).await;
    assert_eq!((status, body), (200, json!({"message": "Password updated successfully"})));
    let (status, body) = ui.log_in(&renamed, "password123").await;
    assert_eq!((status, body), (400, json!({"detail": "Incorrect email or password"})));
    assert_eq!(ui.log_in(&renamed, "password456").await.0, 200);

    let (status, body) = ui.send(Method::DELETE, "/api/v1/users/me", None).await;
    assert_eq!((status, body), (200, json!({"message": "User deleted successfully"})));
    assert_eq!(ui.log_in(&renamed, "password456").await.0, 400);
    app.shutdown().await;
}

async fn admin_manages_users(backend: Backend) {
    let app = app(backend).await;
    let mut admin = Frontend::new(&app);
    assert_eq!(admin.log_in(SUPERUSER, SUPERUSER_PASSWORD).await.0, 200);
    let email = new_email();
    let new = json!({
        "email": email, "password": "password123", "full_name": "Staff",
        "is_superuser": false, "is_active": true,
    });
    let (status, user) = admin.send(Method::POST, "/api/v1/users/", Some(new)).await;
    assert_eq!(status, 200, "{user}");
    let (status, page) = admin.send(Method::GET, "/api/v1/users/?skip=0&limit=5", None).await;
    assert_eq!((status, &page["count"]), (200, &json!(2)));
    let path = format!("/api/v1/users/{}", user["id"].as_str().unwrap());
    // The edit dialog leaves the password out unless a new one is typed.
    let edit = json!({"email": email, "full_name": "Staff Lead", "is_superuser": true, "is_active": true});
    let (status, edited) = admin.send(Method::PATCH, &path, Some(edit)).await;
    assert_eq!((status, &edited["is_superuser"]), (200, &json!(true)), "{edited}");
    let (status, deleted) = admin.send(Method::DELETE, &path, None).await;
    assert_eq!((status, deleted), (200, json!({"message": "User deleted successfully"})));
    app.shutdown().await;
}

async fn forgot_password(backend: Backend) {
    let app = app(backend).await;
    let ui = Frontend::new(&app);
    let email = new_email();
    ui.send(Method::POST, "/api/v1/users/signup", Some(json!({"email": email, "password": "password123"}))).await;
    let (status, body) = ui.send(Method::POST, &format!("/api/v1/password-recovery/{email}"), None).await;
    assert_eq!(
        (status, body),
        (200, json!({"message": "If that email is registered, we sent a password recovery link"}))
    );
    // The token the emailed link carries (the email itself: tests/login.rs).
    let token = app.state.tokens.create_reset_token(&email, std::time::Duration::from_secs(600)).unwrap();
    let reset = json!({"new_password": "password789", "token": token});
    let (status, body) = ui.send(Method::POST, "/api/v1/reset-password/", Some(reset)).await;
    assert_eq!((status, body), (200, json!({"message": "Password updated successfully"})));
    let mut ui = ui;
    assert_eq!(ui.log_in(&email, "password789").await.0, 200);
    app.shutdown().await;
}
