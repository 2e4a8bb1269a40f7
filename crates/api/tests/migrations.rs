//! Schema set-up on both backends: migrating from empty, refusing a schema
//! that is behind, adopting the FastAPI stack's database, read-only SQLite.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use api::startup::Application;
use common::{TestDb, on_both_backends, settings_for, spawn_app_on};
use serde_json::Value;
use shared_core::db::{Backend, migrate};
use shared_core::with_pool;

on_both_backends!(migrates_from_empty_and_is_idempotent, refuses_to_start_on_a_schema_behind_when_not_migrating);

async fn migrates_from_empty_and_is_idempotent(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = test_db.connect().await;
    let folder = format!("{}/../../migrations/{}", env!("CARGO_MANIFEST_DIR"), backend.as_str());
    let files = std::fs::read_dir(folder).unwrap().count();
    assert_eq!(migrate::status(&db).await.unwrap().pending.len(), files, "an empty database has everything pending");
    migrate::run(&db).await.unwrap();
    migrate::run(&db).await.unwrap();
    assert!(migrate::status(&db).await.unwrap().is_current());
    for table in ["user", "item"] {
        let rows: i64 = with_pool!(&db, |pool| sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM \"{table}\""
        )))
        .fetch_one(pool)
        .await)
        .unwrap();
        assert_eq!(rows, 0);
    }
    db.close().await;
}

async fn refuses_to_start_on_a_schema_behind_when_not_migrating(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let settings = settings_for(&test_db, |env| {
        env.insert("MIGRATE_ON_START".into(), "false".into());
    });
    let err = Application::build(settings).await.err().expect("an unmigrated database is refused");
    assert!(err.to_string().contains("run `api migrate`"), "{err}");
}

/// The FastAPI stack's database, built from its Alembic DDL, is adopted:
/// our migrations record their baseline and the rows stay as they were.
#[tokio::test]
async fn adopts_a_database_created_by_the_fastapi_stack() {
    let test_db = TestDb::new(Backend::Postgres).await;
    let user_id = uuid::Uuid::new_v4();
    {
        let db = test_db.connect().await;
        let in_use = db.pool();
        let Some(pool) = (match &*in_use {
            shared_core::db::Pool::Postgres(pool) => Some(pool),
            _ => None,
        }) else {
            unreachable!()
        };
        sqlx::raw_sql(include_str!("fixtures/fastapi_schema.sql")).execute(pool).await.unwrap();
        sqlx::query(
            r#"INSERT INTO "user" (email, is_active, is_superuser, full_name, hashed_password, id, created_at)
               VALUES ('legacy@example.com', true, false, 'Legacy User', '$argon2id$v=19$m=65536,t=3,p=4$x$y', $1, now())"#,
        )
        .bind(user_id)
        .execute(pool)
        .await
        .unwrap();
        sqlx::query("INSERT INTO item (description, title, id, owner_id, created_at) VALUES ('kept', 'Legacy item', $1, $2, now())")
            .bind(uuid::Uuid::new_v4())
            .bind(user_id)
            .execute(pool)
            .await
            .unwrap();
        db.close().await;
    }

    let app = spawn_app_on(test_db, |_| {}).await;
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "{}", ready.text().await.unwrap());

    let in_use = app.state.db.pool();
    let shared_core::db::Pool::Postgres(pool) = &*in_use else { unreachable!() };
    let (email, full_name, hash): (String, Option<String>, String) =
        sqlx::query_as(r#"SELECT email, full_name, hashed_password FROM "user" WHERE id = $1"#)
            .bind(user_id)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!((email.as_str(), full_name.as_deref()), ("legacy@example.com", Some("Legacy User")));
    assert_eq!(hash, "$argon2id$v=19$m=65536,t=3,p=4$x$y");
    let items: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM item WHERE owner_id = $1")
        .bind(user_id)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(items, 1);
    let alembic: String = sqlx::query_scalar("SELECT version_num FROM alembic_version").fetch_one(pool).await.unwrap();
    assert!(!alembic.is_empty(), "the FastAPI stack's own bookkeeping is left alone");
    assert!(migrate::status(&app.state.db).await.unwrap().is_current());
    drop(in_use);
    app.shutdown().await;
}

/// A migrated file served read-only (a dataset on a read-only volume):
/// the api starts without writing and reports ready.
#[tokio::test]
async fn read_only_sqlite_starts_and_is_ready() {
    let test_db = TestDb::new(Backend::Sqlite).await;
    {
        let db = test_db.connect().await;
        migrate::run(&db).await.unwrap();
        db.close().await;
    }
    let read_only_url = format!("{}?mode=ro", test_db.url);
    let settings = settings_for(&test_db, |env| {
        env.insert("DATABASE_URL".into(), read_only_url);
    });
    let app = Application::build(settings).await.expect("a read-only database starts");
    assert!(app.state().db.is_read_only());
    let address = app.address();
    let server = tokio::spawn(app.run_until(std::future::pending()));
    let body: Value = reqwest::get(format!("http://{address}/readyz")).await.unwrap().json().await.unwrap();
    assert_eq!(body["status"], "ok", "{body}");
    server.abort();
}
