-- The FastAPI stack's "user" and item tables with SQLite's closest types:
-- UUIDs as 16-byte BLOBs (how sqlx encodes uuid::Uuid), timestamps as
-- RFC 3339 TEXT in UTC (which sorts chronologically), booleans as BOOLEAN.
CREATE TABLE IF NOT EXISTS "user" (
    email VARCHAR(255) NOT NULL,
    is_active BOOLEAN NOT NULL,
    is_superuser BOOLEAN NOT NULL,
    full_name VARCHAR(255),
    hashed_password TEXT NOT NULL,
    id BLOB NOT NULL PRIMARY KEY,
    created_at TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS ix_user_email ON "user" (email);

CREATE TABLE IF NOT EXISTS item (
    description VARCHAR(255),
    title VARCHAR(255) NOT NULL,
    owner_id BLOB NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    id BLOB NOT NULL PRIMARY KEY,
    created_at TEXT
);
