//! `worker copy-to-postgres`, the real binary: a SQLite database migrated by
//! the app and filled with rows in the formats the app writes (16-byte BLOB
//! uuids, RFC 3339 TEXT timestamps, 0/1 booleans, JSON TEXT) and with text
//! holding every character COPY and CSV care about; a fresh Postgres
//! database migrated the same way; the copy. Then the rows as the app's own
//! queries read them on both sides, spot checks of the values in Postgres,
//! and the api serving the copy: a copied user logs in with their copied
//! hash and sees their items. Also the refusals (a filled target, an
//! unmigrated one, one missing a migration, bad arguments) and a failing
//! load that leaves the target as it was.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

#[path = "../../api/tests/common/mod.rs"]
mod common;
mod support;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::{TestDb, spawn_app_on};
use reqwest::Method;
use shared_core::db::jobs::JobFilter;
use shared_core::db::{Backend, Db, Pool, items, jobs, users};
use sqlx::{PgPool, SqlitePool};
use support::migrated;

/// pwdlib's argon2id of [`PASSWORD`] (from the Python interop fixtures).
const HASH: &str = "$argon2id$v=19$m=65536,t=3,p=4$gwTJJOMUnZwtL8Q1IlRuqg$EmcI6p5dh917hTTtAvbFLvPyJh61ttq7LybvhMqklEc";
const PASSWORD: &str = "changethis-correct-horse";
const TRICKY_NAME: &str = "Ünïcødé \"quoted\", comma\nsecond line; 密码 🔑";
const TRICKY_DESCRIPTION: &str =
    "back\\slash, tab\there, the COPY end marker alone on a line:\n\\.\nand 'single' quotes, \\N, CR LF\r\n";

/// 3 users, 3 items and 4 jobs, written as the app writes them.
async fn seed(pool: &SqlitePool) {
    sqlx::query(
        r#"INSERT INTO "user" (email, is_active, is_superuser, full_name, hashed_password, id, created_at) VALUES
          ('admin@example.com', 1, 1, NULL, $1, X'0f1e2d3c4b5a46978877665544332211', '2026-11-20T08:00:00.000001+00:00'),
          ('alice@example.com', 1, 0, $2, $1, X'a11ce000000040008000000000000001', '2026-11-21T09:30:15.250000+00:00'),
          ('bob@example.com', 0, 0, '', '$2b$12$abcdefghijklmnopqrstuu5JXZ8VtTPmKX5v3J3fMUiIuO6kbXGd.',
           X'b0b00000000040008000000000000002', NULL)"#,
    )
    .bind(HASH)
    .bind(TRICKY_NAME)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO item (description, title, owner_id, id, created_at) VALUES
          ($1, 'Alice''s item', X'a11ce000000040008000000000000001', X'17e00000000040008000000000000001',
           '2026-11-21T10:00:00.123456+00:00'),
          (NULL, 'no description', X'a11ce000000040008000000000000001', X'17e00000000040008000000000000002', NULL),
          ('', 'empty description', X'0f1e2d3c4b5a46978877665544332211', X'17e00000000040008000000000000003',
           '2026-11-22T00:00:00.000000+00:00')",
    )
    .bind(TRICKY_DESCRIPTION)
    .execute(pool)
    .await
    .unwrap();
    sqlx::raw_sql(
        r#"INSERT INTO jobs (id, kind, status, payload, priority, owner_id, idempotency_key, attempts, max_attempts,
                  run_at, created_at, started_at, finished_at, lease_owner, lease_expires_at, last_error, result,
                  result_content_type) VALUES
          (X'10b00000000040008000000000000001', 'items_export', 'succeeded', '{}', 0,
           X'a11ce000000040008000000000000001', 'export-1', 1, 5, '2026-11-21T10:01:00.000000+00:00',
           '2026-11-21T10:01:00.000000+00:00', '2026-11-21T10:01:00.500000+00:00', '2026-11-21T10:01:01.000000+00:00',
           NULL, NULL, NULL, 'title,description' || char(10) || 'Alice''s item,"with, comma"' || char(10), 'text/csv'),
          (X'10b00000000040008000000000000002', 'send_email', 'queued',
           '{"to":"bob@example.com","subject":"Ünïcødé \"hi\"","html":"<p>x</p>"}', 10, NULL, NULL, 0, 5,
           '2026-11-22T08:00:00.000000+00:00', '2026-11-22T08:00:00.000000+00:00', NULL, NULL, NULL, NULL, NULL, NULL,
           NULL),
          (X'10b00000000040008000000000000003', 'noop', 'running', '{"sleep_ms":10}', 0,
           X'0f1e2d3c4b5a46978877665544332211', NULL, 1, 3, '2026-11-22T08:00:00.000000+00:00',
           '2026-11-22T08:00:00.000000+00:00', '2026-11-22T08:00:01.000000+00:00', NULL, 'host-1-abcd',
           '2026-11-22T08:00:31.000000+00:00', NULL, NULL, NULL),
          (X'10b00000000040008000000000000004', 'send_email', 'failed', '{"to":"x@example.com","subject":"s","html":""}',
           10, NULL, NULL, 5, 5, '2026-11-22T07:00:00.000000+00:00', '2026-11-22T06:00:00.000000+00:00',
           '2026-11-22T07:00:00.000000+00:00', '2026-11-22T07:00:01.000000+00:00', NULL, NULL,
           'smtp: connection refused', NULL, NULL)"#,
    )
    .execute(pool)
    .await
    .unwrap();
}

/// A seeded SQLite database and a migrated, empty Postgres database.
struct Fixture {
    sqlite: TestDb,
    source: Db,
    postgres: TestDb,
    target: Db,
}

impl Fixture {
    async fn new() -> Self {
        let sqlite = TestDb::new(Backend::Sqlite).await;
        let source = migrated(&sqlite).await;
        seed(&sqlite_pool(&source)).await;
        let postgres = TestDb::new(Backend::Postgres).await;
        let target = migrated(&postgres).await;
        Self { sqlite, source, postgres, target }
    }

    fn file(&self) -> String {
        self.sqlite.url.strip_prefix("sqlite:").unwrap().to_owned()
    }

    fn copy(&self, replace: bool) -> Output {
        let file = self.file();
        let mut args = vec![file.as_str(), self.postgres.url.as_str()];
        if replace {
            args.insert(0, "--replace");
        }
        copy_to_postgres(&args)
    }

    async fn pg(&self, sql: &'static str) -> String {
        sqlx::query_scalar(sql).fetch_one(&pg_pool(&self.target)).await.unwrap()
    }
}

/// The real binary, with an empty environment: it needs no settings.
fn copy_to_postgres(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_worker")).arg("copy-to-postgres").args(args).env_clear().output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_copied(output: &Output, summary: &str) {
    assert!(output.status.success(), "{}", stderr(output));
    assert_eq!(String::from_utf8_lossy(&output.stdout), format!("{summary}\n"));
}

fn assert_fails(output: &Output, code: i32, message: &str) {
    assert_eq!(output.status.code(), Some(code), "{}", stderr(output));
    assert!(stderr(output).contains(message), "{message:?} not in: {}", stderr(output));
}

fn sqlite_pool(db: &Db) -> SqlitePool {
    match &*db.pool() {
        Pool::Sqlite { pool, .. } => pool.clone(),
        Pool::Postgres(_) => unreachable!("a SQLite database"),
    }
}

fn pg_pool(db: &Db) -> PgPool {
    match &*db.pool() {
        Pool::Postgres(pool) => pool.clone(),
        Pool::Sqlite { .. } => unreachable!("a Postgres database"),
    }
}

/// Every row as the app's own queries and models read it, by id; the
/// same text on both backends when every value arrived unchanged.
async fn as_the_app_reads(db: &Db) -> Vec<String> {
    let (mut users, _) = users::list(db, 0, 100).await.unwrap();
    users.sort_by_key(|user| user.id);
    let (mut items, _) = items::list(db, None, 0, 100).await.unwrap();
    items.sort_by_key(|item| item.id);
    let (mut jobs, _) = jobs::list(db, &JobFilter::default(), 0, 100).await.unwrap();
    jobs.sort_by_key(|job| job.id);
    let mut rows: Vec<String> = users.iter().map(|user| format!("{user:?}")).collect();
    rows.extend(items.iter().map(|item| format!("{item:?}")));
    for job in jobs {
        rows.push(format!("{job:?} {:?}", jobs::result(db, job.id).await.unwrap()));
    }
    rows
}

#[tokio::test]
async fn copies_every_row_and_value() {
    let fixture = Fixture::new().await;
    assert_copied(&fixture.copy(false), "copied user=3 item=3 jobs=4");

    let (source, target) = (as_the_app_reads(&fixture.source).await, as_the_app_reads(&fixture.target).await);
    assert_eq!(source.len(), 10);
    assert_eq!(source, target);

    // Spelled out, in Postgres' own terms.
    let pg = |sql| fixture.pg(sql);
    assert_eq!(
        pg(r#"SELECT id::text FROM "user" WHERE email = 'admin@example.com'"#).await,
        "0f1e2d3c-4b5a-4697-8877-665544332211"
    );
    assert_eq!(pg(r#"SELECT full_name FROM "user" WHERE email = 'alice@example.com'"#).await, TRICKY_NAME);
    assert_eq!(pg(r#"SELECT (full_name IS NULL)::text FROM "user" WHERE email = 'admin@example.com'"#).await, "true");
    assert_eq!(pg(r#"SELECT (full_name = '')::text FROM "user" WHERE email = 'bob@example.com'"#).await, "true");
    assert_eq!(pg(r#"SELECT is_active::text FROM "user" WHERE email = 'bob@example.com'"#).await, "false");
    assert_eq!(pg("SELECT description FROM item WHERE title = 'Alice''s item'").await, TRICKY_DESCRIPTION);
    assert_eq!(
        pg("SELECT extract(epoch FROM created_at)::text FROM item WHERE title = 'Alice''s item'").await,
        "1795255200.123456"
    );
    assert_eq!(pg("SELECT (created_at IS NULL)::text FROM item WHERE title = 'no description'").await, "true");
    assert_eq!(
        pg("SELECT payload ->> 'subject' FROM jobs WHERE id = '10b00000-0000-4000-8000-000000000002'").await,
        "Ünïcødé \"hi\""
    );
    assert_eq!(pg("SELECT jsonb_typeof(payload) FROM jobs WHERE kind = 'noop'").await, "object");
    assert_eq!(pg("SELECT count(*)::text FROM jobs WHERE owner_id IS NULL").await, "2");
    assert_eq!(
        pg("SELECT result FROM jobs WHERE idempotency_key = 'export-1'").await,
        "title,description\nAlice's item,\"with, comma\"\n"
    );
    assert_eq!(
        pg("SELECT status || ' ' || attempts || '/' || max_attempts || ' ' || lease_owner || ' '
                   || to_char(lease_expires_at AT TIME ZONE 'UTC', 'HH24:MI:SS') FROM jobs WHERE kind = 'noop'")
        .await,
        "running 1/3 host-1-abcd 08:00:31"
    );
}

#[tokio::test]
async fn the_api_serves_the_copied_rows_from_postgres() {
    let fixture = Fixture::new().await;
    assert_copied(&fixture.copy(false), "copied user=3 item=3 jobs=4");
    let Fixture { postgres, target, .. } = fixture;
    target.close().await;
    // Its FIRST_SUPERUSER is admin@example.com, which the copy brought.
    let app = spawn_app_on(postgres, |_| {}).await;

    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let token = app.token("alice@example.com", PASSWORD).await;
    let (status, me) = app.call(Method::GET, "/api/v1/users/me", Some(&token), None).await;
    assert_eq!((status.as_u16(), me["full_name"].as_str()), (200, Some(TRICKY_NAME)), "{me}");
    let (status, page) = app.call(Method::GET, "/api/v1/items/", Some(&token), None).await;
    assert_eq!((status.as_u16(), page["count"].as_i64()), (200, Some(2)), "{page}");
    let data = page["data"].as_array().unwrap();
    let alice = data.iter().find(|item| item["title"] == "Alice's item").unwrap();
    assert_eq!(alice["description"], TRICKY_DESCRIPTION);
    assert_eq!(alice["id"], "17e00000-0000-4000-8000-000000000001");
    assert_eq!(alice["owner_id"], "a11ce000-0000-4000-8000-000000000001");
    assert!(alice["created_at"].as_str().unwrap().starts_with("2026-11-21T10:00:00.123456"), "{alice}");
    let bare = data.iter().find(|item| item["title"] == "no description").unwrap();
    assert!(bare["description"].is_null() && bare["created_at"].is_null(), "{bare}");

    // The superuser was copied, not created again with the configured password.
    let admin = users::find_by_email(&app.state.db, "admin@example.com").await.unwrap().unwrap();
    assert_eq!(admin.hashed_password, HASH);
}

#[tokio::test]
async fn refuses_a_target_with_rows_unless_replace() {
    let fixture = Fixture::new().await;
    assert_copied(&fixture.copy(false), "copied user=3 item=3 jobs=4");
    assert_fails(&fixture.copy(false), 1, "already has rows (user=3 item=3 jobs=4); give --replace");
    assert_eq!(fixture.pg("SELECT count(*)::text FROM item").await, "3");

    sqlx::query(
        "INSERT INTO item (description, title, owner_id, id, created_at)
         VALUES (NULL, 'added later', X'a11ce000000040008000000000000001', X'17e00000000040008000000000000009', NULL)",
    )
    .execute(&sqlite_pool(&fixture.source))
    .await
    .unwrap();
    assert_copied(&fixture.copy(true), "copied user=3 item=4 jobs=4");
    assert_eq!(as_the_app_reads(&fixture.source).await, as_the_app_reads(&fixture.target).await);
}

#[tokio::test]
async fn a_failing_load_leaves_the_target_as_it_was() {
    let fixture = Fixture::new().await;
    assert_copied(&fixture.copy(false), "copied user=3 item=3 jobs=4");
    let before = as_the_app_reads(&fixture.target).await;
    let source = &sqlite_pool(&fixture.source);

    // A uuid column holding something else than a uuid's 16 bytes.
    sqlx::query(
        "INSERT INTO item (title, owner_id, id) VALUES ('odd id', X'a11ce000000040008000000000000001', X'0102')",
    )
    .execute(source)
    .await
    .unwrap();
    assert_fails(&fixture.copy(true), 1, "item.id of ");
    assert_fails(&fixture.copy(true), 1, ": a 2-byte BLOB, not a uuid; nothing was committed, the target is unchanged");
    assert_eq!(as_the_app_reads(&fixture.target).await, before);
    sqlx::query("DELETE FROM item WHERE id = X'0102'").execute(source).await.unwrap();

    // An item whose owner does not exist (possible in a file written with
    // foreign keys off): Postgres refuses it, so the whole copy, the
    // TRUNCATE of --replace included, rolls back.
    let mut conn = source.acquire().await.unwrap();
    sqlx::raw_sql(
        "PRAGMA foreign_keys = OFF;
         INSERT INTO item (description, title, owner_id, id, created_at)
         VALUES (NULL, 'orphan', X'deadbeef000040008000000000000000', X'17e0000000004000800000000000000f', NULL);
         PRAGMA foreign_keys = ON;",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    drop(conn);

    let failed = fixture.copy(true);
    assert_fails(&failed, 1, "loading item failed; nothing was committed, the target is unchanged");
    assert!(stderr(&failed).contains("foreign key"), "{}", stderr(&failed));
    assert_eq!(as_the_app_reads(&fixture.target).await, before);
}

#[tokio::test]
async fn refuses_an_unmigrated_target_and_one_missing_a_migration() {
    let fixture = Fixture::new().await;
    let bare = TestDb::new(Backend::Postgres).await;
    assert_fails(&copy_to_postgres(&[&fixture.file(), &bare.url]), 1, "no schema yet: run `api migrate`");

    let last: i64 = sqlx::query_scalar(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT max(version) FROM _sqlx_migrations) RETURNING version",
    )
    .fetch_one(&pg_pool(&fixture.target))
    .await
    .unwrap();
    let refused = fixture.copy(false);
    assert_fails(&refused, 1, &format!("lacks migration(s) [{last}] that the source has: run `api migrate`"));
    assert_eq!(fixture.pg(r#"SELECT count(*)::text FROM "user""#).await, "0");
}

#[tokio::test]
async fn refuses_bad_arguments_and_a_file_that_is_no_database() {
    let fixture = Fixture::new().await;
    let file = fixture.file();
    assert_fails(&copy_to_postgres(&[&file]), 2, "Usage");
    assert_fails(&copy_to_postgres(&[&file, &fixture.sqlite.url]), 2, "must start with postgres://");

    // The sqlite: URL form of DATABASE_URL is accepted too.
    let url = format!("sqlite://{file}?mode=ro");
    assert_copied(&copy_to_postgres(&[&url, &fixture.postgres.url]), "copied user=3 item=3 jobs=4");

    let missing = fixture.sqlite.dir().join("missing.db").display().to_string();
    assert_fails(&copy_to_postgres(&[&missing, &fixture.postgres.url]), 1, "cannot read");
    let garbage: PathBuf = fixture.sqlite.dir().join("garbage.db");
    std::fs::write(&garbage, vec![b'x'; 8192]).unwrap();
    let garbage = garbage.display().to_string();
    assert_fails(&copy_to_postgres(&[&garbage, &fixture.postgres.url]), 1, "integrity check failed");
}
