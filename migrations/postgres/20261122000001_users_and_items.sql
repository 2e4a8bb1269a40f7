-- Baseline: the FastAPI stack's "user" and item tables exactly as its Alembic
-- migrations leave them (names, types, nullability, index and constraint names).
--
-- Every statement is IF NOT EXISTS: on a database that stack already created,
-- this migration finds everything in place, changes no row, and is recorded as
-- applied, which makes it the baseline that later migrations build on.
CREATE TABLE IF NOT EXISTS "user" (
    email VARCHAR(255) NOT NULL,
    is_active BOOLEAN NOT NULL,
    is_superuser BOOLEAN NOT NULL,
    full_name VARCHAR(255),
    hashed_password VARCHAR NOT NULL,
    id UUID NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE,
    PRIMARY KEY (id)
);
CREATE UNIQUE INDEX IF NOT EXISTS ix_user_email ON "user" (email);

CREATE TABLE IF NOT EXISTS item (
    description VARCHAR(255),
    title VARCHAR(255) NOT NULL,
    owner_id UUID NOT NULL,
    id UUID NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE,
    PRIMARY KEY (id),
    FOREIGN KEY (owner_id) REFERENCES "user" (id) ON DELETE CASCADE
);

-- Databases made by older releases of that stack predate created_at.
ALTER TABLE "user" ADD COLUMN IF NOT EXISTS created_at TIMESTAMP WITH TIME ZONE;
ALTER TABLE item ADD COLUMN IF NOT EXISTS created_at TIMESTAMP WITH TIME ZONE;
