//! The OAuth2 password form of `POST /api/v1/login/access-token`.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde_json::Value;

use crate::error::{ApiError, ValidationIssue};

/// `username` (the email) and `password`; `grant_type`, `scope`,
/// `client_id` and `client_secret` are accepted and ignored.
pub struct LoginForm {
    pub username: String,
    pub password: String,
}

impl<S: Send + Sync> FromRequest<S> for LoginForm {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state).await.map_err(|_| ApiError::PayloadTooLarge)?;
        let mut username = None;
        let mut password = None;
        for (key, value) in form_urlencoded::parse(&bytes) {
            match key.as_ref() {
                "username" => username = Some(value.into_owned()),
                "password" => password = Some(value.into_owned()),
                _ => {}
            }
        }
        let mut issues = Vec::new();
        for (field, value) in [("username", &username), ("password", &password)] {
            if value.is_none() {
                issues.push(ValidationIssue::new("missing", &["body", field], "Field required", Value::Null));
            }
        }
        match (username, password) {
            (Some(username), Some(password)) => Ok(Self { username, password }),
            _ => Err(ApiError::Validation(issues)),
        }
    }
}
