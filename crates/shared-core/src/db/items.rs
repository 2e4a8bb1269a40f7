//! Queries on the `item` table.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Db;
use super::users::now;
use crate::with_pool;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Item {
    pub id: Uuid,
    pub title: String,
    pub description: Option<String>,
    pub owner_id: Uuid,
    pub created_at: Option<DateTime<Utc>>,
}

/// A partial update: `None` leaves a column alone; `description` is
/// nullable, so `Some(None)` clears it.
#[derive(Debug, Default)]
pub struct ItemChanges {
    pub title: Option<String>,
    pub description: Option<Option<String>>,
}

const COLUMNS: &str = "id, title, description, owner_id, created_at";

pub async fn create(db: &Db, owner_id: Uuid, title: &str, description: Option<&str>) -> Result<Item, sqlx::Error> {
    let sql = format!(
        "INSERT INTO item (id, title, description, owner_id, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    );
    with_pool!(db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(Uuid::new_v4())
        .bind(title)
        .bind(description)
        .bind(owner_id)
        .bind(now())
        .fetch_one(pool)
        .await)
}

pub async fn find(db: &Db, id: Uuid) -> Result<Option<Item>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM item WHERE id = $1");
    with_pool!(db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await)
}

/// A page of items, newest first, and the total count. `owner: None` means
/// every owner's (a superuser's view).
pub async fn list(db: &Db, owner: Option<Uuid>, skip: i64, limit: i64) -> Result<(Vec<Item>, i64), sqlx::Error> {
    // `$1 IS NULL` keeps one statement for both views; the owner index
    // serves the filtered one.
    let page = format!(
        "SELECT {COLUMNS} FROM item WHERE ($1 IS NULL OR owner_id = $1)
         ORDER BY created_at DESC NULLS LAST, id LIMIT $2 OFFSET $3"
    );
    let items = with_pool!(db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(page.clone()))
        .bind(owner)
        .bind(limit)
        .bind(skip)
        .fetch_all(pool)
        .await)?;
    let count =
        with_pool!(db, |pool| sqlx::query_scalar("SELECT COUNT(*) FROM item WHERE ($1 IS NULL OR owner_id = $1)")
            .bind(owner)
            .fetch_one(pool)
            .await)?;
    Ok((items, count))
}

pub async fn update(db: &Db, id: Uuid, changes: ItemChanges) -> Result<Option<Item>, sqlx::Error> {
    let sql = format!(
        "UPDATE item SET
           title = COALESCE($2, title),
           description = CASE WHEN $3 THEN $4 ELSE description END
         WHERE id = $1 RETURNING {COLUMNS}"
    );
    let set_description = changes.description.is_some();
    let description = changes.description.flatten();
    with_pool!(db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(&changes.title)
        .bind(set_description)
        .bind(&description)
        .fetch_optional(pool)
        .await)
}

pub async fn delete(db: &Db, id: Uuid) -> Result<bool, sqlx::Error> {
    let deleted = with_pool!(db, |pool| sqlx::query("DELETE FROM item WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(deleted > 0)
}
