//! A request whose handler has started runs to completion when its client
//! goes away (as under uvicorn): a browser that navigates away right after
//! submitting keeps its signup, its item and its recovery email.
//!
//! Each test holds a lock on the table the request writes to, so the
//! handler is certainly mid-way (waiting on the database) when the client
//! closes its socket; the lock is released afterwards and the effect must
//! appear.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use common::{TestApp, on_both_backends, spawn_app, spawn_app_with};
use serde_json::json;
use shared_core::db::Backend;
use sqlx::Connection;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

on_both_backends!(a_signup_survives_its_client, an_item_survives_its_client, a_recovery_email_survives_its_client);

async fn a_signup_survives_its_client(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = format!("gone-{}@example.com", uuid::Uuid::new_v4().simple());
    let body = json!({"email": email, "password": "password123", "full_name": "Gone"});
    send_and_hang_up(&app, "\"user\"", "POST", "/api/v1/users/signup", None, &body).await;
    let db = app.state.db.clone();
    eventually("the account exists", || {
        let (db, email) = (db.clone(), email.clone());
        async move { shared_core::db::users::find_by_email(&db, &email).await.unwrap().is_some() }
    })
    .await;
    app.shutdown().await;
}

async fn an_item_survives_its_client(backend: Backend) {
    let app = spawn_app(backend).await;
    let (user, token, _) = app.new_user().await;
    let body = json!({"title": "written by a client that left"});
    send_and_hang_up(&app, "item", "POST", "/api/v1/items/", Some(&token), &body).await;
    let owner: uuid::Uuid = user["id"].as_str().unwrap().parse().unwrap();
    let db = app.state.db.clone();
    eventually("the item exists", || {
        let db = db.clone();
        async move { shared_core::db::items::list(&db, Some(owner), 0, 10).await.unwrap().1 == 1 }
    })
    .await;
    app.shutdown().await;
}

async fn a_recovery_email_survives_its_client(backend: Backend) {
    let app = spawn_app_with(backend, |env| common::with_smtp(env, 2525)).await;
    let (_, _, email) = app.new_user().await;
    let path = format!("/api/v1/password-recovery/{email}");
    send_and_hang_up(&app, "jobs", "POST", &path, None, &json!({})).await;
    eventually("the recovery is queued", || async {
        app.queued_recoveries().await.iter().any(|queued| queued.email == email)
    })
    .await;
    app.shutdown().await;
}

/// Sends one request with `table` locked against writes, closes the socket
/// without reading the answer, then releases the lock.
async fn send_and_hang_up(
    app: &TestApp,
    table: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &serde_json::Value,
) {
    let lock = TableLock::take(app, table).await;
    let body = body.to_string();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        app.address,
        body.len()
    );
    let mut client = TcpStream::connect(app.address).await.unwrap();
    client.write_all(request.as_bytes()).await.unwrap();
    // Time for the handler to reach the locked table, then for the server
    // to see the socket close. Neither decides the outcome: with the fix
    // the effect appears whatever the timing; without it, these pauses are
    // what lets the test see the request being cancelled.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(client);
    tokio::time::sleep(Duration::from_millis(300)).await;
    lock.release().await;
}

/// A write lock on one table, held by a connection of the test's own.
enum TableLock {
    Postgres(sqlx::PgConnection),
    Sqlite(sqlx::SqliteConnection),
}

impl TableLock {
    async fn take(app: &TestApp, table: &str) -> Self {
        match app.db.backend {
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
                sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
                // SHARE mode lets readers through and blocks every INSERT.
                let lock = format!("LOCK TABLE {table} IN SHARE MODE");
                sqlx::query(sqlx::AssertSqlSafe(lock)).execute(&mut conn).await.unwrap();
                Self::Postgres(conn)
            }
            // SQLite locks the whole file: one writer at a time, readers go on.
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
                sqlx::query("BEGIN IMMEDIATE").execute(&mut conn).await.unwrap();
                Self::Sqlite(conn)
            }
        }
    }

    async fn release(self) {
        match self {
            Self::Postgres(mut conn) => drop(sqlx::query("ROLLBACK").execute(&mut conn).await.unwrap()),
            Self::Sqlite(mut conn) => drop(sqlx::query("ROLLBACK").execute(&mut conn).await.unwrap()),
        }
    }
}

/// Waits until `condition` holds, failing after ten seconds.
async fn eventually<F, Fut>(what: &str, condition: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition().await {
        assert!(Instant::now() < deadline, "{what}: not within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
