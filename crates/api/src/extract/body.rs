//! `JsonBody<T>`: a JSON request body validated into `T`, or FastAPI's 422.
//! Malformed JSON, a wrong content type and a non-object body are 422s too,
//! never a 400, 415 or 500, because that is what FastAPI clients handle.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde_json::{Value, json};

use super::fields::{Fields, FromFields, Rules};
use crate::error::{ApiError, ValidationIssue};

pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: FromFields> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let declared_json = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(|v| {
            let mime = v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
            mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
        });
        let bytes = read_body(request, state).await?;
        if bytes.is_empty() {
            return Err(body_issue("missing", "Field required", Value::Null));
        }
        // FastAPI parses the body as JSON when the content type says JSON or
        // is absent; anything else reaches the model as raw text.
        if declared_json == Some(false) {
            let raw = String::from_utf8_lossy(&bytes).into_owned();
            return Err(not_an_object(Value::String(raw)));
        }
        let value: Value = serde_json::from_slice(&bytes).map_err(|err| json_invalid(&bytes, &err))?;
        let Value::Object(object) = &value else {
            return Err(not_an_object(value));
        };
        let mut fields = Fields::new(object, Rules::of::<T>());
        let parsed = T::from_fields(&mut fields);
        if fields.issues.is_empty() { Ok(Self(parsed)) } else { Err(ApiError::Validation(fields.issues)) }
    }
}

/// The whole body, within the body limit (413 beyond it). A body that stops
/// half-way (the client went away) is FastAPI's 400, not a server error.
pub async fn read_body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state).await.map_err(|rejection| match rejection {
        BytesRejection::FailedToBufferBody(err) if err.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge
        }
        _ => unparsable(),
    })
}

/// FastAPI's answer to a body it cannot read or parse.
pub fn unparsable() -> ApiError {
    ApiError::BadRequest("There was an error parsing the body")
}

fn body_issue(kind: &'static str, msg: &str, input: Value) -> ApiError {
    ApiError::Validation(vec![ValidationIssue::new(kind, &["body"], msg, input)])
}

fn not_an_object(input: Value) -> ApiError {
    body_issue("model_attributes_type", "Input should be a valid dictionary or object to extract fields from", input)
}

/// FastAPI reports the character offset of the error as the second `loc` part.
fn json_invalid(bytes: &[u8], err: &serde_json::Error) -> ApiError {
    let text = String::from_utf8_lossy(bytes);
    let offset: usize = text.lines().take(err.line().saturating_sub(1)).map(|l| l.chars().count() + 1).sum::<usize>()
        + err.column().saturating_sub(1);
    let mut issue = ValidationIssue::new("json_invalid", &["body"], "JSON decode error", json!({}))
        .with_ctx(json!({ "error": err.to_string() }));
    issue.loc.push(Value::from(offset));
    ApiError::Validation(vec![issue])
}
