//! Whether the database is reachable. When it is not, sqlx retries refused
//! connections until the pool's acquire timeout, so every request would hang
//! for seconds and then fail. Instead, an acquire that takes longer than a
//! moment, or a statement that fails on the connection, starts a probe (a
//! ping on a connection kept between statements, else on the next one freed
//! or a fresh one, with a short timeout). If the probe fails, the database
//! is marked down:
//! waiting acquires are released and new ones fail at once, until a probe,
//! repeated every half second, succeeds again. Callers see `PoolTimedOut`
//! (the api answers 503).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::{Connection, PgConnection, SqliteConnection};
use tokio::sync::watch;

use super::{Conn, Db, Pool};

/// An acquire slower than this makes the database suspect.
const SUSPECT_AFTER: Duration = Duration::from_millis(250);
/// How long a probe may take to connect and answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause between probes while the database is down.
const PROBE_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug)]
pub(super) struct Health {
    down: watch::Sender<bool>,
    probing: AtomicBool,
}

impl Default for Health {
    fn default() -> Self {
        Self { down: watch::channel(false).0, probing: AtomicBool::new(false) }
    }
}

impl Health {
    pub(super) fn check(&self) -> Result<(), sqlx::Error> {
        if *self.down.borrow() { Err(sqlx::Error::PoolTimedOut) } else { Ok(()) }
    }

    /// Runs `work` (an acquire), suspecting the database if it is slow and
    /// giving up as soon as the database is found down.
    pub(super) async fn guard<T>(
        &self,
        db: &Db,
        work: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, sqlx::Error> {
        tokio::pin!(work);
        let mut down = self.down.subscribe();
        let slow = tokio::time::sleep(SUSPECT_AFTER);
        tokio::pin!(slow);
        let mut suspected = false;
        loop {
            tokio::select! {
                result = &mut work => return result,
                _ = down.wait_for(|down| *down) => return Err(sqlx::Error::PoolTimedOut),
                () = &mut slow, if !suspected => {
                    suspected = true;
                    self.suspect(db);
                }
            }
        }
    }

    /// Starts a probe unless one is running.
    pub(super) fn suspect(&self, db: &Db) {
        if self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let db = db.clone();
        tokio::spawn(async move {
            db.health.probe_until_reachable(&db).await;
        });
    }

    async fn probe_until_reachable(&self, db: &Db) {
        loop {
            match probe(db).await {
                Err(err) if is_unavailable(&err) => {
                    if !self.down.send_replace(true) {
                        tracing::warn!(error = %err, "the database is unreachable; failing fast until it is back");
                    }
                    tokio::time::sleep(PROBE_EVERY).await;
                }
                // Err: a refusal from the server itself (`max_connections`
                // reached, a role's connection limit) is an answer too: the
                // database is there, only busy.
                Ok(()) | Err(_) => {
                    if self.down.send_replace(false) {
                        tracing::info!("the database is reachable again");
                    }
                    break;
                }
            }
        }
        self.probing.store(false, Ordering::Release);
    }
}

/// Whether the database answers: first on a connection kept between
/// statements, or else on the next one a statement frees or a fresh one,
/// whichever comes first (a fresh one that fails at once decides it too);
/// when a kept one fails, on a fresh one. A pooled connection that answers
/// settles it, so the database is not declared down while it serves the
/// pool just because new connections fail or are slow for a moment (a name
/// lookup that stalls while containers come and go, `max_connections`
/// reached); a dead server or network breaks the pooled connections too.
async fn probe(db: &Db) -> Result<(), sqlx::Error> {
    let attempt = async {
        let freed = match db.spares.take_any() {
            Ok(spare) => {
                if answers(db, spare).await.is_ok() {
                    return Ok(());
                }
                None
            }
            Err(freed) => Some(freed),
        };
        let fresh = async {
            match &db.pool {
                Pool::Postgres(pool) => probe_pool::<PgConnection>(pool).await,
                Pool::Sqlite { pool, .. } => probe_pool::<SqliteConnection>(pool).await,
            }
        };
        match freed {
            Some(freed) => tokio::select! {
                // A closed queue (`Db::close`) leaves the fresh one.
                Ok(conn) = freed => answers(db, conn).await,
                fresh = fresh => fresh,
            },
            None => fresh.await,
        }
    };
    tokio::time::timeout(PROBE_TIMEOUT, attempt).await.unwrap_or(Err(sqlx::Error::PoolTimedOut))
}

/// Pings a connection taken from the spares: kept again when it answers,
/// closed when not.
async fn answers(db: &Db, mut conn: Conn) -> Result<(), sqlx::Error> {
    let pinged = conn.ping().await;
    if pinged.is_ok() {
        db.release(conn, true);
    } else {
        conn.close_on_drop();
    }
    pinged
}

async fn probe_pool<C: Connection>(pool: &sqlx::Pool<C::Database>) -> Result<(), sqlx::Error>
where
    C::Database: sqlx::Database<Connection = C>,
{
    if let Some(mut pooled) = pool.try_acquire() {
        if pooled.ping().await.is_ok() {
            return Ok(());
        }
        pooled.close_on_drop();
    }
    let mut fresh = C::connect_with(&pool.connect_options()).await?;
    fresh.ping().await?;
    fresh.close().await
}

/// Whether `err` says the database could not be reached (as opposed to a
/// statement it refused): I/O and TLS failures, an exhausted pool, a
/// protocol break, and Postgres' connection exceptions (class 08) and
/// shutdown states (57P01-57P03).
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            db.code().is_some_and(|code| code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03"))
        }
        _ => false,
    }
}
