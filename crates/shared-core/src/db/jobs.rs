//! Queries on the `jobs` table: the durable queue. Every state change of a
//! running job is fenced by `lease_owner`, so a worker whose lease expired
//! (and whose job another worker took over) cannot overwrite the outcome.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::users::now;
use super::{Db, Tx, returned};
use crate::jobs::kinds::JobKind;
use crate::{with_pool, with_tx, with_writer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub const ALL: [Self; 5] = [Self::Queued, Self::Running, Self::Succeeded, Self::Failed, Self::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// How a row's `status` text is read: the column holds nothing else (every
/// statement below writes one of [`JobStatus::ALL`]).
impl TryFrom<String> for JobStatus {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        Self::parse(&text).ok_or_else(|| format!("unknown job status {text:?}"))
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Job {
    pub id: Uuid,
    /// Text, not [`JobKind`]: a row of a kind this binary does not know (one
    /// a newer release queued before a rollback) must still list and fail
    /// cleanly, not break every query that reads it.
    pub kind: String,
    #[sqlx(try_from = "String")]
    pub status: JobStatus,
    pub payload: Json<Value>,
    pub priority: i32,
    pub owner_id: Option<Uuid>,
    pub idempotency_key: Option<String>,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// Every column but the result, which can be large and is read on its own.
const COLUMNS: &str = "id, kind, status, payload, priority, owner_id, idempotency_key, attempts, max_attempts, \
    run_at, created_at, started_at, finished_at, lease_owner, lease_expires_at, last_error";

/// A job to insert; `P` is its kind's payload type (or a `Value` already
/// validated against it, as the API has).
#[derive(Debug, Clone)]
pub struct NewJob<P = Value> {
    pub kind: &'static str,
    pub payload: P,
    pub owner_id: Option<Uuid>,
    pub priority: i32,
    pub run_at: Option<DateTime<Utc>>,
    pub max_attempts: i32,
    pub idempotency_key: Option<String>,
}

/// Inserts a job in the caller's transaction, so it commits (or not) with
/// the change that caused it. With an idempotency key already used by the
/// same owner, returns the existing job and `false`.
pub async fn insert<P: Serialize + Sync>(tx: &mut Tx, job: &NewJob<P>) -> Result<(Job, bool), sqlx::Error> {
    let created_at = now();
    let insert = format!(
        "INSERT INTO jobs (id, kind, status, payload, priority, owner_id, idempotency_key, attempts, max_attempts, run_at, created_at)
         VALUES ($1, $2, 'queued', $3, $4, $5, $6, 0, $7, $8, $9)
         ON CONFLICT (owner_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
         RETURNING {COLUMNS}"
    );
    let inserted: Option<Job> = with_tx!(tx, |conn| sqlx::query_as(sqlx::AssertSqlSafe(insert))
        .bind(Uuid::new_v4())
        .bind(job.kind)
        .bind(Json(&job.payload))
        .bind(job.priority)
        .bind(job.owner_id)
        .bind(&job.idempotency_key)
        .bind(job.max_attempts)
        .bind(job.run_at.unwrap_or(created_at))
        .bind(created_at)
        .fetch_optional(conn)
        .await)?;
    if let Some(job) = inserted {
        return Ok((job, true));
    }
    let existing = format!("SELECT {COLUMNS} FROM jobs WHERE owner_id = $1 AND idempotency_key = $2");
    let job = with_tx!(tx, |conn| sqlx::query_as(sqlx::AssertSqlSafe(existing))
        .bind(job.owner_id)
        .bind(&job.idempotency_key)
        .fetch_one(conn)
        .await)?;
    Ok((job, false))
}

pub async fn find(db: &Db, id: Uuid) -> Result<Option<Job>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM jobs WHERE id = $1");
    with_pool!(db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await)
}

#[derive(Debug, Default, Clone)]
pub struct JobFilter {
    /// `None`: every owner's jobs (a superuser's view).
    pub owner_id: Option<Uuid>,
    pub status: Option<JobStatus>,
    pub kind: Option<JobKind>,
}

/// A page of jobs, newest first, and the total matching count.
pub async fn list(db: &Db, filter: &JobFilter, skip: i64, limit: i64) -> Result<(Vec<Job>, i64), sqlx::Error> {
    const WHERE: &str = "($1 IS NULL OR owner_id = $1) AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR kind = $3)";
    let page = format!("SELECT {COLUMNS} FROM jobs WHERE {WHERE} ORDER BY created_at DESC, id LIMIT $4 OFFSET $5");
    let count = format!("SELECT COUNT(*) FROM jobs WHERE {WHERE}");
    let status = filter.status.map(JobStatus::as_str);
    let kind = filter.kind.map(JobKind::as_str);
    let jobs = with_pool!(db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(page.clone()))
        .bind(filter.owner_id)
        .bind(status)
        .bind(kind)
        .bind(limit)
        .bind(skip)
        .fetch_all(pool)
        .await)?;
    let total = with_pool!(db, |pool| sqlx::query_scalar(sqlx::AssertSqlSafe(count.clone()))
        .bind(filter.owner_id)
        .bind(status)
        .bind(kind)
        .fetch_one(pool)
        .await)?;
    Ok((jobs, total))
}

/// The stored output and its content type, once the job has succeeded.
pub async fn result(db: &Db, id: Uuid) -> Result<Option<(String, String)>, sqlx::Error> {
    let row: Option<(Option<String>, Option<String>)> = with_pool!(db, |pool| sqlx::query_as(
        "SELECT result, result_content_type FROM jobs WHERE id = $1 AND status = 'succeeded'"
    )
    .bind(id)
    .fetch_optional(pool)
    .await)?;
    Ok(row.map(|(body, content_type)| {
        // A job without output (e.g. noop) answers JSON null, not an empty body.
        (body.unwrap_or_else(|| "null".to_owned()), content_type.unwrap_or_else(|| "application/json".to_owned()))
    }))
}

/// Cancels a job that is still queued; `None` when it no longer is. One
/// statement, so a claim racing it either sees the job queued or cancelled.
pub async fn cancel(db: &Db, id: Uuid) -> Result<Option<Job>, sqlx::Error> {
    let sql = format!(
        "UPDATE jobs SET status = 'cancelled', finished_at = $2 WHERE id = $1 AND status = 'queued' RETURNING {COLUMNS}"
    );
    with_writer!(db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).bind(now()).fetch_all(pool).await)
        .map(returned)
}

/// Claims up to `limit` ready jobs for `worker` until `lease_until`.
///
/// Postgres: `FOR UPDATE SKIP LOCKED` lets concurrent workers take disjoint
/// batches without waiting on each other. SQLite has one writer at a time,
/// so the same single UPDATE is already atomic; it has no row locks to skip.
pub async fn claim(db: &Db, worker: &str, limit: i64, lease_until: DateTime<Utc>) -> Result<Vec<Job>, sqlx::Error> {
    let ready = "SELECT id FROM jobs WHERE status = 'queued' AND run_at <= $3 ORDER BY priority DESC, run_at LIMIT $4";
    let sql = match db.backend() {
        super::Backend::Postgres => format!(
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = $3, lease_owner = $1, lease_expires_at = $2
             WHERE id IN ({ready} FOR UPDATE SKIP LOCKED) RETURNING {COLUMNS}"
        ),
        super::Backend::Sqlite => format!(
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = $3, lease_owner = $1, lease_expires_at = $2
             WHERE id IN ({ready}) RETURNING {COLUMNS}"
        ),
    };
    with_writer!(db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(worker)
        .bind(lease_until)
        .bind(now())
        .bind(limit)
        .fetch_all(pool)
        .await)
}

/// Extends a running job's lease; `false` when the worker no longer holds it.
pub async fn extend_lease(db: &Db, id: Uuid, worker: &str, lease_until: DateTime<Utc>) -> Result<bool, sqlx::Error> {
    let sql = "UPDATE jobs SET lease_expires_at = $3 WHERE id = $1 AND lease_owner = $2 AND status = 'running'";
    changed(with_writer!(db, |pool| sqlx::query(sql)
        .bind(id)
        .bind(worker)
        .bind(lease_until)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())))
}

/// Records success and the job's output; `false` when the lease was lost.
pub async fn succeed(db: &Db, id: Uuid, worker: &str, output: Option<(&str, &str)>) -> Result<bool, sqlx::Error> {
    // lease_owner stays: it records which worker ran the job.
    let sql = "UPDATE jobs SET status = 'succeeded', finished_at = $3, result = $4, result_content_type = $5,
                  lease_expires_at = NULL, last_error = NULL
               WHERE id = $1 AND lease_owner = $2 AND status = 'running'";
    let (body, content_type) = output.unzip();
    changed(with_writer!(db, |pool| sqlx::query(sql)
        .bind(id)
        .bind(worker)
        .bind(now())
        .bind(body)
        .bind(content_type)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())))
}

/// Records a failed attempt: back to the queue at `retry_at`, or `failed`
/// for good (a dead letter) when `retry_at` is `None`.
pub async fn fail(
    db: &Db,
    id: Uuid,
    worker: &str,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
) -> Result<bool, sqlx::Error> {
    let sql = match retry_at {
        Some(_) => "UPDATE jobs SET status = 'queued', run_at = $4, last_error = $3, lease_owner = NULL, lease_expires_at = NULL
                    WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
        None => "UPDATE jobs SET status = 'failed', finished_at = $4, last_error = $3, lease_owner = NULL, lease_expires_at = NULL
                 WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
    };
    let at = retry_at.unwrap_or_else(now);
    changed(with_writer!(db, |pool| sqlx::query(sql)
        .bind(id)
        .bind(worker)
        .bind(error)
        .bind(at)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())))
}

/// Gives an unfinished job back (graceful shutdown): queued again at once,
/// and the interrupted attempt does not count.
pub async fn hand_back(db: &Db, id: Uuid, worker: &str) -> Result<bool, sqlx::Error> {
    let sql = "UPDATE jobs SET status = 'queued', attempts = attempts - 1, run_at = $3, lease_owner = NULL, lease_expires_at = NULL
               WHERE id = $1 AND lease_owner = $2 AND status = 'running'";
    changed(with_writer!(db, |pool| sqlx::query(sql)
        .bind(id)
        .bind(worker)
        .bind(now())
        .execute(pool)
        .await
        .map(|r| r.rows_affected())))
}

/// Returns jobs whose lease ran out (their worker crashed, was killed or
/// cut off) to the queue, or fails them when no attempts are left. The
/// calling worker's own jobs are left alone: it is alive, and after a
/// database outage it is about to record their outcomes.
pub async fn reap_expired_leases(db: &Db, except_owner: &str) -> Result<u64, sqlx::Error> {
    let sql = "UPDATE jobs SET
                  status = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END,
                  finished_at = CASE WHEN attempts >= max_attempts THEN $1 ELSE NULL END,
                  run_at = $1, last_error = 'lease expired: the worker stopped without finishing',
                  lease_owner = NULL, lease_expires_at = NULL
               WHERE status = 'running' AND lease_expires_at < $1 AND lease_owner <> $2";
    with_writer!(db, |pool| sqlx::query(sql)
        .bind(now())
        .bind(except_owner)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))
}

/// Deletes finished jobs that ended before `before`.
pub async fn purge_finished(db: &Db, before: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    let sql = "DELETE FROM jobs WHERE status IN ('succeeded', 'failed', 'cancelled') AND finished_at < $1";
    with_writer!(db, |pool| sqlx::query(sql).bind(before).execute(pool).await.map(|r| r.rows_affected()))
}

/// Jobs per (status, kind), for the queue-depth gauges.
pub async fn depth(db: &Db) -> Result<Vec<(String, String, i64)>, sqlx::Error> {
    let sql = "SELECT status, kind, COUNT(*) FROM jobs GROUP BY status, kind";
    with_pool!(db, |pool| sqlx::query_as(sql).fetch_all(pool).await)
}

fn changed(rows: Result<u64, sqlx::Error>) -> Result<bool, sqlx::Error> {
    rows.map(|n| n > 0)
}
