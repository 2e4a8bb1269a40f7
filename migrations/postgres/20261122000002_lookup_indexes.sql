-- Emails are compared case-insensitively (login, uniqueness checks), and item
-- lists are read per owner, newest first. Neither index changes the FastAPI
-- schema's columns; the email one is not unique so that an adopted database
-- holding two spellings of one address still migrates.
CREATE INDEX IF NOT EXISTS ix_user_email_lower ON "user" (lower(email));
CREATE INDEX IF NOT EXISTS ix_item_owner_id_created_at ON item (owner_id, created_at DESC);
