//! The stack's data tables: what a backup reports the rows of, what
//! `worker copy-to-postgres` copies and what `worker count-rows` counts.
//!
//! Parents first (`item` and `jobs` reference `"user"`), so rows can be
//! loaded in this order with every foreign key checked as they arrive.
//!
//! Not data, and so not here: `workers` and `schedule_slots` are runtime
//! state that running workers recreate (heartbeats, claimed schedule slots),
//! and `_sqlx_migrations` belongs to each database's own schema history.

use sqlx::AssertSqlSafe;

use super::{Backend, Db};
use crate::with_pool;

pub const DATA: [&str; 3] = ["user", "item", "jobs"];

/// `name` as a quoted SQL identifier (`"user"` is a reserved word in
/// Postgres). The names come from [`DATA`] or a database's own catalog.
pub fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `SELECT count(*)` of `table`, the same in both dialects.
pub(super) fn count_sql(table: &str) -> AssertSqlSafe<String> {
    AssertSqlSafe(format!("SELECT count(*) FROM {}", quoted(table)))
}

/// The rows of each data table `db` has, in [`DATA`] order; a table it
/// lacks (a schema older than the table) is left out.
pub async fn row_counts(db: &Db) -> Result<Vec<(&'static str, i64)>, sqlx::Error> {
    let backend = db.backend();
    with_pool!(db, |conn| row_counts_on(conn, backend).await)
}

/// [`row_counts`] on one connection (in a transaction, one snapshot): a
/// backup's file is checked on a connection of its own, not through a pool.
pub(super) async fn row_counts_on<C>(conn: &mut C, backend: Backend) -> Result<Vec<(&'static str, i64)>, sqlx::Error>
where
    C: sqlx::Connection,
    for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
    <C::Database as sqlx::Database>::Arguments: sqlx::IntoArguments<C::Database>,
    bool: sqlx::Type<C::Database> + for<'r> sqlx::Decode<'r, C::Database>,
    i64: sqlx::Type<C::Database> + for<'r> sqlx::Decode<'r, C::Database>,
    for<'q> &'q str: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    usize: sqlx::ColumnIndex<<C::Database as sqlx::Database>::Row>,
{
    // Whether table `$1` exists, from each dialect's catalog.
    let exists = match backend {
        Backend::Postgres => "SELECT to_regclass(quote_ident($1)) IS NOT NULL",
        Backend::Sqlite => "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = $1)",
    };
    let mut counts = Vec::new();
    for table in DATA {
        let present: bool = sqlx::query_scalar(exists).bind(table).fetch_one(&mut *conn).await?;
        if present {
            let rows: i64 = sqlx::query_scalar(count_sql(table)).fetch_one(&mut *conn).await?;
            counts.push((table, rows));
        }
    }
    Ok(counts)
}
