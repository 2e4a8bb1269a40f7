//! The stack's data tables: what a backup reports the rows of and what
//! `worker copy-to-postgres` copies.
//!
//! Parents first (`item` and `jobs` reference `"user"`), so rows can be
//! loaded in this order with every foreign key checked as they arrive.
//!
//! Not data, and so not here: `workers` and `schedule_slots` are runtime
//! state that running workers recreate (heartbeats, claimed schedule slots),
//! and `_sqlx_migrations` belongs to each database's own schema history.
pub const DATA: [&str; 3] = ["user", "item", "jobs"];

/// `name` as a quoted SQL identifier (`"user"` is a reserved word in
/// Postgres). The names come from [`DATA`] or a database's own catalog.
pub fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
