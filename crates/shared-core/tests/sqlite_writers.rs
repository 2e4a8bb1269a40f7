//! SQLite writers of one process take turns (`Db::write_turn`, `with_writer!`): a writer
//! waiting for the file's write lock waits in the process, in arrival order,
//! holding no pool connection, instead of sleeping in SQLite's busy handler
//! on a connection of its own. A property of SQLite's single write lock, so
//! this test has no Postgres twin (Postgres has row locks and no turns).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::HashMap;
use std::time::Duration;

use shared_core::Settings;
use shared_core::config::vars::ReadBy;
use shared_core::db::{Db, items, migrate, users};

async fn sqlite_db(dir: &std::path::Path, pool_size: &str) -> Db {
    let env = HashMap::from([
        ("DATABASE_URL".to_owned(), format!("sqlite:{}", dir.join("app.db").display())),
        ("DATABASE_POOL_SIZE".to_owned(), pool_size.to_owned()),
        ("DATABASE_ACQUIRE_TIMEOUT_SECONDS".to_owned(), "2".to_owned()),
    ]);
    let settings = Settings::from_map(ReadBy::Api, &env).unwrap().settings;
    let db = Db::connect(&settings.database).await.unwrap();
    migrate::run(&db).await.unwrap();
    db
}

async fn owner(db: &Db) -> users::User {
    let new = users::NewUser {
        email: "owner@example.com",
        hashed_password: "x",
        full_name: None,
        is_active: true,
        is_superuser: false,
    };
    users::create_if_absent(db, new).await.unwrap().unwrap()
}

#[tokio::test]
async fn queued_writers_hold_no_connection_so_reads_go_on_and_every_write_lands() {
    let dir = tempfile::tempdir().unwrap();
    // Two connections: one for the open transaction, one left over.
    let db = sqlite_db(dir.path(), "2").await;
    let owner = owner(&db).await;

    // A write transaction holds the turn (and SQLite's write lock).
    let tx = db.begin_write().await.unwrap();
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move { items::create(&db, owner.id, &format!("queued {i}"), None).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(writers.iter().all(|w| !w.is_finished()), "a writer went ahead of the open transaction");

    // The queued writers wait for their turn without a connection, so the
    // leftover one still serves a read. (Before turns, a queued writer took it
    // and slept in SQLite's busy handler, and this read timed out after 2 s.)
    let found = users::find_by_id(&db, owner.id).await.unwrap();
    assert_eq!(found.map(|u| u.id), Some(owner.id));

    tx.commit().await.unwrap();
    for writer in writers {
        writer.await.unwrap().unwrap();
    }
    assert_eq!(items::list(&db, Some(owner.id), 0, 100).await.unwrap().1, 8);
    db.close().await;
}

#[tokio::test]
async fn a_dropped_transaction_gives_its_turn_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_db(dir.path(), "4").await;
    let owner = owner(&db).await;
    let tx = db.begin_write().await.unwrap();
    drop(tx);
    // Rolled back, not committed: the next writer gets its turn and the lock.
    items::create(&db, owner.id, "after a rollback", None).await.unwrap();
    assert_eq!(items::list(&db, Some(owner.id), 0, 10).await.unwrap().1, 1);
    db.close().await;
}
