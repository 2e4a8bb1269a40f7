//! Tag `items`: a user sees and changes only their own; a superuser, all.

use axum::extract::State;
use shared_core::db::items::{self, Item, ItemChanges};
use shared_core::db::users::User;
use uuid::Uuid;

use super::responses::{Invalid, ItemLookup};
use crate::error::ApiError;
use crate::extract::auth::CurrentUser;
use crate::extract::body::JsonBody;
use crate::extract::path::PathId;
use crate::extract::query::Paging;
use crate::json::Json;
use crate::models::{ItemCreate, ItemPublic, ItemUpdate, ItemsPublic, Message};
use crate::state::AppState;

/// Retrieve items.
#[utoipa::path(
    get,
    path = "/api/v1/items/",
    tag = "items",
    operation_id = "items-read_items",
    params(Paging),
    security(("OAuth2PasswordBearer" = [])),
    responses(
        (status = 200, description = "Successful Response", body = ItemsPublic),
        Invalid,
    )
)]
pub async fn read_items(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    paging: Paging,
) -> Result<Json<ItemsPublic>, ApiError> {
    let owner = (!user.is_superuser).then_some(user.id);
    let (items, count) = items::list(&state.db, owner, paging.skip, paging.limit).await?;
    Ok(Json(ItemsPublic { data: items.into_iter().map(Into::into).collect(), count }))
}

/// Create new item.
#[utoipa::path(
    post,
    path = "/api/v1/items/",
    tag = "items",
    operation_id = "items-create_item",
    request_body = ItemCreate,
    security(("OAuth2PasswordBearer" = [])),
    responses(
        (status = 200, description = "Successful Response", body = ItemPublic),
        Invalid,
    )
)]
pub async fn create_item(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    JsonBody(body): JsonBody<ItemCreate>,
) -> Result<Json<ItemPublic>, ApiError> {
    let item = items::create(&state.db, user.id, &body.title, body.description.as_deref()).await?;
    Ok(Json(item.into()))
}

/// The item, if `user` may touch it.
async fn owned_item(state: &AppState, user: &User, id: Uuid) -> Result<Item, ApiError> {
    let item = items::find(&state.db, id).await?.ok_or(ApiError::NotFound("Item not found"))?;
    if !user.is_superuser && item.owner_id != user.id {
        return Err(ApiError::Forbidden("Not enough permissions"));
    }
    Ok(item)
}

/// Get item by id.
#[utoipa::path(
    get,
    path = "/api/v1/items/{id}",
    tag = "items",
    operation_id = "items-read_item",
    params(("id" = Uuid, Path)),
    security(("OAuth2PasswordBearer" = [])),
    responses(
        (status = 200, description = "Successful Response", body = ItemPublic),
        ItemLookup,
    )
)]
pub async fn read_item(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    PathId(id): PathId,
) -> Result<Json<ItemPublic>, ApiError> {
    owned_item(&state, &user, id).await.map(|item| Json(item.into()))
}

/// Update an item.
#[utoipa::path(
    put,
    path = "/api/v1/items/{id}",
    tag = "items",
    operation_id = "items-update_item",
    params(("id" = Uuid, Path)),
    request_body = ItemUpdate,
    security(("OAuth2PasswordBearer" = [])),
    responses(
        (status = 200, description = "Successful Response", body = ItemPublic),
        ItemLookup,
    )
)]
pub async fn update_item(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    PathId(id): PathId,
    JsonBody(body): JsonBody<ItemUpdate>,
) -> Result<Json<ItemPublic>, ApiError> {
    owned_item(&state, &user, id).await?;
    let changes = ItemChanges { title: body.title, description: body.description };
    let item = items::update(&state.db, id, changes).await?.ok_or(ApiError::NotFound("Item not found"))?;
    Ok(Json(item.into()))
}

/// Delete an item.
#[utoipa::path(
    delete,
    path = "/api/v1/items/{id}",
    tag = "items",
    operation_id = "items-delete_item",
    params(("id" = Uuid, Path)),
    security(("OAuth2PasswordBearer" = [])),
    responses(
        (status = 200, description = "Successful Response", body = Message),
        ItemLookup,
    )
)]
pub async fn delete_item(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    PathId(id): PathId,
) -> Result<Json<Message>, ApiError> {
    owned_item(&state, &user, id).await?;
    items::delete(&state.db, id).await?;
    Ok(Json(Message::new("Item deleted successfully")))
}
