//! The database handle: a Postgres or a SQLite pool, chosen at run time by the
//! URL scheme.
//!
//! `sqlx::Any` cannot carry uuid or timestamp types, so instead of a type-erased
//! pool we keep the two concrete pools and write each query once, expanded for
//! both by [`with_pool!`]. Both backends accept `$1` placeholders, so the SQL
//! text is usually shared too; where the dialects differ the two statements
//! stand side by side in a `match` on [`Backend`].

pub mod backup;
pub mod copy;
mod health;
pub mod items;
pub mod jobs;
pub mod migrate;
pub mod tables;
pub mod users;
pub mod workers;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, Postgres};
use sqlx::sqlite::{Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, SqlSafeStr, Transaction};

use crate::config::{DatabaseSettings, redact_url};
pub use health::is_unavailable;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
        }
    }
}

/// The pools, by backend.
#[derive(Debug, Clone)]
pub enum Pool {
    Postgres(PgPool),
    Sqlite { pool: SqlitePool, read_only: bool },
}

/// A database handle: its pool and whether the database is reachable
/// ([`health`]). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Db {
    pool: Pool,
    health: Arc<health::Health>,
    /// SQLite: whose turn it is to write (see [`Db::sqlite_turn`]).
    writes: Arc<tokio::sync::Mutex<()>>,
    spares: Arc<Spares>,
}

/// Connections between two statements, kept checked out of sqlx's pool.
/// sqlx tests a connection every time it goes back to its pool, in a task
/// spawned for it: a round trip to the database (on SQLite, to the
/// connection's thread) after every statement, as many as the statements
/// themselves. A connection whose statement succeeded is handed to the
/// first statement waiting for one, or else kept here for the next, newest
/// first. The others still pass through sqlx's pool and its test:
/// - one unused for [`PING_IF_IDLE_FOR`];
/// - every spare once every [`SPARES_CYCLE`], so that the pool's lifetime
///   limits still apply to connections that are never idle;
/// - every one freed while something uses sqlx's pool directly
///   ([`InPool`]), so that it gets the next one.
#[derive(Debug, Default)]
struct Spares(std::sync::Mutex<Kept>);

/// How often every spare goes back through sqlx's pool.
const SPARES_CYCLE: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
struct Kept {
    /// Oldest first.
    conns: Vec<(Conn, Instant)>,
    /// Statements that found no spare, and the health probe, first come
    /// first served. Each statement also waits in sqlx's pool (for a
    /// connection freed by a transaction, or a new one) and takes whichever
    /// comes first.
    waiters: std::collections::VecDeque<tokio::sync::oneshot::Sender<Conn>>,
    /// Using sqlx's pool itself ([`InPool`]).
    in_pool: usize,
    /// When the spares last all went back to sqlx's pool.
    cycled: Option<Instant>,
    /// Set by [`Db::close`]: sqlx's `close` waits for every connection
    /// checked out, so none may be kept after it.
    closed: bool,
}

impl Kept {
    /// A place at the end of the queue for the next connection freed.
    fn queue(&mut self) -> tokio::sync::oneshot::Receiver<Conn> {
        // Those that got theirs from sqlx's pool meanwhile, or gave up:
        // nothing else takes them out while no statement succeeds.
        self.waiters.retain(|waiter| !waiter.is_closed());
        let (hand_over, handed) = tokio::sync::oneshot::channel();
        self.waiters.push_back(hand_over);
        handed
    }
}

/// A user of sqlx's pool itself ([`Db::pool`]'s guard), counted until it
/// is done with it. While any, freed connections go back to sqlx's pool, so
/// that it gets one even if the pool is full by the time it asks.
struct InPool<'a>(&'a Spares);

impl Drop for InPool<'_> {
    fn drop(&mut self) {
        self.0.lock().in_pool -= 1;
    }
}

/// How a statement that found no spare waits for a connection: for the
/// next one another statement frees, and in sqlx's pool beside it (for one
/// a transaction frees, or a new one), whichever comes first.
struct Wait {
    handed: tokio::sync::oneshot::Receiver<Conn>,
    /// sqlx's pool would open a connection for this wait (or take one
    /// idle in it).
    opens: bool,
}

impl Spares {
    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The newest spare, or else a place in the queue for the next one
    /// freed. Both under one lock with [`Spares::put`]: a connection is
    /// never kept while a statement waits for one.
    fn take(&self, pool_full: bool) -> Result<Conn, Wait> {
        let now = Instant::now();
        let mut kept = self.lock();
        let fresh = kept.conns.partition_point(|(_, since)| now.duration_since(*since) >= PING_IF_IDLE_FOR);
        // Dropped outside the lock: each drop spawns sqlx's return task.
        let stale: Vec<_> = kept.conns.drain(..fresh).collect();
        let taken = match kept.conns.pop() {
            Some((conn, _)) => Ok(conn),
            None => Err(Wait { handed: kept.queue(), opens: !pool_full }),
        };
        drop(kept);
        drop(stale);
        taken
    }

    /// The newest spare however long it has been idle, or else a place in
    /// the queue for the next one freed, for the health probe.
    fn take_any(&self) -> Result<Conn, tokio::sync::oneshot::Receiver<Conn>> {
        let mut kept = self.lock();
        match kept.conns.pop() {
            Some((conn, _)) => Ok(conn),
            None => Err(kept.queue()),
        }
    }

    fn put(&self, mut conn: Conn) {
        let now = Instant::now();
        let mut kept = self.lock();
        if kept.closed || kept.in_pool > 0 {
            drop(kept);
            drop(conn);
            return;
        }
        // Before the waiters: under steady load there always are some, and
        // they wait in sqlx's pool too.
        let cycled = *kept.cycled.get_or_insert(now);
        if now.duration_since(cycled) >= SPARES_CYCLE {
            kept.cycled = Some(now);
            let conns = std::mem::take(&mut kept.conns);
            drop(kept);
            drop((conn, conns));
            return;
        }
        // A waiter gone (it got a connection from sqlx's pool, or gave up)
        // hands it back.
        while let Some(waiter) = kept.waiters.pop_front() {
            match waiter.send(conn) {
                Ok(()) => return,
                Err(back) => conn = back,
            }
        }
        kept.conns.push((conn, now));
    }

    /// Every spare back to sqlx's pool, and the caller counted as using it
    /// until the guard drops.
    fn give_back_all(&self) -> InPool<'_> {
        let mut kept = self.lock();
        kept.in_pool += 1;
        let conns = std::mem::take(&mut kept.conns);
        drop(kept);
        drop(conns);
        InPool(self)
    }

    fn close(&self) {
        let mut kept = self.lock();
        kept.closed = true;
        let conns = std::mem::take(&mut kept.conns);
        let waiters = std::mem::take(&mut kept.waiters);
        drop(kept);
        drop((conns, waiters));
    }

    fn len(&self) -> usize {
        self.lock().conns.len()
    }
}

/// The pools, for what takes its connections from them itself: while it
/// lasts, the spares go back to sqlx's pool instead of being kept.
pub struct PoolInUse<'a> {
    pool: &'a Pool,
    _using: InPool<'a>,
}

impl std::ops::Deref for PoolInUse<'_> {
    type Target = Pool;

    fn deref(&self) -> &Pool {
        self.pool
    }
}

/// A writer's turn on SQLite, held until its statement or transaction ends.
pub type WriteTurn = tokio::sync::OwnedMutexGuard<()>;

/// A connection taken from the pool for one statement.
#[derive(Debug)]
pub enum Conn {
    Postgres(PoolConnection<Postgres>),
    Sqlite(PoolConnection<Sqlite>),
}

impl Conn {
    async fn ping(&mut self) -> Result<(), sqlx::Error> {
        match self {
            Self::Postgres(conn) => conn.ping().await,
            Self::Sqlite(conn) => conn.ping().await,
        }
    }

    /// Closed when dropped, without sqlx's test first.
    fn close_on_drop(&mut self) {
        match self {
            Self::Postgres(conn) => conn.close_on_drop(),
            Self::Sqlite(conn) => conn.close_on_drop(),
        }
    }
}

/// Runs one statement against a connection of `db`'s pool; the body is
/// compiled once per backend, so it may use anything both drivers
/// implement, and must return a `Result<_, sqlx::Error>`. The connection
/// comes through [`Db::acquire`], so while the database is unreachable the
/// statement fails at once instead of waiting out the pool's timeout; after
/// a statement that succeeded it is kept for the next one (`Spares`).
#[macro_export]
macro_rules! with_pool {
    ($db:expr, |$pool:ident| $body:expr) => {{
        let db: &$crate::db::Db = &$db;
        match db.acquire().await {
            Err(err) => Err(err),
            Ok(mut conn) => {
                let result = match &mut conn {
                    $crate::db::Conn::Postgres(conn) => {
                        let $pool = &mut **conn;
                        $body
                    }
                    $crate::db::Conn::Sqlite(conn) => {
                        let $pool = &mut **conn;
                        $body
                    }
                };
                db.observe(&result);
                db.release(conn, result.is_ok());
                result
            }
        }
    }};
}

/// [`with_pool!`] for a statement that writes: on SQLite it first waits
/// for the process's turn to write ([`Db::write_turn`]).
#[macro_export]
macro_rules! with_writer {
    ($db:expr, |$pool:ident| $body:expr) => {{
        let db: &$crate::db::Db = &$db;
        match db.write_turn().await {
            Err(err) => Err(err),
            Ok(_turn) => $crate::with_pool!(db, |$pool| $body),
        }
    }};
}

/// The row a single-row write with `RETURNING` gave back, from its rows
/// read to the end (`fetch_all`). SQLite commits an autocommit statement when
/// it finishes; one stopped after its first row (`fetch_one`,
/// `fetch_optional`) commits when it is reset instead, and there SQLite does
/// not call the WAL hook, so the automatic checkpoint never runs and the
/// `-wal` file grows without bound (measured: 39 MB after 3,000 inserts,
/// against 4 MB with the rows read to the end; docs/benchmarks.md).
pub fn returned<T>(rows: Vec<T>) -> Option<T> {
    rows.into_iter().next()
}

/// A transaction that will write.
pub enum Tx {
    Postgres(Transaction<'static, Postgres>),
    /// The turn is released after the transaction ends (fields drop in order).
    Sqlite(Transaction<'static, Sqlite>, Option<WriteTurn>),
}

/// Runs one body against the connection of a [`Tx`], like [`with_pool!`].
#[macro_export]
macro_rules! with_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match $tx {
            $crate::db::Tx::Postgres(tx) => {
                let $conn = &mut **tx;
                $body
            }
            $crate::db::Tx::Sqlite(tx, _) => {
                let $conn = &mut **tx;
                $body
            }
        }
    };
}

impl Tx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Self::Postgres(tx) => tx.commit().await,
            Self::Sqlite(tx, _turn) => tx.commit().await,
        }
    }
}

/// The cause is part of each message (not a separate `source`), so an error
/// chain printed with its causes says it once.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("DATABASE_URL {url} is not valid: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot create the directory {dir} for the SQLite database: {reason}")]
    CreateDir { dir: String, reason: String },
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
}

/// SQLite waits this long for the single write lock before giving up; long
/// enough that contention between the api and the worker never surfaces as
/// "database is locked".
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Rows a SQLite connection's thread may hand over before the request has
/// taken them: a whole page (`limit` is at most 1,000), so the thread never
/// stops mid-page to wait for the request (sqlx's default is 50).
const SQLITE_ROW_BUFFER: usize = 1_024;

/// A connection idle at least this long is pinged before it is handed out.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// sqlx's default tests every connection before handing it out: a round
/// trip (on SQLite, a hop to the connection's thread and back) before every
/// statement, doubling the round trips of a request. Under load a
/// connection is idle for moments, and one that breaks then fails its
/// statement, which the health gate sees (`observe`); the ping is kept for
/// connections that sat idle, which is when a database restart or an idle
/// timeout on the way leaves them dead, so they are replaced unseen.
fn ping_if_idle<C: Connection>(
    conn: &mut C,
    meta: sqlx::pool::PoolConnectionMetadata,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, sqlx::Error>> + Send + '_>> {
    Box::pin(async move {
        if meta.idle_for >= PING_IF_IDLE_FOR {
            conn.ping().await?;
        }
        Ok(true)
    })
}

impl Db {
    pub async fn connect(settings: &DatabaseSettings) -> Result<Self, DbError> {
        let url = settings.url.expose();
        let shown = redact_url(url);
        if url.starts_with("sqlite:") {
            let read_only = sqlite_url_is_read_only(url);
            let mut options = SqliteConnectOptions::from_str(url)
                .map_err(|err| DbError::InvalidUrl { url: shown.clone(), reason: err.to_string() })?
                .foreign_keys(true)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .synchronous(SqliteSynchronous::Normal)
                .row_buffer_size(SQLITE_ROW_BUFFER);
            if !read_only {
                // WAL lets readers run beside the one writer. It is a property
                // of the file, so a read-only opener must not try to set it.
                options = options.journal_mode(SqliteJournalMode::Wal).create_if_missing(true);
                create_parent_dir(options.get_filename())?;
            }
            let pool = SqlitePoolOptions::new()
                .max_connections(settings.pool_size)
                .acquire_timeout(settings.acquire_timeout)
                .test_before_acquire(false)
                .before_acquire(ping_if_idle)
                .connect_with(options)
                .await
                .map_err(|err| DbError::Connect { url: shown, reason: err.to_string() })?;
            Ok(Self::new(Pool::Sqlite { pool, read_only }))
        } else {
            let options = PgConnectOptions::from_str(url)
                .map_err(|err| DbError::InvalidUrl { url: shown.clone(), reason: err.to_string() })?;
            let pool = PgPoolOptions::new()
                .max_connections(settings.pool_size)
                .acquire_timeout(settings.acquire_timeout)
                .test_before_acquire(false)
                .before_acquire(ping_if_idle)
                .connect_with(options.clone())
                .await;
            match pool {
                Ok(pool) => Ok(Self::new(Pool::Postgres(pool))),
                Err(err) => Err(DbError::Connect {
                    url: shown,
                    reason: postgres_connect_failure(err, &options, settings.acquire_timeout).await,
                }),
            }
        }
    }

    /// A handle on an existing pool.
    pub fn new(pool: Pool) -> Self {
        Self { pool, health: Arc::default(), writes: Arc::default(), spares: Arc::default() }
    }

    /// The pools, for what takes its connections from them itself
    /// (migrations, a backup, the job listener): the spare connections go
    /// back first, and the connections freed while the returned guard lives
    /// too, so that such an acquire does not wait out the pool's timeout
    /// for connections this handle keeps between statements.
    pub fn pool(&self) -> PoolInUse<'_> {
        PoolInUse { pool: &self.pool, _using: self.spares.give_back_all() }
    }

    /// A connection for one statement. While the database is known to be
    /// unreachable this fails at once; a wait longer than a moment starts a
    /// probe, and if the probe finds the database gone every waiter fails
    /// at once too. Either way the error is `PoolTimedOut`, which the api
    /// answers 503.
    pub async fn acquire(&self) -> Result<Conn, sqlx::Error> {
        self.health.check()?;
        match self.spares.take(self.pool_is_full()) {
            Ok(spare) => Ok(spare),
            // Boxed: sqlx's acquire future (kilobytes) would otherwise be
            // part of every statement's future, and copied with it each
            // time that future moves, spare or not.
            Err(wait) => Box::pin(self.acquire_from_pool(wait)).await,
        }
    }

    async fn acquire_from_pool(&self, Wait { handed, opens }: Wait) -> Result<Conn, sqlx::Error> {
        let from_pool = if opens {
            futures_util::future::Either::Left(self.open_for_the_next_waiter())
        } else {
            futures_util::future::Either::Right(self.pool_acquire())
        };
        let acquired = self.health.guard(self, async {
            tokio::select! {
                // A closed queue (`Db::close`) leaves the wait in the pool.
                Ok(conn) = handed => Ok(conn),
                conn = from_pool => conn,
            }
        });
        let acquired = acquired.await;
        self.observe(&acquired);
        acquired
    }

    async fn pool_acquire(&self) -> Result<Conn, sqlx::Error> {
        match &self.pool {
            Pool::Postgres(pool) => pool.acquire().await.map(Conn::Postgres),
            Pool::Sqlite { pool, .. } => pool.acquire().await.map(Conn::Sqlite),
        }
    }

    /// sqlx's acquire when it would open a connection, in a task of its own.
    /// Opening one can take seconds (a name lookup that stalls while
    /// containers come and go: 10 s seen under podman), and sqlx's acquire
    /// waits for that connection alone, failing at its timeout while other
    /// statements free theirs. So the statement takes whichever comes first
    /// (an opening that fails at once included), and a connection opened
    /// after it was served is not thrown away half open (that would happen
    /// again at every wait) but given back like any other
    /// ([`Spares::put`]).
    fn open_for_the_next_waiter(&self) -> impl std::future::Future<Output = Result<Conn, sqlx::Error>> + use<> {
        let (opened, receiver) = tokio::sync::oneshot::channel();
        let db = self.clone();
        tokio::spawn(async move {
            if let Err(Ok(conn)) = opened.send(db.pool_acquire().await) {
                db.spares.put(conn);
            }
        });
        async move { receiver.await.unwrap_or(Err(sqlx::Error::WorkerCrashed)) }
    }

    /// Notes what a statement's outcome says about reachability.
    pub fn observe<T>(&self, result: &Result<T, sqlx::Error>) {
        if let Err(err) = result
            && is_unavailable(err)
        {
            self.health.suspect(self);
        }
    }

    /// Whether the database answered the last probe (true until one fails).
    pub fn is_reachable(&self) -> bool {
        self.health.check().is_ok()
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Postgres(_) => Backend::Postgres,
            Pool::Sqlite { .. } => Backend::Sqlite,
        }
    }

    /// A SQLite file opened with `?mode=ro`: migrations and start-up writes are
    /// skipped, and the schema is only verified.
    pub fn is_read_only(&self) -> bool {
        matches!(self.pool, Pool::Sqlite { read_only: true, .. })
    }

    /// Begins a transaction that will write. On SQLite it waits for this
    /// process's turn ([`Db::sqlite_turn`]) and then takes the write lock up
    /// front (`BEGIN IMMEDIATE`): a deferred transaction that reads first and
    /// writes later can fail with "database is locked" without waiting,
    /// because SQLite cannot upgrade its lock while another writer holds one;
    /// taking it first makes it wait for another process's writer
    /// (busy_timeout).
    pub async fn begin_write(&self) -> Result<Tx, sqlx::Error> {
        // The turn is waited for before a connection is taken: a queue of
        // writers holds no connections and is not a slow database. The
        // connection may be a spare: one waited for in sqlx's pool could
        // wait as long as statements keep the spares busy.
        self.health.check()?;
        let turn = self.write_turn().await?;
        let begun = match self.acquire().await? {
            Conn::Postgres(conn) => self.health.guard(self, Transaction::begin(conn, None)).await.map(Tx::Postgres),
            Conn::Sqlite(conn) => {
                let immediate = Some("BEGIN IMMEDIATE".into_sql_str());
                self.health.guard(self, Transaction::begin(conn, immediate)).await.map(|tx| Tx::Sqlite(tx, turn))
            }
        };
        self.observe(&begun);
        begun
    }

    /// The turn a statement that writes waits for: on SQLite, this
    /// process's turn ([`Db::sqlite_turn`]); Postgres has row locks and
    /// needs none.
    pub async fn write_turn(&self) -> Result<Option<WriteTurn>, sqlx::Error> {
        match &self.pool {
            Pool::Postgres(_) => Ok(None),
            Pool::Sqlite { .. } => self.sqlite_turn().await.map(Some),
        }
    }

    /// Waits for this process's turn to write to the SQLite file, in arrival
    /// order. Without it the pool's connections meet the file's single write
    /// lock, and a writer that finds it taken sleeps in SQLite's busy
    /// handler (1, 2, 5, 10 ... ms between tries) however soon the lock is
    /// free: a POST p99 of 44-57 ms at a 2.3 ms median with 16 clients
    /// (docs/benchmarks.md). Waiting here is bounded like the lock itself.
    async fn sqlite_turn(&self) -> Result<WriteTurn, sqlx::Error> {
        tokio::time::timeout(SQLITE_BUSY_TIMEOUT, self.writes.clone().lock_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        with_pool!(self, |pool| sqlx::query("SELECT 1").execute(pool).await.map(drop))
    }

    /// Whether sqlx's pool holds as many connections as it may open, none
    /// of them idle in it: then a wait there opens no connection and tests
    /// none, and can be given up for a connection handed over without
    /// throwing either away half done.
    fn pool_is_full(&self) -> bool {
        match &self.pool {
            Pool::Postgres(pool) => pool.size() >= pool.options().get_max_connections() && pool.num_idle() == 0,
            Pool::Sqlite { pool, .. } => pool.size() >= pool.options().get_max_connections() && pool.num_idle() == 0,
        }
    }

    /// (connections open, of which idle: in sqlx's pool or kept as spares)
    /// for the pool gauges.
    pub fn pool_usage(&self) -> (u32, usize) {
        let (open, idle) = match &self.pool {
            Pool::Postgres(pool) => (pool.size(), pool.num_idle()),
            Pool::Sqlite { pool, .. } => (pool.size(), pool.num_idle()),
        };
        (open, idle + self.spares.len())
    }

    /// Gives a connection back after its statement: to the next statement
    /// when it succeeded ([`Spares`]), else back to sqlx's pool, whose test
    /// closes it if it is broken.
    pub fn release(&self, conn: Conn, succeeded: bool) {
        if succeeded {
            self.spares.put(conn);
        }
    }

    pub async fn close(&self) {
        self.spares.close();
        match &self.pool {
            Pool::Postgres(pool) => pool.close().await,
            Pool::Sqlite { pool, .. } => pool.close().await,
        }
    }
}

/// Why Postgres could not be reached, naming the address. sqlx retries a
/// refused connection until the acquire timeout and then says only "pool
/// timed out"; one more direct attempt finds the cause.
async fn postgres_connect_failure(err: sqlx::Error, options: &PgConnectOptions, timeout: Duration) -> String {
    let addr = format!("{}:{}", options.get_host(), options.get_port());
    let err = match err {
        sqlx::Error::PoolTimedOut => match tokio::time::timeout(timeout, options.connect()).await {
            Ok(Err(err)) => err,
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
                return format!("{addr} did not accept a connection within {}s (it does now)", timeout.as_secs());
            }
            Err(_) => return format!("no answer from {addr} within {}s", timeout.as_secs()),
        },
        other => other,
    };
    match err {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            format!("connection refused at {addr}")
        }
        sqlx::Error::Io(io) => format!("{io} ({addr})"),
        other => format!("{other} ({addr})"),
    }
}

fn sqlite_url_is_read_only(url: &str) -> bool {
    url.split_once('?').is_some_and(|(_, query)| {
        query.split('&').any(|pair| pair == "mode=ro" || pair == "immutable=true" || pair == "immutable=1")
    })
}

fn create_parent_dir(file: &Path) -> Result<(), DbError> {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && file != Path::new(":memory:") => std::fs::create_dir_all(dir)
            .map_err(|err| DbError::CreateDir { dir: dir.display().to_string(), reason: err.to_string() }),
        _ => Ok(()),
    }
}
