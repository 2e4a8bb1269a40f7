-- The durable job queue (contract Part B, jobs). A job is claimed by a
-- worker with a lease (lease_owner, lease_expires_at); a lease that runs out
-- puts the job back in the queue. Retries wait until run_at.
CREATE TABLE IF NOT EXISTS jobs (
    id UUID PRIMARY KEY,
    kind VARCHAR(64) NOT NULL,
    status VARCHAR(16) NOT NULL
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    payload JSONB NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    -- NULL for internal jobs (emails, maintenance); a user's jobs go with them.
    owner_id UUID REFERENCES "user" (id) ON DELETE CASCADE,
    idempotency_key VARCHAR(255),
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    run_at TIMESTAMP WITH TIME ZONE NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    started_at TIMESTAMP WITH TIME ZONE,
    finished_at TIMESTAMP WITH TIME ZONE,
    lease_owner VARCHAR(255),
    lease_expires_at TIMESTAMP WITH TIME ZONE,
    last_error TEXT,
    result TEXT,
    result_content_type VARCHAR(100)
);
-- The same key from the same user returns the existing job.
CREATE UNIQUE INDEX IF NOT EXISTS ux_jobs_owner_idempotency_key
    ON jobs (owner_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- What a claim scans: ready jobs in priority order.
CREATE INDEX IF NOT EXISTS ix_jobs_ready ON jobs (priority DESC, run_at) WHERE status = 'queued';
-- What the reaper scans: running jobs by lease expiry.
CREATE INDEX IF NOT EXISTS ix_jobs_lease ON jobs (lease_expires_at) WHERE status = 'running';
CREATE INDEX IF NOT EXISTS ix_jobs_owner_created_at ON jobs (owner_id, created_at DESC);

-- One row per worker process: its heartbeat.
CREATE TABLE IF NOT EXISTS workers (
    id VARCHAR(64) PRIMARY KEY,
    host VARCHAR(255) NOT NULL,
    started_at TIMESTAMP WITH TIME ZONE NOT NULL,
    last_seen_at TIMESTAMP WITH TIME ZONE NOT NULL,
    jobs_done BIGINT NOT NULL DEFAULT 0
);

-- A schedule slot is run by whichever worker inserts its row first.
CREATE TABLE IF NOT EXISTS schedule_slots (
    name VARCHAR(64) NOT NULL,
    slot BIGINT NOT NULL,
    worker_id VARCHAR(64) NOT NULL,
    claimed_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (name, slot)
);
