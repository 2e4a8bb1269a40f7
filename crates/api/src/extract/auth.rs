//! The caller, from `Authorization: Bearer <token>`, with the contract's
//! errors in FastAPI's order: no bearer credentials 401, a token that does
//! not verify 403, a user gone 404, an inactive user 400.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use shared_core::db::users::{self, User};
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

pub struct CurrentUser(pub User);

/// The user id of the request's bearer token, already verified (by the rate
/// limiter, which keys on it), so the token is decoded once per request.
#[derive(Clone, Copy)]
pub struct VerifiedUserId(pub Uuid);

/// The caller, who must be a superuser (403 otherwise).
pub struct CurrentSuperuser(pub User);

/// The token of a `Bearer` Authorization header (scheme case-insensitive).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers).ok_or(ApiError::NotAuthenticated)?;
        let user_id = match parts.extensions.get::<VerifiedUserId>() {
            Some(VerifiedUserId(id)) => *id,
            None => state
                .tokens
                .decode_access_token(token)
                .map_err(|_| ApiError::Forbidden("Could not validate credentials"))?,
        };
        let user = users::find_by_id(&state.db, user_id).await?.ok_or(ApiError::NotFound("User not found"))?;
        if !user.is_active {
            return Err(ApiError::BadRequest("Inactive user"));
        }
        Ok(Self(user))
    }
}

impl FromRequestParts<AppState> for CurrentSuperuser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let CurrentUser(user) = CurrentUser::from_request_parts(parts, state).await?;
        if !user.is_superuser {
            return Err(ApiError::Forbidden("The user doesn't have enough privileges"));
        }
        Ok(Self(user))
    }
}
