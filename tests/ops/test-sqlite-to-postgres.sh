#!/usr/bin/env bash
# scripts/sqlite-to-postgres.sh for real: a SQLite database made by
# `api migrate`, rows inserted with sqlite3 in the formats the app writes
# (16-byte BLOB uuids, RFC 3339 TEXT timestamps, 0/1 booleans, JSON TEXT),
# a fresh Postgres database migrated by `api migrate`, the copy, then row
# counts, a column-by-column comparison of "user" and item, spot checks of
# jobs, and the api itself serving the copied rows from Postgres (login with
# the copied password hash, the copied item listed).
#
# Needs: the debug api in $CARGO_TARGET_DIR (default target/), built with
# `cargo build -p api` when missing (or API_BIN), sqlite3 and psql (installed with apt-get when root), and a
# Postgres server at TEST_POSTGRES_URL (default
# postgres://postgres@127.0.0.1:5432/postgres) on which that role may
# CREATE DATABASE. Without a reachable server the cases are skipped, visibly.
set -uo pipefail
TEST_GROUP=sqlite-to-postgres
# shellcheck source=tests/ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PG_ADMIN_URL="${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
API_BIN="${API_BIN:-$DEBUG_BIN_DIR/api}"
COPY="$REPO_ROOT/scripts/sqlite-to-postgres.sh"

# The password of this fixture hash (pwdlib's argon2id defaults, from
# crates/shared-core/tests/fixtures/python_interop/fixtures.json).
# shellcheck disable=SC2016 # a literal PHC string, not an expansion
HASH='$argon2id$v=19$m=65536,t=3,p=4$gwTJJOMUnZwtL8Q1IlRuqg$EmcI6p5dh917hTTtAvbFLvPyJh61ttq7LybvhMqklEc'
PASSWORD='changethis-correct-horse'

# Values with every character class CSV and COPY care about.
TRICKY_NAME=$'Ünïcødé "quoted", comma\nsecond line; 密码 🔑'
TRICKY_DESCRIPTION=$'back\\slash, tab\there, the COPY end marker alone on a line:\n\\.\nand \'single\' quotes'

ensure_tools() {
  local need=()
  command -v sqlite3 >/dev/null || need+=(sqlite3)
  command -v psql >/dev/null || need+=(postgresql-client)
  if (( ${#need[@]} > 0 )) && [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1; }
  fi
  command -v sqlite3 >/dev/null || failf "sqlite3 is missing (apt install sqlite3)"
  command -v psql >/dev/null || failf "psql is missing (apt install postgresql-client)"
}

ensure_api() {
  if [[ ! -x "$API_BIN" ]]; then
    echo "building the api ($API_BIN is missing)"
    (cd "$REPO_ROOT" && cargo build -q -p api) || failf "cargo build -p api failed"
  fi
  [[ -x "$API_BIN" ]] || failf "no api binary at $API_BIN"
}

ensure_postgres() {
  psql "$PG_ADMIN_URL" -X -q -At -c 'SELECT 1' >/dev/null 2>&1 \
    || skip "no Postgres reachable at TEST_POSTGRES_URL=$PG_ADMIN_URL"
}

# The api with a clean environment, run from DIR so no stray ./.env is read.
api_in() { # DIR DATABASE_URL ARGS...
  local dir="$1" url="$2"
  shift 2
  (cd "$dir" && env -i PATH="$PATH" HOME="$dir" ENVIRONMENT=local LOG_FORMAT=json LOG_LEVEL=warn \
    SECRET_KEY=ops-test-secret-key-of-at-least-32-bytes DATABASE_URL="$url" "$API_BIN" "$@")
}

# new_pg_db: creates an empty database and sets NEW_PG_URL to it; every
# database made this way is dropped by drop_pg_dbs (the cases' EXIT trap).
PG_DBS=()
new_pg_db() {
  local name
  name="s2p_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
  psql "$PG_ADMIN_URL" -X -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE $name" >/dev/null || failf "CREATE DATABASE $name failed"
  PG_DBS+=("$name")
  NEW_PG_URL="${PG_ADMIN_URL%/*}/$name"
}
drop_pg_dbs() {
  local name
  for name in "${PG_DBS[@]}"; do
    psql "$PG_ADMIN_URL" -X -q -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null 2>&1 || true
  done
}

pgq() { psql "$1" -X -q -At -v ON_ERROR_STOP=1 -c "$2"; }
sq() { sqlite3 -batch -bail "$1" "$2"; }

# seed_sqlite FILE: 3 users, 3 items, 4 jobs in the app's formats.
seed_sqlite() {
  local db="$1" name desc
  name="${TRICKY_NAME//\'/\'\'}"
  desc="${TRICKY_DESCRIPTION//\'/\'\'}"
  sqlite3 -batch -bail "$db" <<SQL || failf "seeding $db failed"
PRAGMA foreign_keys = ON;
BEGIN;
INSERT INTO "user" (email, is_active, is_superuser, full_name, hashed_password, id, created_at) VALUES
  ('admin@example.com', 1, 1, NULL, '$HASH', X'0f1e2d3c4b5a46978877665544332211', '2026-11-20T08:00:00.000001+00:00'),
  ('alice@example.com', 1, 0, '$name', '$HASH', X'a11ce000000040008000000000000001', '2026-11-21T09:30:15.250000+00:00'),
  ('bob@example.com', 0, 0, '', '\$2b\$12\$abcdefghijklmnopqrstuu5JXZ8VtTPmKX5v3J3fMUiIuO6kbXGd.', X'b0b00000000040008000000000000002', NULL);
INSERT INTO item (description, title, owner_id, id, created_at) VALUES
  ('$desc', 'Alice''s item', X'a11ce000000040008000000000000001', X'17e00000000040008000000000000001', '2026-11-21T10:00:00.123456+00:00'),
  (NULL, 'no description', X'a11ce000000040008000000000000001', X'17e00000000040008000000000000002', NULL),
  ('', 'empty description', X'0f1e2d3c4b5a46978877665544332211', X'17e00000000040008000000000000003', '2026-11-22T00:00:00.000000+00:00');
INSERT INTO jobs (id, kind, status, payload, priority, owner_id, idempotency_key, attempts, max_attempts,
                  run_at, created_at, started_at, finished_at, lease_owner, lease_expires_at, last_error, result, result_content_type) VALUES
  (X'10b00000000040008000000000000001', 'items_export', 'succeeded', '{}', 0, X'a11ce000000040008000000000000001', 'export-1', 1, 5,
   '2026-11-21T10:01:00.000000+00:00', '2026-11-21T10:01:00.000000+00:00', '2026-11-21T10:01:00.500000+00:00', '2026-11-21T10:01:01.000000+00:00',
   NULL, NULL, NULL, 'title,description' || char(10) || 'Alice''s item,"with, comma"' || char(10), 'text/csv'),
  (X'10b00000000040008000000000000002', 'send_email', 'queued', '{"to":"bob@example.com","subject":"Ünïcødé \"hi\"","html":"<p>x</p>"}', 10, NULL, NULL, 0, 5,
   '2026-11-22T08:00:00.000000+00:00', '2026-11-22T08:00:00.000000+00:00', NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (X'10b00000000040008000000000000003', 'noop', 'running', '{"sleep_ms":10}', 0, X'0f1e2d3c4b5a46978877665544332211', NULL, 1, 3,
   '2026-11-22T08:00:00.000000+00:00', '2026-11-22T08:00:00.000000+00:00', '2026-11-22T08:00:01.000000+00:00', NULL,
   'host-1-abcd', '2026-11-22T08:00:31.000000+00:00', NULL, NULL, NULL),
  (X'10b00000000040008000000000000004', 'send_email', 'failed', '{"to":"x@example.com","subject":"s","html":""}', 10, NULL, NULL, 5, 5,
   '2026-11-22T07:00:00.000000+00:00', '2026-11-22T06:00:00.000000+00:00', '2026-11-22T07:00:00.000000+00:00', '2026-11-22T07:00:01.000000+00:00',
   NULL, NULL, 'smtp: connection refused', NULL, NULL);
COMMIT;
SQL
}

# A migrated SQLite file with the seed rows, and a migrated empty Postgres
# database: sets SQLITE_DB, PG_URL and WORK.
prepare() {
  ensure_tools
  ensure_postgres
  ensure_api
  WORK="$(mk_tmp)"
  SQLITE_DB="$WORK/app.db"
  api_in "$WORK" "sqlite:$SQLITE_DB" migrate || failf "api migrate on SQLite failed"
  [[ "$(sq "$SQLITE_DB" "SELECT count(*) FROM sqlite_master WHERE name = 'jobs'")" == 1 ]] \
    || failf "the api binary has no jobs migration; rebuild it"
  seed_sqlite "$SQLITE_DB"
  new_pg_db
  PG_URL="$NEW_PG_URL"
  api_in "$WORK" "$PG_URL" migrate || failf "api migrate on Postgres failed"
}

# Canonical form of "user" and item on each side, for a diff: text as hex of
# its UTF-8 bytes (immune to how either CLI prints control characters),
# timestamps in the app's RFC 3339 form, NULL spelled out.
PG_TS="'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"'"
lite_hex() { echo "CASE WHEN $1 IS NULL THEN 'NULL' ELSE hex($1) END"; }
pg_hex() { echo "coalesce(upper(encode(convert_to($1, 'UTF8'), 'hex')), 'NULL')"; }
pg_ts_hex() { pg_hex "to_char($1 AT TIME ZONE 'UTC', $PG_TS)"; }
sqlite_users() {
  sq "$1" "SELECT lower(hex(id)), $(lite_hex email), is_active, is_superuser, $(lite_hex full_name),
                  $(lite_hex hashed_password), $(lite_hex created_at)
           FROM \"user\" ORDER BY email"
}
pg_users() {
  pgq "$1" "SELECT replace(id::text, '-', ''), $(pg_hex email), is_active::int, is_superuser::int, $(pg_hex full_name),
                   $(pg_hex hashed_password), $(pg_ts_hex created_at)
            FROM \"user\" ORDER BY email COLLATE \"C\""
}
sqlite_items() {
  sq "$1" "SELECT lower(hex(id)), lower(hex(owner_id)), $(lite_hex title), $(lite_hex description), $(lite_hex created_at)
           FROM item ORDER BY title"
}
pg_items() {
  pgq "$1" "SELECT replace(id::text, '-', ''), replace(owner_id::text, '-', ''), $(pg_hex title), $(pg_hex description),
                   $(pg_ts_hex created_at)
            FROM item ORDER BY title COLLATE \"C\""
}

case_copies_every_row_and_value() {
  trap drop_pg_dbs EXIT
  prepare
  "$COPY" "$SQLITE_DB" "$PG_URL" || failf "the copy failed"

  local table
  for table in '"user"' item jobs; do
    assert_eq "$(pgq "$PG_URL" "SELECT count(*) FROM $table")" "$(sq "$SQLITE_DB" "SELECT count(*) FROM $table")" "rows of $table"
  done
  assert_eq "$(pgq "$PG_URL" 'SELECT count(*) FROM "user"')" 3 "users copied"

  diff <(sqlite_users "$SQLITE_DB") <(pg_users "$PG_URL") || failf "\"user\" differs between SQLite and Postgres"
  diff <(sqlite_items "$SQLITE_DB") <(pg_items "$PG_URL") || failf "item differs between SQLite and Postgres"

  # Spot checks, spelled out.
  assert_eq "$(pgq "$PG_URL" "SELECT id FROM \"user\" WHERE email = 'admin@example.com'")" \
    "0f1e2d3c-4b5a-4697-8877-665544332211" "uuid formatting"
  assert_eq "$(pgq "$PG_URL" "SELECT full_name FROM \"user\" WHERE email = 'alice@example.com'")" "$TRICKY_NAME" "full_name round trip"
  assert_eq "$(pgq "$PG_URL" "SELECT full_name IS NULL FROM \"user\" WHERE email = 'admin@example.com'")" t "NULL stays NULL"
  assert_eq "$(pgq "$PG_URL" "SELECT full_name = '' FROM \"user\" WHERE email = 'bob@example.com'")" t "empty string stays empty"
  assert_eq "$(pgq "$PG_URL" "SELECT is_active FROM \"user\" WHERE email = 'bob@example.com'")" f "boolean 0"
  assert_eq "$(pgq "$PG_URL" "SELECT description FROM item WHERE title = 'Alice''s item'")" "$TRICKY_DESCRIPTION" "description round trip"
  assert_eq "$(pgq "$PG_URL" "SELECT extract(epoch FROM created_at) FROM item WHERE title = 'Alice''s item'")" \
    "1795255200.123456" "timestamp instant"

  assert_eq "$(pgq "$PG_URL" "SELECT payload ->> 'subject' FROM jobs WHERE id = '10b00000-0000-4000-8000-000000000002'")" \
    'Ünïcødé "hi"' "jsonb payload"
  assert_eq "$(pgq "$PG_URL" "SELECT jsonb_typeof(payload) FROM jobs WHERE kind = 'noop'")" object "payload is jsonb"
  assert_eq "$(pgq "$PG_URL" "SELECT owner_id IS NULL FROM jobs WHERE id = '10b00000-0000-4000-8000-000000000002'")" t "ownerless job"
  assert_eq "$(pgq "$PG_URL" "SELECT result FROM jobs WHERE idempotency_key = 'export-1'")" \
    $'title,description\nAlice\'s item,"with, comma"' "multi-line result"
  assert_eq "$(pgq "$PG_URL" "SELECT status || ' ' || attempts || '/' || max_attempts || ' ' || lease_owner || ' ' || to_char(lease_expires_at AT TIME ZONE 'UTC', 'HH24:MI:SS') FROM jobs WHERE kind = 'noop'")" \
    "running 1/3 host-1-abcd 08:00:31" "lease columns"
  assert_eq "$(pgq "$PG_URL" "SELECT last_error FROM jobs WHERE status = 'failed'")" "smtp: connection refused" "last_error"
  echo "REPORT copied user=3 item=3 jobs=4; every column of user and item identical, jobs spot-checked"
}

case_the_api_serves_the_copied_rows_from_postgres() {
  API_PID=""
  trap 'if [[ -n "$API_PID" ]]; then kill "$API_PID" 2>/dev/null; wait "$API_PID" 2>/dev/null; fi; drop_pg_dbs' EXIT
  prepare
  "$COPY" "sqlite:$SQLITE_DB" "$PG_URL" || failf "the copy failed"

  local log="$WORK/api.log" addr="" token items
  (cd "$WORK" && exec env -i PATH="$PATH" HOME="$WORK" ENVIRONMENT=local LOG_FORMAT=json LOG_LEVEL=info \
    SECRET_KEY=ops-test-secret-key-of-at-least-32-bytes DATABASE_URL="$PG_URL" \
    LISTEN_ADDR=127.0.0.1:0 METRICS_ADDR=127.0.0.1:0 "$API_BIN" serve) >"$log" 2>&1 &
  API_PID=$!
  for _ in $(seq 100); do
    addr="$(grep -o '"address":"127.0.0.1:[0-9]*"' "$log" | head -n 1 | cut -d'"' -f4)"
    [[ -n "$addr" ]] && break
    kill -0 "$API_PID" 2>/dev/null || { cat "$log"; failf "the api exited"; }
    sleep 0.1
  done
  [[ -n "$addr" ]] || { cat "$log"; failf "the api did not start listening"; }
  assert_eq "$(curl -s -o /dev/null -w '%{http_code}' "http://$addr/readyz")" 200 "/readyz on the copied database"

  token="$(curl -s "http://$addr/api/v1/login/access-token" --data-urlencode username=alice@example.com \
    --data-urlencode "password=$PASSWORD" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')" \
    || failf "login with the copied password hash failed"
  items="$(curl -s -H "Authorization: Bearer $token" "http://$addr/api/v1/items/")"
  echo "$items"
  python3 - "$items" "$TRICKY_DESCRIPTION" <<'PY' || failf "GET /api/v1/items/ does not show the copied items"
import json, sys
body, description = json.loads(sys.argv[1]), sys.argv[2]
assert body["count"] == 2, body
by_title = {item["title"]: item for item in body["data"]}
alice = by_title["Alice's item"]
assert alice["description"] == description, alice
assert alice["id"] == "17e00000-0000-4000-8000-000000000001", alice
assert alice["owner_id"] == "a11ce000-0000-4000-8000-000000000001", alice
assert alice["created_at"].startswith("2026-11-21T10:00:00.123456"), alice
assert by_title["no description"]["description"] is None
assert by_title["no description"]["created_at"] is None
PY
  assert_eq "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" \
    "http://$addr/api/v1/users/me")" 200 "GET /users/me as the copied user"
  # The first superuser was copied, not created again.
  assert_eq "$(pgq "$PG_URL" "SELECT count(*) FROM \"user\" WHERE email = 'admin@example.com'")" 1 "one admin"
  echo "REPORT the api on the copied Postgres database: readyz 200, login with a copied hash, items listed"
}

case_refuses_a_target_with_rows_unless_replace() {
  trap drop_pg_dbs EXIT
  prepare
  "$COPY" "$SQLITE_DB" "$PG_URL" || failf "the first copy failed"
  local out rc
  out="$("$COPY" "$SQLITE_DB" "$PG_URL" 2>&1)"
  rc=$?
  echo "$out"
  assert_ne "$rc" 0 "exit code of a second copy"
  [[ "$out" == *"already has rows"* ]] || failf "unexpected message"
  assert_eq "$(pgq "$PG_URL" 'SELECT count(*) FROM item')" 3 "items after the refused copy"

  sq "$SQLITE_DB" "INSERT INTO item (description, title, owner_id, id, created_at)
                   VALUES (NULL, 'added later', X'a11ce000000040008000000000000001', X'17e00000000040008000000000000009', NULL)"
  "$COPY" --replace "$SQLITE_DB" "$PG_URL" || failf "the copy with --replace failed"
  assert_eq "$(pgq "$PG_URL" 'SELECT count(*) FROM item')" 4 "items after --replace"
  assert_eq "$(pgq "$PG_URL" 'SELECT count(*) FROM "user"')" 3 "users after --replace"
}

case_a_failing_load_changes_nothing() {
  trap drop_pg_dbs EXIT
  prepare
  # An item whose owner does not exist (possible in a file written with
  # foreign keys off): Postgres refuses it, and the whole copy rolls back.
  sq "$SQLITE_DB" "PRAGMA foreign_keys = OFF; INSERT INTO item (description, title, owner_id, id, created_at)
                   VALUES (NULL, 'orphan', X'deadbeef000040008000000000000000', X'17e0000000004000800000000000000f', NULL)"
  local out rc
  out="$("$COPY" "$SQLITE_DB" "$PG_URL" 2>&1)"
  rc=$?
  echo "$out"
  assert_ne "$rc" 0 "exit code"
  [[ "$out" == *"rolled back"* ]] || failf "unexpected message"
  assert_eq "$(pgq "$PG_URL" 'SELECT (SELECT count(*) FROM "user") + (SELECT count(*) FROM item) + (SELECT count(*) FROM jobs)')" 0 \
    "rows in the target after a failed copy"
}

case_refuses_an_unmigrated_target() {
  trap drop_pg_dbs EXIT
  ensure_tools
  ensure_postgres
  ensure_api
  local work url out rc
  work="$(mk_tmp)"
  api_in "$work" "sqlite:$work/app.db" migrate || failf "api migrate on SQLite failed"
  new_pg_db
  url="$NEW_PG_URL"
  out="$("$COPY" "$work/app.db" "$url" 2>&1)"
  rc=$?
  echo "$out"
  assert_ne "$rc" 0 "exit code"
  [[ "$out" == *"api migrate"* ]] || failf "the message does not say to run api migrate"
}

run_cases "$@"
