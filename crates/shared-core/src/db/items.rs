//! Queries on the `item` table.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::users::now;
use super::{Db, returned};
use crate::{with_pool, with_writer};

#[derive(Debug, Clone)]
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

/// The columns of [`Item`]; a macro so each statement is one `&'static str`
/// built at compile time, not formatted per call.
macro_rules! columns {
    () => {
        "id, title, description, owner_id, created_at"
    };
}

/// An [`Item`] read by position, in the order of `columns!()`, without
/// sqlx's per-value type check. Read by name and checked (the derive), a
/// page of 100 items spent 0.25-0.34M instructions on it, a sixth of the
/// request on Postgres: a hash lookup per column, and for each text column a
/// comparison against six type descriptions (docs/benchmarks.md). Decoding
/// still refuses what does not fit (a NULL id, a blob of the wrong length),
/// and every query here runs on both backends in the test suite, whose item
/// tests tell each column from the others (two ids, two texts). What no
/// longer fails is a column of a compatible but different type, such as a
/// `created_at` without time zone in a hand-altered database: it reads as UTC.
macro_rules! item_from_row {
    ($($row:ty),+) => {$(
        impl<'r> sqlx::FromRow<'r, $row> for Item {
            fn from_row(row: &'r $row) -> Result<Self, sqlx::Error> {
                use sqlx::Row as _;
                Ok(Self {
                    id: row.try_get_unchecked(0)?,
                    title: row.try_get_unchecked(1)?,
                    description: row.try_get_unchecked(2)?,
                    owner_id: row.try_get_unchecked(3)?,
                    created_at: row.try_get_unchecked(4)?,
                })
            }
        }
    )+};
}
item_from_row!(sqlx::postgres::PgRow, sqlx::sqlite::SqliteRow);

pub async fn create(db: &Db, owner_id: Uuid, title: &str, description: Option<&str>) -> Result<Item, sqlx::Error> {
    const SQL: &str = concat!(
        "INSERT INTO item (id, title, description, owner_id, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING ",
        columns!()
    );
    with_writer!(db, |pool| sqlx::query_as(SQL)
        .bind(Uuid::new_v4())
        .bind(title)
        .bind(description)
        .bind(owner_id)
        .bind(now())
        .fetch_all(pool)
        .await)
    .map(returned)?
    .ok_or(sqlx::Error::RowNotFound)
}

pub async fn find(db: &Db, id: Uuid) -> Result<Option<Item>, sqlx::Error> {
    const SQL: &str = concat!("SELECT ", columns!(), " FROM item WHERE id = $1");
    with_pool!(db, |pool| sqlx::query_as(SQL).bind(id).fetch_optional(pool).await)
}

/// A row of a page: the item and the number of items matching in all.
#[derive(sqlx::FromRow)]
struct PageRow {
    #[sqlx(flatten)]
    item: Item,
    total: i64,
}

/// A page of items, newest first, and the total count. `owner: None` means
/// every owner's (a superuser's view).
///
/// One round trip: each row carries the count, from a scalar subquery the
/// database evaluates once per statement. A page past the end has no row to
/// carry it, so only then is the count asked for on its own. A statement of
/// its own per view (rather than `$1 IS NULL OR owner_id = $1`) lets both
/// databases plan the owner's list on the owner index.
pub async fn list(db: &Db, owner: Option<Uuid>, skip: i64, limit: i64) -> Result<(Vec<Item>, i64), sqlx::Error> {
    macro_rules! page {
        ($filter:literal, $limit:literal, $offset:literal) => {
            concat!(
                "SELECT ",
                columns!(),
                ", (SELECT COUNT(*) FROM item",
                $filter,
                ") AS total FROM item",
                $filter,
                " ORDER BY created_at DESC NULLS LAST, id LIMIT ",
                $limit,
                " OFFSET ",
                $offset
            )
        };
    }
    let rows: Vec<PageRow> = match owner {
        Some(owner) => with_pool!(db, |pool| sqlx::query_as(page!(" WHERE owner_id = $1", "$2", "$3"))
            .bind(owner)
            .bind(limit)
            .bind(skip)
            .fetch_all(pool)
            .await)?,
        None => {
            with_pool!(db, |pool| sqlx::query_as(page!("", "$1", "$2")).bind(limit).bind(skip).fetch_all(pool).await)?
        }
    };
    let count = match rows.first() {
        Some(row) => row.total,
        // Nothing before the page either: nothing at all.
        None if skip == 0 => 0,
        None => match owner {
            Some(owner) => with_pool!(db, |pool| sqlx::query_scalar("SELECT COUNT(*) FROM item WHERE owner_id = $1")
                .bind(owner)
                .fetch_one(pool)
                .await)?,
            None => with_pool!(db, |pool| sqlx::query_scalar("SELECT COUNT(*) FROM item").fetch_one(pool).await)?,
        },
    };
    Ok((rows.into_iter().map(|row| row.item).collect(), count))
}

pub async fn update(db: &Db, id: Uuid, changes: ItemChanges) -> Result<Option<Item>, sqlx::Error> {
    const SQL: &str = concat!(
        "UPDATE item SET
           title = COALESCE($2, title),
           description = CASE WHEN $3 THEN $4 ELSE description END
         WHERE id = $1 RETURNING ",
        columns!()
    );
    let set_description = changes.description.is_some();
    let description = changes.description.flatten();
    with_writer!(db, |pool| sqlx::query_as(SQL)
        .bind(id)
        .bind(&changes.title)
        .bind(set_description)
        .bind(&description)
        .fetch_all(pool)
        .await)
    .map(returned)
}

pub async fn delete(db: &Db, id: Uuid) -> Result<bool, sqlx::Error> {
    let deleted = with_writer!(db, |pool| sqlx::query("DELETE FROM item WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(deleted > 0)
}
