//! Schema migrations, one folder per backend (`migrations/postgres`,
//! `migrations/sqlite`), embedded in the binaries at compile time.

use std::sync::LazyLock;

use sqlx::migrate::{MigrateError, Migrator};

use super::{Backend, Db, Pool};
use crate::with_pool;

static POSTGRES: LazyLock<Migrator> = LazyLock::new(|| tolerant(sqlx::migrate!("../../migrations/postgres")));
static SQLITE: LazyLock<Migrator> = LazyLock::new(|| tolerant(sqlx::migrate!("../../migrations/sqlite")));

/// A database migrated by a newer release must not stop a rollback to this
/// one: migrations stay backward compatible for one release, so versions this
/// binary does not know are tolerated.
fn tolerant(mut migrator: Migrator) -> Migrator {
    migrator.set_ignore_missing(true);
    migrator
}

fn migrator(backend: Backend) -> &'static Migrator {
    match backend {
        Backend::Postgres => &POSTGRES,
        Backend::Sqlite => &SQLITE,
    }
}

/// Where the database's schema stands relative to this binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Versions this binary knows and the database lacks.
    pub pending: Vec<i64>,
    /// Versions the database has and this binary does not know: a newer
    /// release migrated it. Migrations stay backward compatible for one
    /// release, so this binary keeps running (that is what makes rollback safe).
    pub newer: Vec<i64>,
}

impl Status {
    pub fn is_current(&self) -> bool {
        self.pending.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("the database schema is behind this binary (pending migrations {0:?}); run `api migrate`")]
    Behind(Vec<i64>),
    #[error("cannot read the migration state: {0}")]
    Read(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] MigrateError),
}

/// Applies every pending migration.
///
/// A database created by the FastAPI stack (its `alembic_version` table in
/// place) needs no special path: the baseline migration only creates what is
/// missing, so it is recorded as applied without touching existing rows.
pub async fn run(db: &Db) -> Result<(), SchemaError> {
    if table_exists(db, "alembic_version").await? && !table_exists(db, "_sqlx_migrations").await? {
        tracing::info!("adopting a database created by the FastAPI stack (alembic_version found); its rows are kept");
    }
    let migrator = migrator(db.backend());
    // Migrations lock and run on their own connection.
    match &*db.pool() {
        Pool::Postgres(pool) => migrator.run(pool).await?,
        Pool::Sqlite { pool, .. } => migrator.run(pool).await?,
    }
    Ok(())
}

pub async fn status(db: &Db) -> Result<Status, sqlx::Error> {
    let applied: Vec<i64> = if table_exists(db, "_sqlx_migrations").await? {
        with_pool!(db, |pool| sqlx::query_scalar(
            "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version"
        )
        .fetch_all(pool)
        .await)?
    } else {
        Vec::new()
    };
    let known: Vec<i64> = migrator(db.backend()).iter().map(|m| m.version).collect();
    Ok(Status {
        pending: known.iter().copied().filter(|v| !applied.contains(v)).collect(),
        newer: applied.iter().copied().filter(|v| !known.contains(v)).collect(),
    })
}

/// For processes that must not migrate (the worker, `MIGRATE_ON_START=false`,
/// a read-only file): refuse a schema that is behind.
pub async fn verify(db: &Db) -> Result<Status, SchemaError> {
    let status = status(db).await?;
    if !status.is_current() {
        return Err(SchemaError::Behind(status.pending));
    }
    if !status.newer.is_empty() {
        tracing::warn!(versions = ?status.newer, "the database has migrations newer than this binary");
    }
    Ok(status)
}

async fn table_exists(db: &Db, table: &str) -> Result<bool, sqlx::Error> {
    let sql = match db.backend() {
        Backend::Postgres => "SELECT to_regclass($1) IS NOT NULL",
        Backend::Sqlite => "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = $1)",
    };
    with_pool!(db, |pool| sqlx::query_scalar(sql).bind(table).fetch_one(pool).await)
}
