//! Waking workers without busy polling. On Postgres an enqueue sends
//! `NOTIFY jobs_ready` inside its transaction (delivered only if it commits)
//! and workers `LISTEN`; a slow poll remains as the safety net for a lost
//! notification. SQLite has no cross-process notification, so workers poll
//! it often (an indexed query on a local file).

use std::time::Duration;

use sqlx::postgres::PgListener;

use crate::db::{Db, Pool, Tx};

pub const CHANNEL: &str = "jobs_ready";

/// Safety-net poll when notifications are available.
const POSTGRES_POLL: Duration = Duration::from_secs(10);
/// Poll interval on SQLite.
const SQLITE_POLL: Duration = Duration::from_millis(250);

pub async fn notify_on_commit(tx: &mut Tx) -> Result<(), sqlx::Error> {
    if let Tx::Postgres(tx) = tx {
        sqlx::query("SELECT pg_notify($1, '')").bind(CHANNEL).execute(&mut **tx).await?;
    }
    Ok(())
}

pub enum Waiter {
    Listen(Box<PgListener>),
    Poll(Duration),
}

impl Waiter {
    /// Listens on Postgres; falls back to polling if LISTEN cannot be set up.
    pub async fn new(db: &Db) -> Self {
        match &*db.pool() {
            Pool::Postgres(pool) => match listen(pool).await {
                Ok(listener) => Self::Listen(Box::new(listener)),
                Err(err) => {
                    tracing::warn!(error = %err, "cannot LISTEN for new jobs; polling instead");
                    Self::Poll(Duration::from_secs(1))
                }
            },
            Pool::Sqlite { .. } => Self::Poll(SQLITE_POLL),
        }
    }

    /// Returns when a job may be ready: a notification, or the poll interval.
    pub async fn wait(&mut self) {
        match self {
            Self::Poll(interval) => tokio::time::sleep(*interval).await,
            Self::Listen(listener) => {
                if let Ok(Err(err)) = tokio::time::timeout(POSTGRES_POLL, listener.recv()).await {
                    // PgListener reconnects on the next recv; do not spin meanwhile.
                    tracing::warn!(error = %err, "job notification listener failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// The listener holds a connection of its own, outside `pool`, with the
/// same options: it takes one when it reconnects (inside `recv`), and in
/// `pool` that could wait for connections the `Db` keeps between
/// statements.
async fn listen(pool: &sqlx::PgPool) -> Result<PgListener, sqlx::Error> {
    let own = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_lazy_with(sqlx::postgres::PgConnectOptions::clone(&pool.connect_options()));
    let mut listener = PgListener::connect_with(&own).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}
