//! A UUID path parameter, with FastAPI's `uuid_parsing` 422 on bad input.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::{ApiError, ValidationIssue};

/// The route's single `{...}` parameter, parsed as a UUID.
pub struct PathId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|err| ApiError::Internal(anyhow::anyhow!("path parameters: {err}")))?;
        let (name, raw) =
            params.into_iter().next().ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no path parameter")))?;
        Uuid::parse_str(&raw).map(Self).map_err(|err| {
            let msg = format!("Input should be a valid UUID, {err}");
            ApiError::Validation(vec![
                ValidationIssue::new("uuid_parsing", &["path", &name], msg, Value::String(raw))
                    .with_ctx(json!({ "error": err.to_string() })),
            ])
        })
    }
}
