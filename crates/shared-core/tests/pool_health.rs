//! The database's reachability as the pool sees it (`db/health.rs`), on the
//! real Postgres: a server that refuses new connections because the pool
//! already holds every one it allows is busy, not down. Postgres only: a
//! SQLite file has no connection limit to reach.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use shared_core::config::{DatabaseSettings, Secret};
use shared_core::db::Db;
use shared_core::with_pool;
use sqlx::{Connection, PgConnection};

fn admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

async fn admin(sql: &str) {
    let mut conn = PgConnection::connect(&admin_url()).await.expect("Postgres at TEST_POSTGRES_URL");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut conn).await.unwrap();
    conn.close().await.ok();
}

#[tokio::test]
async fn a_pool_at_the_servers_connection_limit_is_busy_not_down() {
    // A role that may hold 2 connections, and a pool of 2 with that role.
    let role = format!("pool_health_{}", uuid::Uuid::new_v4().simple());
    admin(&format!("CREATE ROLE {role} LOGIN CONNECTION LIMIT 2")).await;
    let base = admin_url();
    let (scheme_and_user, host_and_db) = base.split_once('@').unwrap();
    let scheme = scheme_and_user.split_once("://").unwrap().0;
    let settings = DatabaseSettings {
        url: Secret::new(format!("{scheme}://{role}@{host_and_db}")),
        pool_size: 2,
        acquire_timeout: Duration::from_secs(5),
    };
    let db = Db::connect(&settings).await.unwrap();

    // Both connections busy for a second; a third statement waits past the
    // moment that starts a probe, whose fresh connection the server refuses
    // ("too many connections for role").
    let sleep = || async { with_pool!(db, |conn| sqlx::query("SELECT pg_sleep(1)").execute(conn).await.map(|_| ())) };
    let third = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        with_pool!(db, |conn| sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(conn).await)
    };
    let (first, second, third) = tokio::join!(sleep(), sleep(), third);
    let outcome =
        (first.map_err(|e| e.to_string()), second.map_err(|e| e.to_string()), third.map_err(|e| e.to_string()));
    db.close().await;
    admin(&format!("DROP ROLE {role}")).await;
    assert_eq!(outcome, (Ok(()), Ok(()), Ok(1)), "the third statement waits its turn instead of failing fast");
}
