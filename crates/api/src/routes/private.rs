//! Tag `private`: development helpers, routed only when ENVIRONMENT=local.

use axum::extract::State;
use shared_core::db::users::NewUser;

use super::responses::Invalid;
use crate::error::ApiError;
use crate::extract::body::JsonBody;
use crate::json::Json;
use crate::models::{PrivateUserCreate, UserPublic};
use crate::state::AppState;

/// Create a new user (local environment only).
#[utoipa::path(
    post,
    path = "/api/v1/private/users/",
    tag = "private",
    operation_id = "private-create_user",
    request_body = PrivateUserCreate,
    responses(
        (status = 200, description = "Successful Response", body = UserPublic),
        (status = 400, description = "The email is taken"),
        Invalid,
    )
)]
pub async fn create_user(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<PrivateUserCreate>,
) -> Result<Json<UserPublic>, ApiError> {
    let new = NewUser {
        email: &body.email,
        hashed_password: "",
        full_name: Some(&body.full_name),
        is_active: true,
        is_superuser: false,
    };
    const TAKEN: &str = "The user with this email already exists in the system";
    let user = super::users::register(&state, new, &body.password, TAKEN, None).await?;
    Ok(Json(user.into()))
}
