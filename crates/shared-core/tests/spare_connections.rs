//! The connections `Db` keeps between statements (`Spares` in `db/mod.rs`)
//! instead of handing them back to sqlx's pool, which tests each one it gets
//! back with a round trip. With a pool of one connection kept as a spare,
//! everything that needs a connection still gets it at once, on both
//! backends: a transaction, the migrations (which acquire on their own), and
//! shutdown (sqlx's `close` waits for every connection checked out). A spare
//! left unused past the idle threshold goes back through sqlx's test, so a
//! connection that died meanwhile is replaced, not used. A statement that
//! waits in sqlx's pool gets the next connection freed, also while a new one
//! is slow to open, and so does a direct user of the pool while statements
//! keep coming.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::{Duration, Instant};

use shared_core::config::{DatabaseSettings, Secret};
use shared_core::db::{Backend, Db, Pool, migrate};
use shared_core::{on_both_backends, with_pool, with_tx};
use sqlx::{Connection, PgConnection};

fn admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

async fn admin(sql: String) {
    let mut conn = PgConnection::connect(&admin_url()).await.expect("Postgres at TEST_POSTGRES_URL");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap();
    conn.close().await.ok();
}

/// A fresh database of one connection, and what removes it afterwards.
struct OneConnection {
    db: Db,
    postgres_database: Option<String>,
    _dir: tempfile::TempDir,
}

impl OneConnection {
    async fn open(backend: Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (url, postgres_database) = if backend == Backend::Postgres {
            let name = format!("spares_{}", uuid::Uuid::new_v4().simple());
            admin(format!("CREATE DATABASE {name}")).await;
            let base = admin_url();
            let (server, _) = base.rsplit_once('/').unwrap();
            (format!("{server}/{name}"), Some(name))
        } else {
            (format!("sqlite:{}", dir.path().join("app.db").display()), None)
        };
        let settings =
            DatabaseSettings { url: Secret::new(url), pool_size: 1, acquire_timeout: Duration::from_secs(3) };
        let db = Db::connect(&settings).await.unwrap();
        Self { db, postgres_database, _dir: dir }
    }

    /// Closes the pool, which waits for every connection checked out: a
    /// spare kept past it would make it wait forever.
    async fn close_and_remove(self) {
        tokio::time::timeout(PROMPTLY, self.db.close()).await.expect("closing waited for the spare");
        if let Some(name) = self.postgres_database {
            admin(format!("DROP DATABASE {name} WITH (FORCE)")).await;
        }
    }
}

async fn select_one(db: &Db) -> Result<i32, sqlx::Error> {
    with_pool!(db, |conn| sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(conn).await)
}

/// Keeps a connection busy for `seconds` (Postgres).
async fn pg_sleep(db: &Db, seconds: f64) -> Result<(), sqlx::Error> {
    with_pool!(db, |conn| sqlx::query("SELECT pg_sleep($1)").bind(seconds).execute(conn).await.map(drop))
}

/// Everything below must finish well within the pool's 3 s acquire timeout:
/// a wait for the spare connection would fail with `PoolTimedOut` or hang.
const PROMPTLY: Duration = Duration::from_secs(2);

/// Sooner than the health gate's 250 ms after which a slow acquire starts a
/// probe, and the probe, pinging the spare, would hand it on by the way.
const AT_ONCE: Duration = Duration::from_millis(200);

async fn the_only_connection_kept_as_a_spare_still_serves_every_user(backend: Backend) {
    let one = OneConnection::open(backend).await;
    let db = &one.db;
    assert_eq!(select_one(db).await.unwrap(), 1);

    let tx = async {
        let mut tx = db.begin_write().await?;
        let one = with_tx!(&mut tx, |conn| sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(conn).await)?;
        tx.commit().await.map(|()| one)
    };
    assert_eq!(tokio::time::timeout(AT_ONCE, tx).await.expect("a transaction waited").unwrap(), 1);

    assert_eq!(select_one(db).await.unwrap(), 1);
    tokio::time::timeout(PROMPTLY, migrate::run(db)).await.expect("the migrations waited").unwrap();

    assert_eq!(select_one(db).await.unwrap(), 1);
    one.close_and_remove().await;
}

on_both_backends!(the_only_connection_kept_as_a_spare_still_serves_every_user);

/// A statement that came while the only connection was busy waits for it;
/// the connection is handed to it when the busy statement ends, instead of
/// being kept as a spare that no one asks for.
async fn a_statement_waiting_for_the_busy_connection_gets_it_next(backend: Backend) {
    let one = OneConnection::open(backend).await;
    let db = &one.db;
    let busy = async {
        let done = if backend == Backend::Postgres {
            pg_sleep(db, 0.5).await
        } else {
            // SQLite has no sleep: a count it takes a moment to make.
            let count = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000000) \
                         SELECT count(*) FROM n";
            with_pool!(db, |conn| sqlx::query(count).execute(conn).await.map(drop))
        };
        (done, Instant::now())
    };
    let waiting = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let done = tokio::time::timeout(PROMPTLY + Duration::from_secs(2), select_one(db)).await;
        (done, Instant::now())
    };
    let ((busy, busy_ended), (waited, waited_ended)) = tokio::join!(busy, waiting);
    busy.unwrap();
    assert_eq!(waited.expect("the waiting statement timed out").unwrap(), 1);
    let after = waited_ended.duration_since(busy_ended);
    assert!(after < AT_ONCE, "the waiting statement ran {after:?} after the busy one ended");
    one.close_and_remove().await;
}

on_both_backends!(a_statement_waiting_for_the_busy_connection_gets_it_next);

/// What takes its connection from sqlx's pool itself (the migrations, a
/// backup) gets one while statements keep coming: while it holds the pool,
/// their connection goes back there after each statement.
async fn a_direct_user_of_the_pool_gets_a_connection_between_statements(backend: Backend) {
    let one = OneConnection::open(backend).await;
    let db = &one.db;
    let stop = tokio::sync::Notify::new();
    let statements = async {
        let mut ran = 0;
        loop {
            tokio::select! {
                () = stop.notified() => return ran,
                one = select_one(db) => {
                    one.unwrap();
                    ran += 1;
                }
            }
        }
    };
    let direct = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let in_use = db.pool();
        let acquired = match &*in_use {
            Pool::Postgres(pool) => tokio::time::timeout(PROMPTLY, pool.acquire()).await.map(|c| c.map(drop)),
            Pool::Sqlite { pool, .. } => tokio::time::timeout(PROMPTLY, pool.acquire()).await.map(|c| c.map(drop)),
        };
        drop(in_use);
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.notify_one();
        acquired
    };
    let (ran, acquired) = tokio::join!(statements, direct);
    acquired.expect("the direct acquire waited while statements kept the connection").unwrap();
    assert!(ran > 10, "the statements went on beside it ({ran} ran)");
    one.close_and_remove().await;
}

on_both_backends!(a_direct_user_of_the_pool_gets_a_connection_between_statements);

/// A fresh Postgres database reached through a loopback relay that counts
/// the connections made through it and holds every one after the first back
/// for `hold_back` before passing it on, as a stalled name lookup or a slow
/// network would. Postgres only: SQLite opens files, not connections.
/// `TEST_POSTGRES_URL` is taken to name its user and port.
struct Relayed {
    db: Db,
    opened: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    relaying: tokio::task::JoinHandle<()>,
    name: String,
    hold_back: Duration,
}

impl Relayed {
    async fn open(pool_size: u32, hold_back: Duration) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay = listener.local_addr().unwrap();
        let base = admin_url();
        let (user, after_user) = base.split_once('@').unwrap();
        let upstream = after_user.split_once('/').unwrap().0.to_owned();
        let opened = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counting = opened.clone();
        let relaying = tokio::spawn(async move {
            loop {
                let (mut client, _) = listener.accept().await.unwrap();
                let first = counting.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    if !first {
                        tokio::time::sleep(hold_back).await;
                    }
                    let mut server = tokio::net::TcpStream::connect(upstream.as_str()).await.unwrap();
                    tokio::io::copy_bidirectional(&mut client, &mut server).await.ok();
                });
            }
        });
        let name = format!("spares_{}", uuid::Uuid::new_v4().simple());
        admin(format!("CREATE DATABASE {name}")).await;
        let url = format!("{user}@{relay}/{name}");
        let settings = DatabaseSettings { url: Secret::new(url), pool_size, acquire_timeout: Duration::from_secs(3) };
        let db = Db::connect(&settings).await.unwrap();
        Self { db, opened, relaying, name, hold_back }
    }

    /// Closes the pool and drops the database; the connections opened.
    /// Closing waits for a connection still being opened.
    async fn close_and_remove(self) -> usize {
        let closing = tokio::time::timeout(PROMPTLY + self.hold_back, self.db.close());
        closing.await.expect("closing waited for the spare");
        self.relaying.abort();
        admin(format!("DROP DATABASE {} WITH (FORCE)", self.name)).await;
        self.opened.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// With more statements at once than connections, a statement that waits
/// takes the next connection another frees. It waits in sqlx's pool too,
/// and there, while the pool is not full, the wait opens a connection: one
/// cancelled whenever a freed connection came first would be opened and
/// thrown away over and over.
#[tokio::test]
async fn postgres_more_statements_than_connections_open_no_more_connections() {
    let relayed = Relayed::open(4, Duration::ZERO).await;
    let statements = (0..16).map(|_| async {
        for _ in 0..50 {
            select_one(&relayed.db).await.unwrap();
        }
    });
    futures_util::future::join_all(statements).await;
    let opened = relayed.close_and_remove().await;
    // A wait longer than 250 ms on a busy machine starts a health probe,
    // whose fresh connection goes through the relay too: a few more than 4
    // are fine, the mistake opened hundreds.
    assert!((1..=8).contains(&opened), "{opened} connections opened for a pool of 4");
}

/// A statement that finds the only connection busy while the pool may open
/// another does not wait for that opening alone: when it is slow (held back
/// here for longer than the 3 s acquire timeout, as a name lookup stalled
/// while containers come and go held one for 10 s), the statement takes the
/// busy connection once it is freed.
#[tokio::test]
async fn postgres_a_slow_new_connection_does_not_hold_up_a_statement_that_can_take_a_freed_one() {
    let relayed = Relayed::open(2, Duration::from_secs(4)).await;
    let db = &relayed.db;
    let busy = pg_sleep(db, 0.15);
    let waiting = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        tokio::time::timeout(PROMPTLY, select_one(db)).await
    };
    let (busy, waited) = tokio::join!(busy, waiting);
    busy.unwrap();
    assert_eq!(waited.expect("the statement waited for the new connection").unwrap(), 1);
    relayed.close_and_remove().await;
}

/// Postgres only: a SQLite connection is a file handle in this process, and
/// nothing outside it can break one.
#[tokio::test]
async fn postgres_a_spare_idle_past_the_threshold_is_tested_and_replaced_when_dead() {
    let one = OneConnection::open(Backend::Postgres).await;
    let db = &one.db;
    let backend_pid = || async {
        with_pool!(db, |conn| sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()").fetch_one(conn).await)
    };

    // Back to back, the second statement runs on the connection the first left.
    let first = backend_pid().await.unwrap();
    assert_eq!(backend_pid().await.unwrap(), first);

    // Its server process ends while it waits as a spare; after the idle
    // threshold (1 s) the next statement does not get it.
    admin(format!("SELECT pg_terminate_backend({first})")).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let replaced = backend_pid().await.expect("a statement after the idle threshold ran on a dead spare");
    assert_ne!(replaced, first);

    one.close_and_remove().await;
}

/// Nor does a slow new connection make the database look down. A statement
/// that waits 250 ms starts the health probe; with every connection busy,
/// the probe cannot ping a kept one, and its fresh connection, held back
/// here past the probe's 1 s timeout, would have the database declared
/// down and the next statements fail at once. The probe takes the next
/// connection freed instead, and the statements all run.
#[tokio::test]
async fn postgres_a_slow_new_connection_does_not_make_the_database_look_down() {
    let relayed = Relayed::open(2, Duration::from_secs(4)).await;
    let db = &relayed.db;
    let busy = pg_sleep(db, 0.6);
    let statements = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Past the moment the probe's fresh connection times out (1.3 s).
        let until = Instant::now() + Duration::from_millis(1_800);
        let mut failed = Vec::new();
        while Instant::now() < until {
            if let Err(err) = select_one(db).await {
                failed.push(err.to_string());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        failed
    };
    let (busy, failed) = tokio::join!(busy, statements);
    busy.unwrap();
    assert!(failed.is_empty(), "{} statements failed: {:?}", failed.len(), failed.first());
    relayed.close_and_remove().await;
}
