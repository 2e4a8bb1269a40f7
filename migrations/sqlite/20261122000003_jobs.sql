-- Same tables as the Postgres migration of this version, with SQLite's types:
-- UUIDs as BLOBs, timestamps as RFC 3339 TEXT, JSON as TEXT.
CREATE TABLE IF NOT EXISTS jobs (
    id BLOB PRIMARY KEY NOT NULL,
    kind VARCHAR(64) NOT NULL,
    status VARCHAR(16) NOT NULL
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    payload TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    owner_id BLOB REFERENCES "user" (id) ON DELETE CASCADE,
    idempotency_key VARCHAR(255),
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    run_at TEXT NOT NULL,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    lease_owner VARCHAR(255),
    lease_expires_at TEXT,
    last_error TEXT,
    result TEXT,
    result_content_type VARCHAR(100)
);
CREATE UNIQUE INDEX IF NOT EXISTS ux_jobs_owner_idempotency_key
    ON jobs (owner_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS ix_jobs_ready ON jobs (priority DESC, run_at) WHERE status = 'queued';
CREATE INDEX IF NOT EXISTS ix_jobs_lease ON jobs (lease_expires_at) WHERE status = 'running';
CREATE INDEX IF NOT EXISTS ix_jobs_owner_created_at ON jobs (owner_id, created_at DESC);

CREATE TABLE IF NOT EXISTS workers (
    id VARCHAR(64) PRIMARY KEY NOT NULL,
    host VARCHAR(255) NOT NULL,
    started_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    jobs_done INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS schedule_slots (
    name VARCHAR(64) NOT NULL,
    slot INTEGER NOT NULL,
    worker_id VARCHAR(64) NOT NULL,
    claimed_at TEXT NOT NULL,
    PRIMARY KEY (name, slot)
);
