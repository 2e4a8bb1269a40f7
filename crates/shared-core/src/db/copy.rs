//! `worker copy-to-postgres`: the rows of the data tables of a SQLite
//! database of this stack copied into a Postgres database migrated to the
//! same schema version, in one Postgres transaction: every row arrives and
//! the counts match before `COMMIT`, or nothing changes.
//!
//! Values travel as text through `COPY ... FROM STDIN`, so Postgres reads
//! each with the input function of its column's type: what the app writes
//! on SQLite (RFC 3339 TEXT timestamps, 0/1 booleans, JSON TEXT) becomes
//! timestamptz, boolean and jsonb with no code per column, and a migration
//! that adds a column to both backends needs no change here. The one value
//! SQLite holds in another form is the uuid (its 16 bytes, as sqlx binds a
//! `Uuid`), spelled out as uuid text; no column holds any other BLOB, so
//! one stops the copy. Columns are matched by name: one only the source has
//! stops the copy (Postgres names it), one only the target has gets its
//! default.

use std::path::Path;

use futures_util::TryStreamExt;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteRow};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Row, TypeInfo, ValueRef};
use uuid::Uuid;

use super::backup::{self, BackupError};
use super::tables::{self, quoted};
use crate::config::redact_url;

/// COPY data goes out in pieces of about this size, so memory stays small
/// however large the tables are.
const SEND_BYTES: usize = 1 << 20;

const VERSIONS: &str = "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version";

/// The cause is part of each message, as in [`super::DbError`].
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The source fails its integrity check, or is no SQLite file at all.
    #[error(transparent)]
    Source(#[from] BackupError),
    #[error("cannot read {file}: {reason}")]
    Read { file: String, reason: sqlx::Error },
    #[error("{0} has no \"user\" table: is it a database of this stack?")]
    NotThisStack(String),
    #[error("cannot connect to the target {url}: {reason}")]
    Connect { url: String, reason: sqlx::Error },
    #[error("the target has no schema yet: run `api migrate` with DATABASE_URL set to it first")]
    NoSchema,
    #[error(
        "the target lacks migration(s) {0:?} that the source has: run `api migrate` of the same release against it first"
    )]
    MissingMigrations(Vec<i64>),
    #[error("the target already has rows ({0}); give --replace to empty these tables first, or use a fresh database")]
    NotEmpty(String),
    #[error("{table}.{column} of {file}: {reason}; nothing was committed, the target is unchanged")]
    Value { file: String, table: String, column: String, reason: String },
    #[error(
        "{table}: {found} rows in the target after the copy, {expected} in the source; nothing was committed, the target is unchanged"
    )]
    Count { table: String, expected: i64, found: i64 },
    #[error("{step} failed; nothing was committed, the target is unchanged: {reason}")]
    Target { step: String, reason: sqlx::Error },
}

/// Copies every data table `file` has into the database at `target_url`;
/// with `replace`, the target's data tables are emptied first (in the same
/// transaction), otherwise a target holding rows is refused. Returns the
/// rows copied per table, parents first.
///
/// `file` is opened read-only (not `immutable`: the WAL of a live file is
/// part of its content) and read in one read transaction, so the copy is
/// one consistent snapshot; anything written after it starts is not copied.
pub async fn sqlite_to_postgres(file: &Path, target_url: &str, replace: bool) -> Result<Vec<(String, i64)>, CopyError> {
    let shown = file.display().to_string();
    let read_err = |reason| CopyError::Read { file: shown.clone(), reason };
    let options = SqliteConnectOptions::new().filename(file).read_only(true);
    let mut source = options.connect().await.map_err(read_err)?;
    let mut read = source.begin().await.map_err(read_err)?;
    let counts = backup::checked_row_counts(&mut read, file).await?;
    if !counts.iter().any(|(table, _)| table == "user") {
        return Err(CopyError::NotThisStack(shown));
    }
    let versions: Vec<i64> = sqlx::query_scalar(VERSIONS).fetch_all(&mut *read).await.map_err(read_err)?;

    let mut target = PgConnection::connect(target_url)
        .await
        .map_err(|reason| CopyError::Connect { url: redact_url(target_url), reason })?;
    check_schema(&mut target, &versions).await?;

    let mut write = target.begin().await.map_err(step("beginning the transaction"))?;
    // A timestamp written without an offset is read as UTC.
    sqlx::query("SET LOCAL TIME ZONE 'UTC'").execute(&mut *write).await.map_err(step("SET TIME ZONE"))?;
    empty_target(&mut write, replace).await?;
    for (table, expected) in &counts {
        copy_table(&mut read, &mut write, &shown, table).await?;
        let found = count(&mut write, table).await.map_err(step(format!("counting {table}")))?;
        if found != *expected {
            return Err(CopyError::Count { table: table.clone(), expected: *expected, found });
        }
    }
    let copied: Vec<String> = counts.iter().map(|(table, _)| quoted(table)).collect();
    let analyze = format!("ANALYZE {}", copied.join(", "));
    sqlx::query(AssertSqlSafe(analyze)).execute(&mut *write).await.map_err(step("ANALYZE"))?;
    write.commit().await.map_err(step("COMMIT"))?;
    Ok(counts)
}

/// The target must be migrated, with every version the source has (both
/// migration folders number their versions alike).
async fn check_schema(target: &mut PgConnection, source_versions: &[i64]) -> Result<(), CopyError> {
    let migrated: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut *target)
        .await
        .map_err(step("reading the target's schema"))?;
    if !migrated {
        return Err(CopyError::NoSchema);
    }
    let applied: Vec<i64> =
        sqlx::query_scalar(VERSIONS).fetch_all(&mut *target).await.map_err(step("reading the target's migrations"))?;
    let missing: Vec<i64> = source_versions.iter().copied().filter(|v| !applied.contains(v)).collect();
    if missing.is_empty() { Ok(()) } else { Err(CopyError::MissingMigrations(missing)) }
}

/// Empties the target's data tables (`replace`), or refuses any rows there.
async fn empty_target(write: &mut PgConnection, replace: bool) -> Result<(), CopyError> {
    let present: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM unnest($1::text[]) AS name WHERE to_regclass(quote_ident(name)) IS NOT NULL",
    )
    .bind(tables::DATA.as_slice())
    .fetch_all(&mut *write)
    .await
    .map_err(step("listing the target's tables"))?;
    if replace {
        // All at once and without CASCADE: a table this list does not know
        // that references "user" makes the copy fail instead of being emptied.
        let list: Vec<String> = present.iter().map(|table| quoted(table)).collect();
        let truncate = format!("TRUNCATE {}", list.join(", "));
        sqlx::query(AssertSqlSafe(truncate)).execute(&mut *write).await.map_err(step("TRUNCATE"))?;
        return Ok(());
    }
    let mut filled = Vec::new();
    for table in &present {
        let rows = count(write, table).await.map_err(step(format!("counting {table}")))?;
        if rows > 0 {
            filled.push(format!("{table}={rows}"));
        }
    }
    if filled.is_empty() { Ok(()) } else { Err(CopyError::NotEmpty(filled.join(" "))) }
}

/// Streams `table` from the source's read transaction into the target's
/// write transaction with one `COPY`.
async fn copy_table(
    read: &mut SqliteConnection,
    write: &mut PgConnection,
    file: &str,
    table: &str,
) -> Result<(), CopyError> {
    let read_err = |reason| CopyError::Read { file: file.to_owned(), reason };
    let columns: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info($1) ORDER BY cid")
        .bind(table)
        .fetch_all(&mut *read)
        .await
        .map_err(read_err)?;
    let list = columns.iter().map(|column| quoted(column)).collect::<Vec<_>>().join(", ");
    let loading = || step(format!("loading {table}"));
    let mut copy = write.copy_in_raw(&format!("COPY {} ({list}) FROM STDIN", quoted(table))).await.map_err(loading())?;
    let mut rows = sqlx::query(AssertSqlSafe(format!("SELECT {list} FROM {}", quoted(table)))).fetch(&mut *read);
    let mut data = String::new();
    while let Some(row) = rows.try_next().await.map_err(read_err)? {
        for (i, column) in columns.iter().enumerate() {
            if i > 0 {
                data.push('\t');
            }
            write_value(&mut data, &row, i).map_err(|reason| CopyError::Value {
                file: file.to_owned(),
                table: table.to_owned(),
                column: column.clone(),
                reason,
            })?;
        }
        data.push('\n');
        if data.len() >= SEND_BYTES {
            copy.send(data.as_bytes()).await.map_err(loading())?;
            data.clear();
        }
    }
    copy.send(data.as_bytes()).await.map_err(loading())?;
    copy.finish().await.map_err(loading())?;
    Ok(())
}

/// Column `i` of `row` in COPY's text format: `\N` for NULL, and the
/// backslash, newline, carriage return and tab escaped.
fn write_value(out: &mut String, row: &SqliteRow, i: usize) -> Result<(), String> {
    let text = |err: sqlx::Error| err.to_string();
    let value = row.try_get_raw(i).map_err(text)?;
    if value.is_null() {
        out.push_str("\\N");
        return Ok(());
    }
    match value.type_info().name() {
        "INTEGER" => out.push_str(&row.try_get::<i64, _>(i).map_err(text)?.to_string()),
        "REAL" => out.push_str(&row.try_get::<f64, _>(i).map_err(text)?.to_string()),
        "BLOB" => {
            let bytes: Vec<u8> = row.try_get(i).map_err(text)?;
            let uuid = Uuid::from_slice(&bytes).map_err(|_| format!("a {}-byte BLOB, not a uuid", bytes.len()))?;
            out.push_str(&uuid.to_string());
        }
        _ => escape(out, row.try_get(i).map_err(text)?),
    }
    Ok(())
}

fn escape(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
}

async fn count(conn: &mut PgConnection, table: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(tables::count_sql(table)).fetch_one(conn).await
}

fn step(step: impl Into<String>) -> impl Fn(sqlx::Error) -> CopyError {
    let step = step.into();
    move |reason| CopyError::Target { step: step.clone(), reason }
}
