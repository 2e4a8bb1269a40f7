//! Tag `login`: tokens and password recovery.

use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{Html, IntoResponse, Response};
use shared_core::auth::password::Verified;
use shared_core::db::users::{self, User, UserChanges};
use shared_core::email::templates;
use shared_core::jobs;
use shared_core::jobs::kinds::PasswordRecovery;
use shared_core::jobs::kinds::password_recovery::PasswordRecoveryPayload;

use super::responses::{Invalid, SuperuserInput};
use crate::error::ApiError;
use crate::extract::auth::{CurrentSuperuser, CurrentUser};
use crate::extract::body::JsonBody;
use crate::extract::client::ClientAddress;
use crate::extract::form::LoginForm;
use crate::extract::path::PathText;
use crate::json::Json;
use crate::models::{LoginFormBody, Message, NewPassword, Token, UserPublic};
use crate::state::AppState;

/// OAuth2 compatible token login: an access token for future requests.
#[utoipa::path(
    post,
    path = "/api/v1/login/access-token",
    tag = "login",
    operation_id = "login-login_access_token",
    request_body(content = LoginFormBody, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Successful Response", body = Token),
        (status = 400, description = "Incorrect email or password, or inactive user"),
        Invalid,
    )
)]
pub async fn login_access_token(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    form: LoginForm,
) -> Result<Json<Token>, ApiError> {
    let account = Some(form.username.as_str());
    state.rate_limiter.credentials_allowed(client, account).await?;
    let Some(user) = authenticate(&state, &form.username, &form.password).await? else {
        state.rate_limiter.credentials_failed(client, account).await;
        return Err(ApiError::BadRequest("Incorrect email or password"));
    };
    if !user.is_active {
        return Err(ApiError::BadRequest("Inactive user"));
    }
    let access_token = state.tokens.create_access_token(user.id, state.settings.access_token_expire)?;
    Ok(Json(Token { access_token, token_type: "bearer".to_owned() }))
}

/// The user whose password this is, or `None`. An unknown email still costs
/// one hash verification, so response times do not reveal which emails
/// exist. A valid password on an outdated hash (bcrypt, older argon2
/// parameters) is re-hashed to the current argon2id.
async fn authenticate(state: &AppState, email: &str, password: &str) -> Result<Option<User>, ApiError> {
    let Some(user) = users::find_by_email(&state.db, email).await? else {
        state.hasher.verify_dummy(password).await;
        return Ok(None);
    };
    let verified = state.hasher.verify(password, &user.hashed_password).await?;
    match verified {
        Verified::Invalid => Ok(None),
        Verified::Valid { needs_rehash } => {
            if needs_rehash && !state.db.is_read_only() {
                rehash(state, &user, password).await;
            }
            Ok(Some(user))
        }
    }
}

/// Best effort: a failed upgrade must not fail the login it rides on.
async fn rehash(state: &AppState, user: &User, password: &str) {
    let upgraded = async {
        let hashed_password = Some(state.hasher.hash(password).await?);
        users::update(&state.db, user.id, UserChanges { hashed_password, ..UserChanges::default() }).await?;
        Ok::<_, anyhow::Error>(())
    };
    match upgraded.await {
        Ok(()) => tracing::info!(user_id = %user.id, "password hash upgraded to argon2id"),
        Err(err) => tracing::warn!(user_id = %user.id, error = %err, "password hash upgrade failed"),
    }
}

/// Test access token.
#[utoipa::path(
    post,
    path = "/api/v1/login/test-token",
    tag = "login",
    operation_id = "login-test_token",
    security(("OAuth2PasswordBearer" = [])),
    responses((status = 200, description = "Successful Response", body = UserPublic))
)]
pub async fn test_token(CurrentUser(user): CurrentUser) -> Json<UserPublic> {
    Json(user.into())
}

/// Password recovery: the same answer whether or not the email is known.
#[utoipa::path(
    post,
    path = "/api/v1/password-recovery/{email}",
    tag = "login",
    operation_id = "login-recover_password",
    params(("email" = String, Path)),
    responses(
        (status = 200, description = "Successful Response", body = Message),
        Invalid,
    )
)]
pub async fn recover_password(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    PathText(email): PathText,
) -> Result<Json<Message>, ApiError> {
    state.rate_limiter.recovery_requested(client, &email).await?;
    // The same work whether or not the address is registered (a token and
    // one insert), so the answer's timing tells nothing: the worker looks
    // the address up and mails only a user.
    if state.settings.email_enabled() {
        let token = state.tokens.create_reset_token(&email, state.settings.email_reset_token_expire)?;
        let payload = PasswordRecoveryPayload { email, token };
        let job = jobs::internal_job::<PasswordRecovery>(payload, &state.settings.worker);
        jobs::enqueue(&state.db, &job).await?;
    }
    Ok(Json(Message::new("If that email is registered, we sent a password recovery link")))
}

/// Reset password with the token from the recovery email.
#[utoipa::path(
    post,
    path = "/api/v1/reset-password/",
    tag = "login",
    operation_id = "login-reset_password",
    request_body = NewPassword,
    responses(
        (status = 200, description = "Successful Response", body = Message),
        (status = 400, description = "Invalid token or inactive user"),
        Invalid,
    )
)]
pub async fn reset_password(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    JsonBody(body): JsonBody<NewPassword>,
) -> Result<Json<Message>, ApiError> {
    // The account is the token's, when its signature holds.
    let email = state.tokens.decode_reset_token(&body.token).ok();
    let limiter = &state.rate_limiter;
    limiter.credentials_allowed(client, email.as_deref()).await?;
    let user = match &email {
        Some(email) => users::find_by_email(&state.db, email).await?,
        None => None,
    };
    let Some(user) = user else {
        limiter.credentials_failed(client, email.as_deref()).await;
        return Err(ApiError::BadRequest("Invalid token"));
    };
    if !user.is_active {
        return Err(ApiError::BadRequest("Inactive user"));
    }
    let hashed_password = Some(state.hasher.hash(&body.new_password).await?);
    users::update(&state.db, user.id, UserChanges { hashed_password, ..UserChanges::default() }).await?;
    Ok(Json(Message::new("Password updated successfully")))
}

/// HTML content of the password recovery email, for superusers.
#[utoipa::path(
    post,
    path = "/api/v1/password-recovery-html-content/{email}",
    tag = "login",
    operation_id = "login-recover_password_html_content",
    params(("email" = String, Path)),
    security(("OAuth2PasswordBearer" = [])),
    responses(
        (status = 200, description = "Successful Response", content_type = "text/html", body = String),
        (status = 404, description = "No such user"),
        SuperuserInput,
    )
)]
pub async fn recover_password_html_content(
    State(state): State<AppState>,
    _superuser: CurrentSuperuser,
    PathText(email): PathText,
) -> Result<Response, ApiError> {
    let user = users::find_by_email(&state.db, &email)
        .await?
        .ok_or(ApiError::NotFound("The user with this username does not exist in the system."))?;
    let token = state.tokens.create_reset_token(&user.email, state.settings.email_reset_token_expire)?;
    let email = templates::reset_password(&state.settings, &user.email, &token);
    let mut response = Html(email.html).into_response();
    // FastAPI sends the subject as a header too; a subject that is not a
    // valid header value (non-ASCII) is left out rather than failing.
    if let Ok(subject) = HeaderValue::from_str(&email.subject) {
        response.headers_mut().insert("subject", subject);
    }
    Ok(response)
}
