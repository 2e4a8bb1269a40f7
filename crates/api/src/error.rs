//! The one error type of the HTTP layer. Every handler returns it; it turns
//! into the contract's `{"detail": ...}` body with the right status, and never
//! carries an internal message (database text, file paths) to the client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use crate::json::Json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(&'static str),
    /// No or non-Bearer credentials: 401 with `WWW-Authenticate: Bearer`.
    #[error("Not authenticated")]
    NotAuthenticated,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(&'static str),
    #[error("Request Entity Too Large")]
    PayloadTooLarge,
    /// FastAPI's 422 shape.
    #[error("request validation failed")]
    Validation(Vec<ValidationIssue>),
    #[error("Too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("the service is not ready: {0}")]
    Unavailable(&'static str),
    /// The database cannot be reached: answered at once with a short
    /// `Retry-After`, never after the pool's timeout (see `db::health`).
    #[error("the database is unavailable")]
    DatabaseUnavailable,
    /// Anything unexpected. Logged in full, answered as a bare 500.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        if shared_core::db::is_unavailable(&err) {
            // The outage itself is logged once, where it is detected.
            tracing::debug!(error = %err, "database unavailable");
            return Self::DatabaseUnavailable;
        }
        Self::Internal(err.into())
    }
}

/// Hashing a password fails only from inside (a panicked or cancelled
/// blocking task): a 500.
impl From<shared_core::auth::password::PasswordError> for ApiError {
    fn from(err: shared_core::auth::password::PasswordError) -> Self {
        Self::Internal(err.into())
    }
}

/// Creating a token fails only from inside (the clock, the encoder): a 500.
/// A token a client sent that does not decode is refused where it is read
/// (`extract::auth`), never converted here.
impl From<shared_core::auth::token::TokenError> for ApiError {
    fn from(err: shared_core::auth::token::TokenError) -> Self {
        Self::Internal(err.into())
    }
}

/// Seconds a client is told to wait while the database is away: about how
/// often it is probed.
const DATABASE_RETRY_AFTER_SECS: u32 = 1;

/// One entry of FastAPI's validation error list.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ValidationIssue {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub loc: Vec<serde_json::Value>,
    pub msg: String,
    pub input: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ctx: Option<serde_json::Value>,
}

impl ValidationIssue {
    pub fn new(kind: &'static str, loc: &[&str], msg: impl Into<String>, input: serde_json::Value) -> Self {
        let loc = loc.iter().map(|part| serde_json::Value::from(*part)).collect();
        Self { kind, loc, msg: msg.into(), input, ctx: None }
    }

    pub fn with_ctx(mut self, ctx: serde_json::Value) -> Self {
        self.ctx = Some(ctx);
        self
    }
}

pub fn detail(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "detail": message }))).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::BadRequest(m) => detail(StatusCode::BAD_REQUEST, m),
            Self::NotAuthenticated => {
                let mut response = detail(StatusCode::UNAUTHORIZED, "Not authenticated");
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                response
            }
            Self::Forbidden(m) => detail(StatusCode::FORBIDDEN, m),
            Self::NotFound(m) => detail(StatusCode::NOT_FOUND, m),
            Self::Conflict(m) => detail(StatusCode::CONFLICT, m),
            Self::PayloadTooLarge => detail(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large"),
            Self::Validation(issues) => {
                (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({ "detail": issues }))).into_response()
            }
            Self::TooManyRequests { retry_after_secs } => {
                let mut response = detail(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs.max(1)));
                response
            }
            Self::Unavailable(m) => detail(StatusCode::SERVICE_UNAVAILABLE, m),
            Self::DatabaseUnavailable => {
                let mut response =
                    detail(StatusCode::SERVICE_UNAVAILABLE, "The database is unavailable; try again shortly");
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(DATABASE_RETRY_AFTER_SECS));
                response
            }
            Self::Internal(err) => {
                tracing::error!(error = ?err, "request failed");
                detail(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
            }
        }
    }
}
