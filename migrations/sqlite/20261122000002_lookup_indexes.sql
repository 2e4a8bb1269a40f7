-- Same as the Postgres migration of this version: case-insensitive email
-- lookups and per-owner, newest-first item lists.
CREATE INDEX IF NOT EXISTS ix_user_email_lower ON "user" (lower(email));
CREATE INDEX IF NOT EXISTS ix_item_owner_id_created_at ON item (owner_id, created_at DESC);
