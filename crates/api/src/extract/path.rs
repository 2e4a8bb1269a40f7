//! Path parameters: a UUID (FastAPI's `uuid_parsing` 422 on bad input) or
//! text. Percent-escapes that do not decode to UTF-8 become U+FFFD, as
//! Starlette decodes paths, instead of failing the request: `/items/%ff` is
//! a 422 about a bad UUID, never a 500.

use axum::extract::{FromRequestParts, MatchedPath, Path};
use axum::http::request::Parts;
use serde_json::{Value, json};
use uuid::Uuid;

use super::text::nul_issue;
use crate::error::{ApiError, ValidationIssue};

/// The route's single `{...}` parameter, parsed as a UUID.
pub struct PathId(pub Uuid);

/// The route's single `{...}` parameter as text (without NUL).
pub struct PathText(pub String);

/// (name, decoded value) of the route's single parameter.
async fn single_param<S: Send + Sync>(parts: &mut Parts, state: &S) -> Result<(String, String), ApiError> {
    let params = match Path::<Vec<(String, String)>>::from_request_parts(parts, state).await {
        Ok(Path(params)) => params,
        Err(_) => lossy_params(parts),
    };
    params.into_iter().next().ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no path parameter")))
}

/// The parameters read straight from the URI against the route template,
/// decoded lossily: for paths whose escapes are not UTF-8.
fn lossy_params(parts: &Parts) -> Vec<(String, String)> {
    let Some(template) = parts.extensions.get::<MatchedPath>() else { return Vec::new() };
    template
        .as_str()
        .split('/')
        .zip(parts.uri.path().split('/'))
        .filter_map(|(pattern, segment)| {
            let name = pattern.strip_prefix('{')?.strip_suffix('}')?;
            let value = percent_encoding::percent_decode_str(segment).decode_utf8_lossy().into_owned();
            Some((name.to_owned(), value))
        })
        .collect()
}

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let (name, raw) = single_param(parts, state).await?;
        Uuid::parse_str(&raw).map(Self).map_err(|err| {
            let msg = format!("Input should be a valid UUID, {err}");
            ApiError::Validation(vec![
                ValidationIssue::new("uuid_parsing", &["path", &name], msg, Value::String(raw))
                    .with_ctx(json!({ "error": err.to_string() })),
            ])
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PathText {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let (name, text) = single_param(parts, state).await?;
        match nul_issue(&["path", &name], &text) {
            Some(issue) => Err(ApiError::Validation(vec![issue])),
            None => Ok(Self(text)),
        }
    }
}
