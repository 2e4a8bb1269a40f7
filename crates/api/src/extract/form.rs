//! Form bodies as FastAPI's `Form(...)` parameters read them: either
//! `application/x-www-form-urlencoded` or `multipart/form-data` (the
//! template's own frontend sends multipart), any other content type reading
//! as an empty form. Validation follows FastAPI: an empty value counts as
//! absent, a missing required field is a 422 `missing` with `input: null`,
//! and a body that cannot be parsed is a 400.

use std::collections::HashMap;

use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{StatusCode, header};
use serde_json::{Value, json};

use super::body::{read_body, unparsable};
use super::text::nul_issue;
use crate::error::{ApiError, ValidationIssue};

/// The fields of a form, the last value of a repeated name winning (as
/// Starlette's `FormData.get`).
pub struct FormFields {
    values: HashMap<String, FormValue>,
    issues: Vec<ValidationIssue>,
}

enum FormValue {
    Text(String),
    /// A multipart part with a file name: an upload, never a valid string.
    File,
}

impl FormFields {
    async fn read<S: Send + Sync>(request: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let mime = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        let mut values = HashMap::new();
        match mime.as_str() {
            "application/x-www-form-urlencoded" => {
                let bytes = read_body(request, state).await?;
                for (name, value) in form_urlencoded::parse(&bytes) {
                    values.insert(name.into_owned(), FormValue::Text(value.into_owned()));
                }
            }
            "multipart/form-data" => {
                let mut multipart = Multipart::from_request(request, state).await.map_err(|_| unparsable())?;
                while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
                    let Some(name) = field.name().map(str::to_owned) else { continue };
                    let value = if field.file_name().is_some() {
                        // Read (and so bound) the upload, then discard it.
                        field.bytes().await.map_err(multipart_error)?;
                        FormValue::File
                    } else {
                        FormValue::Text(field.text().await.map_err(multipart_error)?)
                    };
                    values.insert(name, value);
                }
            }
            _ => {}
        }
        Ok(Self { values, issues: Vec::new() })
    }

    /// The value of `name`, or `None` when it is absent or empty (FastAPI
    /// treats an empty form value as not sent).
    fn value(&mut self, name: &str) -> Option<String> {
        match self.values.remove(name)? {
            FormValue::Text(text) if text.is_empty() => None,
            FormValue::Text(text) => match nul_issue(&["body", name], &text) {
                Some(issue) => {
                    self.issues.push(issue);
                    None
                }
                None => Some(text),
            },
            FormValue::File => {
                let issue =
                    ValidationIssue::new("string_type", &["body", name], "Input should be a valid string", Value::Null);
                self.issues.push(issue);
                None
            }
        }
    }

    pub fn required(&mut self, name: &str) -> String {
        let issues_before = self.issues.len();
        self.value(name).unwrap_or_else(|| {
            // Absent or empty, unless the value itself was the problem.
            if self.issues.len() == issues_before {
                self.issues.push(ValidationIssue::new("missing", &["body", name], "Field required", Value::Null));
            }
            String::new()
        })
    }

    pub fn optional(&mut self, name: &str) -> Option<String> {
        self.value(name)
    }

    /// An optional field that, when given, must equal `expected` (pydantic's
    /// `pattern="^expected$"`).
    pub fn optional_exactly(&mut self, name: &str, expected: &str) -> Option<String> {
        let value = self.value(name)?;
        if value != expected {
            let pattern = format!("^{expected}$");
            let issue = ValidationIssue::new(
                "string_pattern_mismatch",
                &["body", name],
                format!("String should match pattern '{pattern}'"),
                Value::String(value.clone()),
            )
            .with_ctx(json!({ "pattern": pattern }));
            self.issues.push(issue);
        }
        Some(value)
    }
}

fn multipart_error(err: axum::extract::multipart::MultipartError) -> ApiError {
    if err.status() == StatusCode::PAYLOAD_TOO_LARGE { ApiError::PayloadTooLarge } else { unparsable() }
}

/// FastAPI's `OAuth2PasswordRequestForm`: `username` (the email) and
/// `password` are required; `grant_type` must be `password` when given;
/// `scope`, `client_id` and `client_secret` are optional and unused here.
pub struct LoginForm {
    pub username: String,
    pub password: String,
}

impl<S: Send + Sync> FromRequest<S> for LoginForm {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let mut form = FormFields::read(request, state).await?;
        // Field order as FastAPI reports them: the declaration order.
        form.optional_exactly("grant_type", "password");
        let username = form.required("username");
        let password = form.required("password");
        // Read only to be validated (an upload there is a 422): OAuth2 scopes
        // and client credentials mean nothing to this api, as to FastAPI's.
        for unused in ["scope", "client_id", "client_secret"] {
            form.optional(unused);
        }
        if form.issues.is_empty() { Ok(Self { username, password }) } else { Err(ApiError::Validation(form.issues)) }
    }
}
