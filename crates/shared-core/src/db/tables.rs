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

/// Whether table `$1` exists, from each dialect's catalog.
pub(super) const EXISTS_POSTGRES: &str = "SELECT to_regclass(quote_ident($1)) IS NOT NULL";
pub(super) const EXISTS_SQLITE: &str = "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = $1)";

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
    let exists = match db.backend() {
        Backend::Postgres => EXISTS_POSTGRES,
        Backend::Sqlite => EXISTS_SQLITE,
    };
    let mut counts = Vec::new();
    for table in DATA {
        let present: bool = with_pool!(db, |conn| sqlx::query_scalar(exists).bind(table).fetch_one(conn).await)?;
        if present {
            let rows: i64 = with_pool!(db, |conn| sqlx::query_scalar(count_sql(table)).fetch_one(conn).await)?;
            counts.push((table, rows));
        }
    }
    Ok(counts)
}
