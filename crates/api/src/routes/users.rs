//! Tag `users`.

use axum::extract::State;
use shared_core::auth::password::Verified;
use shared_core::db::users::{self, NewUser, User, UserChanges};
use shared_core::email::{Email, templates};

use super::responses::{Invalid, SuperuserInput};
use crate::error::ApiError;
use crate::extract::auth::{CurrentSuperuser, CurrentUser};
use crate::extract::body::JsonBody;
use crate::extract::path::PathId;
use crate::extract::query::Paging;
use crate::json::Json;
use crate::models::{
    Message, UpdatePassword, UserCreate, UserPublic, UserRegister, UserUpdate, UserUpdateMe, UsersPublic,
};
use crate::notify;
use crate::state::AppState;

/// Retrieve users.
#[utoipa::path(
    get,
    path = "/api/v1/users/",
    tag = "users",
    operation_id = "users-read_users",
    params(Paging),
    security(("OAuth2PasswordBearer" = [])),
    responses(
        (status = 200, description = "Successful Response", body = UsersPublic),
        SuperuserInput,
    )
)]
pub async fn read_users(
    State(state): State<AppState>,
    _superuser: CurrentSuperuser,
    paging: Paging,
) -> Result<Json<UsersPublic>, ApiError> {
    let (users, count) = users::list(&state.db, paging.skip, paging.limit).await?;
    Ok(Json(UsersPublic { data: users.into_iter().map(Into::into).collect(), count }))
}

/// Create new user.
#[utoipa::path(
    post,
    path = "/api/v1/users/",
    tag = "users",
    operation_id = "users-create_user",
    request_body = UserCreate,
    security(("OAuth2PasswordBearer" = [])),
    responses(
        (status = 200, description = "Successful Response", body = UserPublic),
        (status = 400, description = "The email is taken"),
        SuperuserInput,
    )
)]
pub async fn create_user(
    State(state): State<AppState>,
    _superuser: CurrentSuperuser,
    JsonBody(body): JsonBody<UserCreate>,
) -> Result<Json<UserPublic>, ApiError> {
    const TAKEN: &str = "The user with this email already exists in the system.";
    let new = NewUser {
        email: &body.email,
        hashed_password: "",
        full_name: body.full_name.as_deref(),
        is_active: body.is_active,
        is_superuser: body.is_superuser,
    };
    let welcome = templates::new_account(&state.settings, &body.email, &body.email);
    let user = register(&state, new, &body.password, TAKEN, Some(welcome)).await?;
    Ok(Json(user.into()))
}

/// Creates a user unless the email is taken (in any letter case), mapping a
/// concurrent insert that wins the race to the same `taken` error. A
/// `welcome` email is queued in the same transaction as the user.
pub(super) async fn register(
    state: &AppState,
    mut new: NewUser<'_>,
    password: &str,
    taken: &'static str,
    welcome: Option<Email>,
) -> Result<User, ApiError> {
    if users::find_by_email(&state.db, new.email).await?.is_some() {
        return Err(ApiError::BadRequest(taken));
    }
    let hashed_password = state.hasher.hash(password).await?;
    new.hashed_password = &hashed_password;
    let mut tx = state.db.begin_write().await?;
    let user = users::create(&mut tx, new).await.map_err(|err| taken_or(err, ApiError::BadRequest(taken)))?;
    if let Some(email) = welcome {
        notify::send_in(&mut tx, state, email).await?;
    }
    tx.commit().await?;
    Ok(user)
}

/// Get current user.
#[utoipa::path(
    get,
    path = "/api/v1/users/me",
    tag = "users",
    operation_id = "users-read_user_me",
    security(("OAuth2PasswordBearer" = [])),
    responses((status = 200, description = "Successful Response", body = UserPublic))
)]
pub async fn read_user_me(CurrentUser(user): CurrentUser) -> Json<UserPublic> {
    Json(user.into())
}

/// Update own user.
#[utoipa::path(
    patch,
    path = "/api/v1/users/me",
    tag = "users",
    operation_id = "users-update_user_me",
    request_body = UserUpdateMe,
    security(("OAuth2PasswordBearer" = [])),
    responses(
        (status = 200, description = "Successful Response", body = UserPublic),
        (status = 409, description = "The email is taken"),
        Invalid,
    )
)]
pub async fn update_user_me(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    JsonBody(body): JsonBody<UserUpdateMe>,
) -> Result<Json<UserPublic>, ApiError> {
    let changes = UserChanges { email: body.email, full_name: body.full_name, ..UserChanges::default() };
    apply_changes(&state, user.id, changes).await.map(|user| Json(user.into()))
}

/// Applies changes to an existing user, refusing an email someone else has.
async fn apply_changes(state: &AppState, id: uuid::Uuid, changes: UserChanges) -> Result<User, ApiError> {
    const TAKEN: &str = "User with this email already exists";
    if let Some(email) = &changes.email
        && let Some(other) = users::find_by_email(&state.db, email).await?
        && other.id != id
    {
        return Err(ApiError::Conflict(TAKEN));
    }
    users::update(&state.db, id, changes)
        .await
        .map_err(|err| taken_or(err, ApiError::Conflict(TAKEN)))?
        .ok_or(ApiError::NotFound("The user with this id does not exist in the system"))
}

/// A write that lost a race for an email to a concurrent one fails on the
/// unique index after the check before it passed: it answers `taken`, as
/// the check would have.
fn taken_or(err: sqlx::Error, taken: ApiError) -> ApiError {
    if users::is_unique_violation(&err) { taken } else { err.into() }
}

/// Update own password.
#[utoipa::path(
    patch,
    path = "/api/v1/users/me/password",
    tag = "users",
    operation_id = "users-update_password_me",
    request_body = UpdatePassword,
    security(("OAuth2PasswordBearer" = [])),
    responses(
        (status = 200, description = "Successful Response", body = Message),
        (status = 400, description = "Incorrect password, or the same as the current one"),
        Invalid,
    )
)]
pub async fn update_password_me(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    JsonBody(body): JsonBody<UpdatePassword>,
) -> Result<Json<Message>, ApiError> {
    let verified = state.hasher.verify(&body.current_password, &user.hashed_password).await?;
    if verified == Verified::Invalid {
        return Err(ApiError::BadRequest("Incorrect password"));
    }
    if body.current_password == body.new_password {
        return Err(ApiError::BadRequest("New password cannot be the same as the current one"));
    }
    let hashed_password = Some(state.hasher.hash(&body.new_password).await?);
    users::update(&state.db, user.id, UserChanges { hashed_password, ..UserChanges::default() }).await?;
    Ok(Json(Message::new("Password updated successfully")))
}

/// Delete own user.
#[utoipa::path(
    delete,
    path = "/api/v1/users/me",
    tag = "users",
    operation_id = "users-delete_user_me",
    security(("OAuth2PasswordBearer" = [])),
    responses(
        (status = 200, description = "Successful Response", body = Message),
        (status = 403, description = "Superusers cannot delete themselves"),
    )
)]
pub async fn delete_user_me(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<Message>, ApiError> {
    if user.is_superuser {
        return Err(ApiError::Forbidden("Super users are not allowed to delete themselves"));
    }
    users::delete(&state.db, user.id).await?;
    Ok(Json(Message::new("User deleted successfully")))
}

/// Create new user without the need to be logged in.
#[utoipa::path(
    post,
    path = "/api/v1/users/signup",
    tag = "users",
    operation_id = "users-register_user",
    request_body = UserRegister,
    responses(
        (status = 200, description = "Successful Response", body = UserPublic),
        (status = 400, description = "The email is taken"),
        Invalid,
    )
)]
pub async fn register_user(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<UserRegister>,
) -> Result<Json<UserPublic>, ApiError> {
    let new = NewUser {
        email: &body.email,
        hashed_password: "",
        full_name: body.full_name.as_deref(),
        is_active: true,
        is_superuser: false,
    };
    let user =
        register(&state, new, &body.password, "The user with this email already exists in the system", None).await?;
    Ok(Json(user.into()))
}

/// Get a specific user by id.
#[utoipa::path(
    get,
    path = "/api/v1/users/{user_id}",
    tag = "users",
    operation_id = "users-read_user_by_id",
    params(("user_id" = uuid::Uuid, Path)),
    security(("OAuth2PasswordBearer" = [])),
    responses(
        (status = 200, description = "Successful Response", body = UserPublic),
        (status = 403, description = "Someone else's record"),
        (status = 404, description = "No such user"),
        Invalid,
    )
)]
pub async fn read_user_by_id(
    State(state): State<AppState>,
    CurrentUser(current): CurrentUser,
    PathId(user_id): PathId,
) -> Result<Json<UserPublic>, ApiError> {
    if user_id == current.id {
        return Ok(Json(current.into()));
    }
    // FastAPI's order: a normal user learns nothing about other ids.
    if !current.is_superuser {
        return Err(ApiError::Forbidden("The user doesn't have enough privileges"));
    }
    let user = users::find_by_id(&state.db, user_id).await?.ok_or(ApiError::NotFound("User not found"))?;
    Ok(Json(user.into()))
}

/// Update a user.
#[utoipa::path(
    patch,
    path = "/api/v1/users/{user_id}",
    tag = "users",
    operation_id = "users-update_user",
    params(("user_id" = uuid::Uuid, Path)),
    request_body = UserUpdate,
    security(("OAuth2PasswordBearer" = [])),
    responses(
        (status = 200, description = "Successful Response", body = UserPublic),
        (status = 404, description = "No such user"),
        (status = 409, description = "The email is taken"),
        SuperuserInput,
    )
)]
pub async fn update_user(
    State(state): State<AppState>,
    _superuser: CurrentSuperuser,
    PathId(user_id): PathId,
    JsonBody(body): JsonBody<UserUpdate>,
) -> Result<Json<UserPublic>, ApiError> {
    if users::find_by_id(&state.db, user_id).await?.is_none() {
        return Err(ApiError::NotFound("The user with this id does not exist in the system"));
    }
    let hashed_password = match &body.password {
        Some(password) => Some(state.hasher.hash(password).await?),
        None => None,
    };
    let changes = UserChanges {
        email: body.email,
        full_name: body.full_name,
        is_active: body.is_active,
        is_superuser: body.is_superuser,
        hashed_password,
    };
    apply_changes(&state, user_id, changes).await.map(|user| Json(user.into()))
}

/// Delete a user (and their items).
#[utoipa::path(
    delete,
    path = "/api/v1/users/{user_id}",
    tag = "users",
    operation_id = "users-delete_user",
    params(("user_id" = uuid::Uuid, Path)),
    security(("OAuth2PasswordBearer" = [])),
    responses(
        (status = 200, description = "Successful Response", body = Message),
        (status = 403, description = "Not a superuser, or the superuser's own account"),
        (status = 404, description = "No such user"),
        Invalid,
    )
)]
pub async fn delete_user(
    State(state): State<AppState>,
    CurrentSuperuser(current): CurrentSuperuser,
    PathId(user_id): PathId,
) -> Result<Json<Message>, ApiError> {
    if users::find_by_id(&state.db, user_id).await?.is_none() {
        return Err(ApiError::NotFound("User not found"));
    }
    if user_id == current.id {
        return Err(ApiError::Forbidden("Super users are not allowed to delete themselves"));
    }
    users::delete(&state.db, user_id).await?;
    Ok(Json(Message::new("User deleted successfully")))
}
