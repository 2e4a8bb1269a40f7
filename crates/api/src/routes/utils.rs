//! Tag `utils`.

use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;
use shared_core::email::templates;

use super::responses::Invalid;
use crate::error::{ApiError, ValidationIssue};
use crate::extract::auth::CurrentSuperuser;
use crate::extract::fields::normalise_email;
use crate::extract::query::QueryParams;
use crate::json::Json;
use crate::models::Message;
use crate::notify;
use crate::state::AppState;

/// Test emails.
#[utoipa::path(
    post,
    path = "/api/v1/utils/test-email/",
    tag = "utils",
    operation_id = "utils-test_email",
    params(("email_to" = String, Query, format = Email)),
    security(("OAuth2PasswordBearer" = [])),
    responses(
        (status = 201, description = "Successful Response", body = Message),
        (status = 503, description = "Email is not configured"),
        Invalid,
    )
)]
pub async fn test_email(
    State(state): State<AppState>,
    _superuser: CurrentSuperuser,
    params: QueryParams,
) -> Result<(StatusCode, Json<Message>), ApiError> {
    let mut issues = Vec::new();
    let raw = params.required("email_to", &mut issues);
    let email_to = raw.and_then(|raw| match normalise_email(&raw) {
        Ok(email) => Some(email),
        Err(reason) => {
            let msg = format!("value is not a valid email address: {reason}");
            issues.push(ValidationIssue::new("value_error", &["query", "email_to"], msg, Value::String(raw)));
            None
        }
    });
    let Some(email_to) = email_to else { return Err(ApiError::Validation(issues)) };
    if !state.settings.email_enabled() {
        return Err(ApiError::Unavailable("Email is not configured (set SMTP_HOST and EMAILS_FROM_EMAIL)"));
    }
    notify::send(&state, templates::test_email(&state.settings, &email_to)).await?;
    Ok((StatusCode::CREATED, Json(Message::new("Test email sent"))))
}
