//! The OpenAPI document: every route of the contract with its operation id,
//! schemas and security, valid as OpenAPI 3.1, and true to what the api sends.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::BTreeSet;

use common::{on_both_backends, spawn_app};
use serde_json::{Map, Value};
use shared_core::db::Backend;

/// (method, path, operationId, bearer security, request body schema, success status and schema)
type Row = (&'static str, &'static str, &'static str, bool, Option<&'static str>, Success);
type Success = (&'static str, Option<&'static str>);

const CONTRACT: &[Row] = &[
    (
        "post",
        "/api/v1/login/access-token",
        "login-login_access_token",
        false,
        Some("Body_login-login_access_token"),
        ("200", Some("Token")),
    ),
    ("post", "/api/v1/login/test-token", "login-test_token", true, None, ("200", Some("UserPublic"))),
    ("post", "/api/v1/password-recovery/{email}", "login-recover_password", false, None, ("200", Some("Message"))),
    ("post", "/api/v1/reset-password/", "login-reset_password", false, Some("NewPassword"), ("200", Some("Message"))),
    (
        "post",
        "/api/v1/password-recovery-html-content/{email}",
        "login-recover_password_html_content",
        true,
        None,
        ("200", None),
    ),
    ("get", "/api/v1/users/", "users-read_users", true, None, ("200", Some("UsersPublic"))),
    ("post", "/api/v1/users/", "users-create_user", true, Some("UserCreate"), ("200", Some("UserPublic"))),
    ("get", "/api/v1/users/me", "users-read_user_me", true, None, ("200", Some("UserPublic"))),
    ("patch", "/api/v1/users/me", "users-update_user_me", true, Some("UserUpdateMe"), ("200", Some("UserPublic"))),
    (
        "patch",
        "/api/v1/users/me/password",
        "users-update_password_me",
        true,
        Some("UpdatePassword"),
        ("200", Some("Message")),
    ),
    ("delete", "/api/v1/users/me", "users-delete_user_me", true, None, ("200", Some("Message"))),
    ("post", "/api/v1/users/signup", "users-register_user", false, Some("UserRegister"), ("200", Some("UserPublic"))),
    ("get", "/api/v1/users/{user_id}", "users-read_user_by_id", true, None, ("200", Some("UserPublic"))),
    ("patch", "/api/v1/users/{user_id}", "users-update_user", true, Some("UserUpdate"), ("200", Some("UserPublic"))),
    ("delete", "/api/v1/users/{user_id}", "users-delete_user", true, None, ("200", Some("Message"))),
    ("get", "/api/v1/items/", "items-read_items", true, None, ("200", Some("ItemsPublic"))),
    ("post", "/api/v1/items/", "items-create_item", true, Some("ItemCreate"), ("200", Some("ItemPublic"))),
    ("get", "/api/v1/items/{id}", "items-read_item", true, None, ("200", Some("ItemPublic"))),
    ("put", "/api/v1/items/{id}", "items-update_item", true, Some("ItemUpdate"), ("200", Some("ItemPublic"))),
    ("delete", "/api/v1/items/{id}", "items-delete_item", true, None, ("200", Some("Message"))),
    ("post", "/api/v1/utils/test-email/", "utils-test_email", true, None, ("201", Some("Message"))),
    ("get", "/api/v1/utils/health-check/", "utils-health_check", false, None, ("200", None)),
    (
        "post",
        "/api/v1/private/users/",
        "private-create_user",
        false,
        Some("PrivateUserCreate"),
        ("200", Some("UserPublic")),
    ),
];

fn schema_ref(content: &Value) -> Option<String> {
    let media = content.as_object()?.values().next()?;
    media["schema"]["$ref"].as_str().map(|r| r.rsplit('/').next().unwrap().to_owned())
}

#[tokio::test]
async fn every_contract_route_is_documented_with_ids_schemas_and_security() {
    let app = spawn_app(Backend::Sqlite).await;
    let doc: Value = app.http.get(app.url("/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let scheme = &doc["components"]["securitySchemes"]["OAuth2PasswordBearer"];
    assert_eq!(scheme["type"], "oauth2");
    assert_eq!(scheme["flows"]["password"]["tokenUrl"], "/api/v1/login/access-token");

    for (method, path, operation_id, secured, body, (status, response)) in CONTRACT {
        let operation = &doc["paths"][path][method];
        assert_eq!(operation["operationId"], *operation_id, "{method} {path}");
        let tag = operation_id.split('-').next().unwrap();
        assert_eq!(operation["tags"][0], tag, "{operation_id}");
        let security =
            operation["security"].as_array().map(|s| s.iter().any(|r| r.get("OAuth2PasswordBearer").is_some()));
        assert_eq!(security.unwrap_or(false), *secured, "{operation_id} security");
        assert_eq!(schema_ref(&operation["requestBody"]["content"]).as_deref(), *body, "{operation_id} request body");
        let success = &operation["responses"][status];
        assert!(success.is_object(), "{operation_id} has no {status} response");
        if let Some(schema) = response {
            assert_eq!(schema_ref(&success["content"]).as_deref(), Some(*schema), "{operation_id} response");
            assert!(doc["components"]["schemas"][schema].is_object(), "{schema} is defined");
        }
    }
    let documented: usize = doc["paths"].as_object().unwrap().values().map(|ops| ops.as_object().unwrap().len()).sum();
    assert!(documented >= CONTRACT.len());
    app.shutdown().await;
}

/// The reference: the FastAPI template's own document (see tests/fixtures/README.md).
const REFERENCE: &str = include_str!("fixtures/fastapi-template-0.10.0-openapi.json");

/// Everything the reference document says about paths, operations,
/// parameters, bodies, responses and schemas, ours says the same; ours may
/// add (Part B routes, schemas, documented error statuses), and the
/// additions are printed. Titles, summaries and descriptions are prose and
/// not compared. A nullable value is compared by meaning, whichever of
/// JSON Schema's spellings (`anyOf` with null, or a type list) it uses.
#[tokio::test]
async fn the_document_says_what_the_reference_says() {
    let app = spawn_app(Backend::Sqlite).await;
    let ours: Value = app.http.get(app.url("/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    let reference: Value = serde_json::from_str(REFERENCE).unwrap();
    let mut diff = Diff::default();
    for key in ["paths", "components"] {
        diff.compare(&reference[key], &ours[key], key);
    }
    println!("additions in ours ({}):\n  {}", diff.added.len(), diff.added.join("\n  "));
    assert!(diff.differs.is_empty(), "ours differs from the reference:\n  {}", diff.differs.join("\n  "));
    app.shutdown().await;
}

#[derive(Default)]
struct Diff {
    differs: Vec<String>,
    added: Vec<String>,
}

const PROSE: &[&str] = &["title", "summary", "description"];

impl Diff {
    fn compare(&mut self, reference: &Value, ours: &Value, at: &str) {
        match (normalise(reference), normalise(ours)) {
            (Value::Object(r), Value::Object(o)) => self.compare_objects(&r, &o, at),
            (Value::Array(r), Value::Array(o)) => self.compare_lists(&r, &o, at),
            (r, o) if r == o => {}
            (r, o) => self.differs.push(format!("{at}: reference {r}, ours {o}")),
        }
    }

    fn compare_objects(&mut self, reference: &Map<String, Value>, ours: &Map<String, Value>, at: &str) {
        for (key, value) in reference.iter().filter(|(k, _)| !PROSE.contains(&k.as_str())) {
            match ours.get(key) {
                Some(other) => self.compare(value, other, &format!("{at}/{key}")),
                None => self.differs.push(format!("{at}/{key}: missing from ours (reference: {value})")),
            }
        }
        // A schema without `required` requires nothing: ours must not either
        // (a generated client would make those fields mandatory).
        if !reference.contains_key("required")
            && let Some(required) = ours.get("required")
        {
            self.compare(&Value::Array(Vec::new()), required, &format!("{at}/required"));
        }
        let prose_only = PROSE.iter().any(|p| at.ends_with(p));
        for key in ours.keys().filter(|k| !reference.contains_key(*k) && !PROSE.contains(&k.as_str())) {
            if !prose_only && *key != "required" {
                self.added.push(format!("{at}/{key}"));
            }
        }
    }

    /// `required`, `tags` and `enum` match as sets; lists of named things
    /// (parameters) by name, ours may have more; anything else item by item.
    fn compare_lists(&mut self, reference: &[Value], ours: &[Value], at: &str) {
        let named = |v: &Value| v.get("name").and_then(Value::as_str).map(str::to_owned);
        if ["/required", "/tags", "/enum"].iter().any(|key| at.ends_with(key)) {
            let set = |list: &[Value]| list.iter().map(ToString::to_string).collect::<BTreeSet<_>>();
            if set(reference) != set(ours) {
                self.differs.push(format!("{at}: reference {reference:?}, ours {ours:?}"));
            }
        } else if reference.iter().all(|v| named(v).is_some()) {
            for item in reference {
                let name = named(item).unwrap();
                match ours.iter().find(|o| named(o).as_deref() == Some(name.as_str())) {
                    Some(other) => self.compare(item, other, &format!("{at}[{name}]")),
                    None => self.differs.push(format!("{at}[{name}]: missing from ours")),
                }
            }
        } else if reference.len() != ours.len() {
            self.differs.push(format!("{at}: reference has {} entries, ours {}", reference.len(), ours.len()));
        } else {
            for (i, (r, o)) in reference.iter().zip(ours).enumerate() {
                self.compare(r, o, &format!("{at}[{i}]"));
            }
        }
    }
}

/// One spelling for a nullable schema: `{"anyOf": [S, {"type": "null"}]}`
/// and `{"type": [T, "null"], ...}` both become S with `"nullable": true`
/// (S's own type a plain string).
fn normalise(value: &Value) -> Value {
    let Value::Object(object) = value else { return value.clone() };
    let is_null = |v: &Value| v.get("type") == Some(&Value::from("null"));
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(options)) = object.get(key)
            && options.len() == 2
            && let Some(non_null) = options.iter().find(|o| !is_null(o))
            && options.iter().any(is_null)
        {
            let mut merged = object.clone();
            merged.remove(key);
            merged.extend(normalise(non_null).as_object().cloned().unwrap_or_default());
            merged.insert("nullable".into(), Value::Bool(true));
            return Value::Object(merged);
        }
    }
    if let Some(Value::Array(types)) = object.get("type") {
        let others: Vec<&Value> = types.iter().filter(|t| *t != "null").collect();
        if others.len() == 1 && others.len() < types.len() {
            let mut merged = object.clone();
            merged.insert("type".into(), others[0].clone());
            merged.insert("nullable".into(), Value::Bool(true));
            return Value::Object(merged);
        }
    }
    value.clone()
}

/// The suite's own virtualenv (made on first use from the pinned
/// tests/fixtures/requirements.txt and the other requirement files).
fn python() -> &'static std::path::Path {
    shared_core::testing::python::interpreter(env!("CARGO_TARGET_TMPDIR"))
}

/// Validated by the reference validator (PyPI `openapi-spec-validator`,
/// pinned in tests/fixtures/requirements.txt).
#[tokio::test]
async fn the_document_validates_as_openapi_3_1() {
    let python = python();
    let app = spawn_app(Backend::Sqlite).await;
    let doc = app.http.get(app.url("/api/v1/openapi.json")).send().await.unwrap().text().await.unwrap();
    let file = app.db.dir().join("openapi.json");
    std::fs::write(&file, doc).unwrap();
    let output = std::process::Command::new(python)
        .args(["-m", "openapi_spec_validator", file.to_str().unwrap()])
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "openapi-spec-validator rejected the document:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    app.shutdown().await;
}

on_both_backends!(
    generated_requests_as_the_superuser_get_documented_answers_and_no_5xx,
    generated_requests_as_a_normal_user_get_documented_answers_and_no_5xx,
);

async fn generated_requests_as_the_superuser_get_documented_answers_and_no_5xx(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.superuser_token().await;
    run_schemathesis(&app, &token, &[]).await;
    app.shutdown().await;
}

/// As a normal user, superuser routes answer their documented 403. Deleting
/// one's own account is left out: every later request with its token would
/// be a 404 for a user that no longer exists.
async fn generated_requests_as_a_normal_user_get_documented_answers_and_no_5xx(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, token, _) = app.new_user().await;
    run_schemathesis(&app, &token, &["--exclude-operation-id", "users-delete_user_me"]).await;
    app.shutdown().await;
}

/// Requests generated from the document itself, valid and invalid, by the
/// reference tool (PyPI `schemathesis`, pinned in tests/fixtures/requirements.txt),
/// sent with `token` through the real router, stateful sequences included:
/// no 5xx, and every status, content type and body the api answers is one the
/// document declares (a client generated from it can rely on it). A fixed seed
/// keeps the run repeatable. `test-email` is left out: without SMTP it answers
/// 503 by design (tests/utils.rs covers its rows).
async fn run_schemathesis(app: &common::TestApp, token: &str, extra: &[&str]) {
    let python = python();
    let mut args = vec![
        "-c".to_owned(),
        "import sys; from schemathesis.cli import schemathesis; sys.exit(schemathesis())".to_owned(),
        "run".to_owned(),
        app.url("/api/v1/openapi.json"),
        "--header".to_owned(),
        format!("Authorization: Bearer {token}"),
        "--checks".to_owned(),
        "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance".to_owned(),
        "--max-examples".to_owned(),
        "20".to_owned(),
        "--seed".to_owned(),
        "20261201".to_owned(),
        "--workers".to_owned(),
        "1".to_owned(),
        "--generation-database".to_owned(),
        "none".to_owned(),
        "--no-color".to_owned(),
        "--exclude-path".to_owned(),
        "/api/v1/utils/test-email/".to_owned(),
    ];
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    let dir = app.db.dir();
    // Blocking wait off the runtime: the server under test runs on it.
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python).args(args).current_dir(dir).output().expect("python runs")
    })
    .await
    .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{report}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains(" passed"), "{report}");
}
