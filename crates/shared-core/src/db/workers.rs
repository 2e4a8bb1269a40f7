//! Worker heartbeats and schedule slots.

use chrono::{DateTime, Utc};

use super::Db;
use super::users::now;
use crate::{with_pool, with_writer};

/// Registers a worker or refreshes its heartbeat, adding `jobs_done`.
pub async fn heartbeat(
    db: &Db,
    id: &str,
    host: &str,
    started_at: DateTime<Utc>,
    jobs_done: i64,
) -> Result<(), sqlx::Error> {
    let sql = "INSERT INTO workers (id, host, started_at, last_seen_at, jobs_done) VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (id) DO UPDATE SET last_seen_at = $4, jobs_done = workers.jobs_done + $5";
    with_writer!(db, |pool| sqlx::query(sql)
        .bind(id)
        .bind(host)
        .bind(started_at)
        .bind(now())
        .bind(jobs_done)
        .execute(pool)
        .await
        .map(drop))
}

/// The latest heartbeat of any worker on `host`.
pub async fn last_seen_on(db: &Db, host: &str) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    with_pool!(db, |pool| sqlx::query_scalar("SELECT MAX(last_seen_at) FROM workers WHERE host = $1")
        .bind(host)
        .fetch_one(pool)
        .await)
}

pub async fn remove(db: &Db, id: &str) -> Result<(), sqlx::Error> {
    with_writer!(db, |pool| sqlx::query("DELETE FROM workers WHERE id = $1").bind(id).execute(pool).await.map(drop))
}

/// Takes schedule slot `slot` of `name` for `worker`; `false` when another
/// worker already has it. The primary key makes this once-only across workers.
pub async fn claim_slot(db: &Db, name: &str, slot: i64, worker: &str) -> Result<bool, sqlx::Error> {
    let sql = "INSERT INTO schedule_slots (name, slot, worker_id, claimed_at) VALUES ($1, $2, $3, $4)
               ON CONFLICT (name, slot) DO NOTHING";
    let inserted = with_writer!(db, |pool| sqlx::query(sql)
        .bind(name)
        .bind(slot)
        .bind(worker)
        .bind(now())
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(inserted > 0)
}

/// Forgets slots older than `before` so the table stays small.
pub async fn prune_slots(db: &Db, name: &str, before_slot: i64) -> Result<u64, sqlx::Error> {
    with_writer!(db, |pool| sqlx::query("DELETE FROM schedule_slots WHERE name = $1 AND slot < $2")
        .bind(name)
        .bind(before_slot)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))
}
