//! Input the database cannot store: every documented route, with NUL
//! (U+0000) and percent-escapes that are not UTF-8 in every kind of
//! parameter it takes (path, query, JSON body, form body), on both
//! databases. Each such request is a 4xx in FastAPI's shape, never a 5xx,
//! and nothing is logged at ERROR.
//!
//! Bodies are otherwise valid, so a request the checks let through would
//! reach the database: the NUL, not a missing field, is what is refused.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use common::{SUPERUSER, TestApp, on_both_backends, spawn_app};
use reqwest::Method;
use serde_json::{Value, json};
use shared_core::db::Backend;

on_both_backends!(no_route_fails_on_nul_or_invalid_utf8);

/// Every log line of this test binary, WARN and above.
fn captured_logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || Capture(sink.clone()))
            .init();
        logs
    })
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A valid body for each request schema; one string field at a time is
/// then spoiled.
fn valid_body(schema: &str) -> Value {
    match schema {
        "UserCreate" | "UserRegister" | "PrivateUserCreate" => {
            json!({"email": "fresh@example.com", "password": "password123", "full_name": "Fresh"})
        }
        "UserUpdate" => json!({"email": "other@example.com", "full_name": "Other", "password": "password123"}),
        "UserUpdateMe" => json!({"email": "renamed@example.com", "full_name": "Renamed"}),
        "UpdatePassword" => json!({"current_password": "admin-password-1", "new_password": "password456"}),
        "NewPassword" => json!({"token": "a.b.c", "new_password": "password456"}),
        "ItemCreate" | "ItemUpdate" => json!({"title": "Title", "description": "Description"}),
        "JobCreate" => json!({"kind": "items_export", "payload": {}, "idempotency_key": "key"}),
        other => panic!("no valid body for {other}: add one"),
    }
}

/// One hostile request and what it was.
struct Case {
    what: String,
    method: Method,
    path: String,
    body: Option<Vec<u8>>,
    content_type: &'static str,
}

const SPOILED_TEXT: [&str; 3] = ["%00", "a%00b", "%ff%fe"];

async fn no_route_fails_on_nul_or_invalid_utf8(backend: Backend) {
    let logs = captured_logs();
    let app = spawn_app(backend).await;
    let token = app.superuser_token().await;
    let doc: Value = app.http.get(app.url("/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    let ids = Ids::create(&app, &token).await;

    let mut cases = Vec::new();
    for (template, operations) in doc["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            cases.extend(cases_for(template, method, operation, &ids));
        }
    }
    assert!(cases.len() > 100, "only {} cases: is the document empty?", cases.len());

    let mut failures = Vec::new();
    for case in &cases {
        let mut request = app.http.request(case.method.clone(), app.url(&case.path)).bearer_auth(&token);
        if let Some(body) = &case.body {
            request = request.header("content-type", case.content_type).body(body.clone());
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        if status.is_server_error() {
            failures.push(format!("{} -> {status} {text}", case.what));
        } else if status == 422 {
            let body: Value =
                serde_json::from_str(&text).unwrap_or_else(|_| panic!("{}: 422 not JSON: {text}", case.what));
            assert!(body["detail"][0]["loc"].is_array(), "{}: not FastAPI's 422 shape: {text}", case.what);
        }
    }
    assert!(failures.is_empty(), "{} of {} requests failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
    let logged = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    let errors: Vec<&str> = logged.lines().filter(|line| line.contains("ERROR")).collect();
    assert!(errors.is_empty(), "ERROR lines were logged:\n{}", errors.join("\n"));
    app.shutdown().await;
}

/// Real ids to put in paths, so that only the spoiled part is wrong.
struct Ids {
    user: String,
    item: String,
    job: String,
}

impl Ids {
    async fn create(app: &TestApp, token: &str) -> Self {
        let (_, me) = app.call(Method::GET, "/api/v1/users/me", Some(token), None).await;
        let (_, item) = app.call(Method::POST, "/api/v1/items/", Some(token), Some(json!({"title": "t"}))).await;
        let job = json!({"kind": "noop", "payload": {}, "run_at": "2999-01-01T00:00:00Z"});
        let (_, job) = app.call(Method::POST, "/api/v1/jobs/", Some(token), Some(job)).await;
        let id = |v: &Value| v["id"].as_str().unwrap().to_owned();
        Self { user: id(&me), item: id(&item), job: id(&job) }
    }

    fn for_param(&self, template: &str, name: &str) -> String {
        match name {
            "user_id" => self.user.clone(),
            "email" => SUPERUSER.to_owned(),
            "id" if template.starts_with("/api/v1/jobs") => self.job.clone(),
            "id" => self.item.clone(),
            other => panic!("no value for path parameter {other}"),
        }
    }
}

fn cases_for(template: &str, method: &str, operation: &Value, ids: &Ids) -> Vec<Case> {
    let method: Method = method.to_uppercase().parse().unwrap();
    let params: Vec<&Value> = operation["parameters"].as_array().map(|p| p.iter().collect()).unwrap_or_default();
    let path_params: Vec<&str> =
        params.iter().filter(|p| p["in"] == "path").map(|p| p["name"].as_str().unwrap()).collect();
    let fill = |spoiled: Option<(&str, &str)>| {
        path_params.iter().fold(template.to_owned(), |path, name| {
            let value = match spoiled {
                Some((target, value)) if target == *name => value.to_owned(),
                _ => ids.for_param(template, name),
            };
            path.replace(&format!("{{{name}}}"), &value)
        })
    };
    let (valid_body, content_type) = body_of(operation);
    let mut cases = Vec::new();
    let mut add = |what: String, path: String, body: Option<Vec<u8>>, content_type| {
        cases.push(Case {
            what: format!("{method} {template}: {what}"),
            method: method.clone(),
            path,
            body,
            content_type,
        });
    };
    let valid = valid_body.as_ref().map(|b| b.to_string().into_bytes());

    for name in &path_params {
        for spoiled in SPOILED_TEXT {
            add(format!("path {name}={spoiled}"), fill(Some((name, spoiled))), valid.clone(), content_type);
        }
    }
    for param in params.iter().filter(|p| p["in"] == "query") {
        let name = param["name"].as_str().unwrap();
        for spoiled in SPOILED_TEXT {
            let path = format!("{}?{name}={spoiled}", fill(None));
            add(format!("query {name}={spoiled}"), path, valid.clone(), content_type);
        }
    }
    if let Some(body) = &valid_body {
        for (field, value) in body.as_object().unwrap() {
            if !value.is_string() {
                continue;
            }
            let mut nul = body.clone();
            nul[field] = json!("x\u{0}y");
            add(format!("JSON {field} with NUL"), fill(None), Some(nul.to_string().into_bytes()), content_type);
            let raw = format!(r#"{{"{field}": "x"#).into_bytes().into_iter().chain([0xff, 0xfe]).chain(*br#""}"#);
            add(format!("JSON {field} not UTF-8"), fill(None), Some(raw.collect()), content_type);
        }
    }
    if content_type == "application/x-www-form-urlencoded" {
        for spoiled in SPOILED_TEXT {
            for field in ["username", "password"] {
                let form = format!("username=admin%40example.com&password=x&{field}={spoiled}");
                add(format!("form {field}={spoiled}"), fill(None), Some(form.into_bytes()), content_type);
            }
        }
        let multipart = b"--b\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\na\0b\r\n--b\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\n\xff\xfe\r\n--b--\r\n";
        add(
            "multipart with NUL and bytes not UTF-8".into(),
            fill(None),
            Some(multipart.to_vec()),
            "multipart/form-data; boundary=b",
        );
    }
    cases
}

/// The operation's valid JSON body, or a form body's marker, and its type.
fn body_of(operation: &Value) -> (Option<Value>, &'static str) {
    let content = &operation["requestBody"]["content"];
    if let Some(schema) = content["application/json"]["schema"]["$ref"].as_str() {
        let name = schema.rsplit('/').next().unwrap();
        return (Some(valid_body(name)), "application/json");
    }
    if content.get("application/x-www-form-urlencoded").is_some() {
        return (None, "application/x-www-form-urlencoded");
    }
    (None, "application/json")
}
