//! Query parameters with FastAPI's validation errors.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use serde_json::{Value, json};

use super::text::nul_issue;
use crate::error::{ApiError, ValidationIssue};

/// The query string as name → value, the last value winning (as Starlette).
pub struct QueryParams(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Query(params) = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri).map_err(|_| {
            ApiError::Validation(vec![ValidationIssue::new(
                "query_invalid",
                &["query"],
                "Invalid query string",
                Value::Null,
            )])
        })?;
        let issues: Vec<_> = params.iter().filter_map(|(name, value)| nul_issue(&["query", name], value)).collect();
        if !issues.is_empty() {
            return Err(ApiError::Validation(issues));
        }
        Ok(Self(params.into_iter().collect()))
    }
}

impl QueryParams {
    /// An integer parameter within `min..=max`, pushing pydantic's issue on failure.
    pub fn int(&self, name: &str, default: i64, min: i64, max: i64, issues: &mut Vec<ValidationIssue>) -> i64 {
        let Some(raw) = self.0.get(name) else { return default };
        let input = Value::String(raw.clone());
        let Ok(value) = raw.trim().parse::<i64>() else {
            let msg = "Input should be a valid integer, unable to parse string as an integer";
            issues.push(ValidationIssue::new("int_parsing", &["query", name], msg, input));
            return default;
        };
        if value < min {
            let msg = format!("Input should be greater than or equal to {min}");
            issues.push(
                ValidationIssue::new("greater_than_equal", &["query", name], msg, input).with_ctx(json!({ "ge": min })),
            );
            return default;
        }
        if value > max {
            let msg = format!("Input should be less than or equal to {max}");
            issues.push(
                ValidationIssue::new("less_than_equal", &["query", name], msg, input).with_ctx(json!({ "le": max })),
            );
            return default;
        }
        value
    }

    /// A required parameter.
    pub fn required(&self, name: &str, issues: &mut Vec<ValidationIssue>) -> Option<String> {
        let value = self.0.get(name).cloned();
        if value.is_none() {
            issues.push(ValidationIssue::new("missing", &["query", name], "Field required", Value::Null));
        }
        value
    }
}

/// `skip` (>= 0, default 0) and `limit` (1..=1000, default 100).
#[derive(Debug, Clone, Copy, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    #[param(default = 0, minimum = 0, required = false)]
    pub skip: i64,
    #[param(default = 100, minimum = 1, maximum = 1000, required = false)]
    pub limit: i64,
}

pub const MAX_LIMIT: i64 = 1000;

impl Paging {
    pub fn from_params(params: &QueryParams, issues: &mut Vec<ValidationIssue>) -> Self {
        Self { skip: params.int("skip", 0, 0, i64::MAX, issues), limit: params.int("limit", 100, 1, MAX_LIMIT, issues) }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Paging {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let params = QueryParams::from_request_parts(parts, state).await?;
        let mut issues = Vec::new();
        let paging = Self::from_params(&params, &mut issues);
        if issues.is_empty() { Ok(paging) } else { Err(ApiError::Validation(issues)) }
    }
}
