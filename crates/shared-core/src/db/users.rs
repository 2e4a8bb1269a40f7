//! Queries on the `"user"` table. Emails are compared case-insensitively
//! (`lower(email)`, indexed), as the contract requires.

use chrono::{DateTime, SubsecRound, Utc};
use uuid::Uuid;

use super::{Db, Tx, returned};
use crate::{with_pool, with_writer};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub is_active: bool,
    pub is_superuser: bool,
    pub full_name: Option<String>,
    pub hashed_password: String,
    pub created_at: Option<DateTime<Utc>>,
}

pub struct NewUser<'a> {
    pub email: &'a str,
    pub hashed_password: &'a str,
    pub full_name: Option<&'a str>,
    pub is_active: bool,
    pub is_superuser: bool,
}

/// A partial update: `None` leaves a column alone. `full_name` is nullable,
/// so `Some(None)` clears it.
#[derive(Debug, Default)]
pub struct UserChanges {
    pub email: Option<String>,
    pub full_name: Option<Option<String>>,
    pub is_active: Option<bool>,
    pub is_superuser: Option<bool>,
    pub hashed_password: Option<String>,
}

/// The columns of [`User`]; a macro so the statements are `&'static str`
/// built at compile time, not formatted per call.
macro_rules! columns {
    () => {
        "id, email, is_active, is_superuser, full_name, hashed_password, created_at"
    };
}

/// Timestamps are cut to microseconds, Postgres' precision, so both
/// backends hand back exactly what was written.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

pub async fn find_by_id(db: &Db, id: Uuid) -> Result<Option<User>, sqlx::Error> {
    const SQL: &str = concat!("SELECT ", columns!(), r#" FROM "user" WHERE id = $1"#);
    with_pool!(db, |pool| sqlx::query_as(SQL).bind(id).fetch_optional(pool).await)
}

pub async fn find_by_email(db: &Db, email: &str) -> Result<Option<User>, sqlx::Error> {
    const SQL: &str = concat!("SELECT ", columns!(), r#" FROM "user" WHERE lower(email) = lower($1) LIMIT 1"#);
    with_pool!(db, |pool| sqlx::query_as(SQL).bind(email).fetch_optional(pool).await)
}

/// Inserts a user in the caller's transaction (so, e.g., its welcome email
/// job commits with it). A concurrent insert of the same email fails on the
/// unique index: see [`is_unique_violation`].
pub async fn create(tx: &mut Tx, new: NewUser<'_>) -> Result<User, sqlx::Error> {
    insert(tx, new, "").await?.ok_or(sqlx::Error::RowNotFound)
}

/// Inserts unless a user with that email (exact spelling) exists; `None`
/// when someone else got there first. Lets several replicas run start-up at
/// once without racing on the unique index.
pub async fn create_if_absent(db: &Db, new: NewUser<'_>) -> Result<Option<User>, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let user = insert(&mut tx, new, "ON CONFLICT (email) DO NOTHING").await?;
    tx.commit().await?;
    Ok(user)
}

async fn insert(tx: &mut Tx, new: NewUser<'_>, on_conflict: &str) -> Result<Option<User>, sqlx::Error> {
    let sql = format!(
        concat!(
            r#"INSERT INTO "user" (id, email, is_active, is_superuser, full_name, hashed_password, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7) {on_conflict} RETURNING "#,
            columns!()
        ),
        on_conflict = on_conflict
    );
    crate::with_tx!(tx, |conn| sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(Uuid::new_v4())
        .bind(new.email)
        .bind(new.is_active)
        .bind(new.is_superuser)
        .bind(new.full_name)
        .bind(new.hashed_password)
        .bind(now())
        .fetch_optional(conn)
        .await)
}

/// A row of a page: the user and the number of users in all.
#[derive(sqlx::FromRow)]
struct PageRow {
    #[sqlx(flatten)]
    user: User,
    total: i64,
}

pub async fn list(db: &Db, skip: i64, limit: i64) -> Result<(Vec<User>, i64), sqlx::Error> {
    // One round trip, as items::list: the count rides on each row.
    const PAGE: &str = concat!(
        "SELECT ",
        columns!(),
        r#", (SELECT COUNT(*) FROM "user") AS total FROM "user"
           ORDER BY created_at DESC NULLS LAST, id LIMIT $1 OFFSET $2"#
    );
    const COUNT: &str = r#"SELECT COUNT(*) FROM "user""#;
    let rows: Vec<PageRow> = with_pool!(db, |pool| sqlx::query_as(PAGE).bind(limit).bind(skip).fetch_all(pool).await)?;
    let count = match rows.first() {
        Some(row) => row.total,
        None if skip == 0 => 0,
        None => with_pool!(db, |pool| sqlx::query_scalar(COUNT).fetch_one(pool).await)?,
    };
    Ok((rows.into_iter().map(|row| row.user).collect(), count))
}

/// Applies `changes` and returns the updated row (`None`: no such user).
pub async fn update(db: &Db, id: Uuid, changes: UserChanges) -> Result<Option<User>, sqlx::Error> {
    // One statement for any subset of columns: each column keeps its value
    // unless its flag says it changes.
    const SQL: &str = concat!(
        r#"UPDATE "user" SET
             email = COALESCE($2, email),
             full_name = CASE WHEN $3 THEN $4 ELSE full_name END,
             is_active = COALESCE($5, is_active),
             is_superuser = COALESCE($6, is_superuser),
             hashed_password = COALESCE($7, hashed_password)
           WHERE id = $1 RETURNING "#,
        columns!()
    );
    let set_full_name = changes.full_name.is_some();
    let full_name = changes.full_name.flatten();
    with_writer!(db, |pool| sqlx::query_as(SQL)
        .bind(id)
        .bind(&changes.email)
        .bind(set_full_name)
        .bind(&full_name)
        .bind(changes.is_active)
        .bind(changes.is_superuser)
        .bind(&changes.hashed_password)
        .fetch_all(pool)
        .await)
    .map(returned)
}

/// Deletes a user and their items in one transaction (the foreign key
/// cascades too, but an adopted database may predate it).
pub async fn delete(db: &Db, id: Uuid) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    crate::with_tx!(&mut tx, |conn| sqlx::query("DELETE FROM item WHERE owner_id = $1")
        .bind(id)
        .execute(conn)
        .await
        .map(drop))?;
    let deleted = crate::with_tx!(&mut tx, |conn| sqlx::query(r#"DELETE FROM "user" WHERE id = $1"#)
        .bind(id)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    tx.commit().await?;
    Ok(deleted > 0)
}

pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}
