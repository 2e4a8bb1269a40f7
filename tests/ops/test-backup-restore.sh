#!/usr/bin/env bash
# scripts/backup.sh and scripts/restore.sh for real, on SQLite and on
# Postgres: the scripts run as on the server (APP_DIR with compose/, scripts/,
# .env, current-tag) with tests/ops/fakes/docker-exec on PATH as `docker`,
# which EXECUTES what they ask of the compose project here: `compose run
# worker backup|restore` runs the debug worker binary on a temp data directory
# (the app-data volume), `compose exec postgres pg_dump|pg_restore|psql` runs
# the local Postgres tools against a temp database, and stopping or starting
# api and worker is only recorded.
#
# Each backup runs while a background writer keeps committing rows (one
# transaction per row, titles w-1, w-2, ...) into a database seeded with
# BACKUP_TEST_SEED_ROWS items (default 100000, so the backup takes long
# enough to overlap many commits). The rows committed before backup.sh is
# called are recorded; after restoring into a fresh database each of them
# must be there, the integrity checks must pass, nothing may appear that the
# source never had, and the writer's rows in the copy must be one unbroken
# prefix (a consistent snapshot). A corrupt backup must be refused with the
# target left byte for byte (SQLite) or row for row (Postgres) as it was. And
# a Postgres restore over the live database, with a client still connected,
# must swap the backup in and keep the replaced database.
#
# Needs: the debug api and worker in $CARGO_TARGET_DIR (default target/),
# built with `cargo build -p api -p worker` when missing (or API_BIN and
# WORKER_BIN), sqlite3 and the Postgres client tools (installed with apt-get when root), and for the
# Postgres cases a server at TEST_POSTGRES_URL (default
# postgres://postgres@127.0.0.1:5432/postgres) on which that role may CREATE
# DATABASE, reachable without a password; without one they are skipped, visibly.
set -uo pipefail
TEST_GROUP="backup-restore"
# shellcheck source=tests/ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PG_ADMIN_URL="${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
API_BIN="${API_BIN:-$DEBUG_BIN_DIR/api}"
WORKER_BIN="${WORKER_BIN:-$DEBUG_BIN_DIR/worker}"
SEED_ROWS="${BACKUP_TEST_SEED_ROWS:-100000}"

# The writer's user, in the formats the app writes.
OWNER_HEX=0f1e2d3c4b5a46978877665544332211
OWNER_UUID=0f1e2d3c-4b5a-4697-8877-665544332211
# shellcheck disable=SC2016 # a literal PHC string, not an expansion
HASH='$argon2id$v=19$m=65536,t=3,p=4$gwTJJOMUnZwtL8Q1IlRuqg$EmcI6p5dh917hTTtAvbFLvPyJh61ttq7LybvhMqklEc'

ensure_tools() {
  local need=()
  command -v sqlite3 >/dev/null || need+=(sqlite3)
  command -v psql >/dev/null && command -v pg_dump >/dev/null && command -v pg_restore >/dev/null || need+=(postgresql-client)
  if (( ${#need[@]} > 0 )); then apt_install "${need[@]}" || true; fi
  command -v sqlite3 >/dev/null || failf "sqlite3 is missing (apt install sqlite3)"
  command -v pg_restore >/dev/null || failf "pg_dump/pg_restore/psql are missing (apt install postgresql-client)"
  if [[ ! -x "$API_BIN" || ! -x "$WORKER_BIN" ]]; then
    echo "building api and worker ($API_BIN or $WORKER_BIN is missing)"
    (cd "$REPO_ROOT" && cargo build -q -p api -p worker) || failf "cargo build -p api -p worker failed"
  fi
  [[ -x "$API_BIN" && -x "$WORKER_BIN" ]] || failf "no api/worker binaries at $API_BIN, $WORKER_BIN"
}

ensure_postgres() {
  psql "$PG_ADMIN_URL" -X -q -At -c 'SELECT 1' >/dev/null 2>&1 \
    || skip "no Postgres reachable at TEST_POSTGRES_URL=$PG_ADMIN_URL"
}

# setup_app sqlite|postgres: a server layout in $T/app where v1 runs, the
# executing docker stand-in (and the curl stand-in for health-check.sh) first
# on PATH, and an empty app-data volume $T/data.
setup_app() {
  server_layout v1
  mkdir -p "$T/bin" "$T/data"
  if [[ "$1" == postgres ]]; then echo COMPOSE_PROFILES=postgres >>"$APP/.env"; fi
  ln -s "$FAKES_DIR/docker-exec" "$T/bin/docker"
  ln -s "$FAKES_DIR/curl" "$T/bin/curl"
  export PATH="$T/bin:$PATH" FAKE_STATE_DIR="$STATE" FAKE_DOCKER_LOG="$LOGF" FAKE_DATA_DIR="$T/data" \
    FAKE_WORKER_BIN="$WORKER_BIN" FAKE_API_BIN="$API_BIN" HEALTH_POLL_INTERVAL=0.1
  WRITER_PIDS=()
}

# The api with a clean environment, run from $T so no stray ./.env is read.
api() { # DATABASE_URL ARGS...
  local url="$1"
  shift
  (cd "$T" && env -i PATH="$PATH" HOME="$T" ENVIRONMENT=local LOG_FORMAT=json LOG_LEVEL=warn \
    SECRET_KEY=ops-test-secret-key-of-at-least-32-bytes DATABASE_URL="$url" "$API_BIN" "$@")
}

sq() { sqlite3 -batch -bail -cmd '.timeout 30000' "$1" "$2"; }
pgq() { psql "$1" -X -q -At -v ON_ERROR_STOP=1 -c "$2"; }
pg_url() { echo "${PG_ADMIN_URL%/*}/$1"; }

# Databases of this case: all named $PG_PREFIX..., dropped by cleanup.
PG_PREFIX=""
new_pg_db() { # -> NEW_PG_DB
  [[ -n "$PG_PREFIX" ]] || PG_PREFIX="bkr_$(od -An -N5 -tx1 /dev/urandom | tr -d ' \n')"
  NEW_PG_DB="${PG_PREFIX}_$1"
  pgq "$PG_ADMIN_URL" "CREATE DATABASE $NEW_PG_DB" >/dev/null || failf "CREATE DATABASE $NEW_PG_DB failed"
}
drop_pg_dbs() {
  [[ -n "$PG_PREFIX" ]] || return 0
  local name
  for name in $(psql "$PG_ADMIN_URL" -X -At -c "SELECT datname FROM pg_database WHERE datname LIKE '${PG_PREFIX}\\_%'" 2>/dev/null); do
    psql "$PG_ADMIN_URL" -X -q -c "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" >/dev/null 2>&1 || true
  done
}

WRITER_PIDS=()

# --- the background writer ---------------------------------------------------
# start_writer sqlite FILE | postgres URL: one INSERT per transaction, titles
# w-1, w-2, ..., until stop_writer. The statements go through a FIFO so both
# processes are known and can be stopped cleanly.
start_writer() {
  local kind="$1" target="$2" fifo="$T/writer.fifo"
  rm -f "$T/writer.stop"
  mkfifo "$fifo"
  if [[ "$kind" == sqlite ]]; then
    sqlite3 -batch -bail -cmd '.timeout 30000' -cmd 'PRAGMA foreign_keys = ON' "$target" <"$fifo" >"$T/writer.out" 2>"$T/writer.err" &
  else
    psql "$target" -X -q -v ON_ERROR_STOP=1 <"$fifo" >"$T/writer.out" 2>"$T/writer.err" &
  fi
  WRITER_PIDS=($!)
  local stamp
  if [[ "$kind" == sqlite ]]; then
    stamp="strftime('%%Y-%%m-%%dT%%H:%%M:%%f000+00:00', 'now')"
    local owner="X'$OWNER_HEX'" id="randomblob(16)"
  else
    stamp="now()"
    local owner="'$OWNER_UUID'" id="gen_random_uuid()"
  fi
  (
    i=0
    while [[ ! -e "$T/writer.stop" ]]; do
      i=$((i + 1))
      # shellcheck disable=SC2059 # the format is built above on purpose
      printf "INSERT INTO item (description, title, owner_id, id, created_at) VALUES (NULL, 'w-%d', $owner, $id, $stamp);\n" "$i"
    done
  ) >"$fifo" &
  WRITER_PIDS+=($!)
}
# stop_writer: lets the writer finish its last statement; fails when it died early.
stop_writer() {
  (( ${#WRITER_PIDS[@]} > 0 )) || return 0
  touch "$T/writer.stop"
  local pid rc=0 r
  for pid in "${WRITER_PIDS[@]}"; do
    wait "$pid"
    r=$?
    (( r == 0 )) || rc=$r
  done
  WRITER_PIDS=()
  if (( rc != 0 )) || [[ -s "$T/writer.err" ]]; then
    cat "$T/writer.err"
    return 1
  fi
}
# kill_writer: for the EXIT trap of a case that failed half-way.
kill_writer() {
  [[ -n "${T:-}" ]] && touch "$T/writer.stop" 2>/dev/null
  local pid
  for pid in "${WRITER_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${WRITER_PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  WRITER_PIDS=()
}
# The highest w-N committed (0 when none).
writer_seq_sqlite() { sq "$1" "SELECT coalesce(max(CAST(substr(title, 3) AS INTEGER)), 0) FROM item WHERE title LIKE 'w-%'"; }
writer_seq_pg() { pgq "$1" "SELECT coalesce(max(substr(title, 3)::int), 0) FROM item WHERE title LIKE 'w-%'"; }
wait_writer_started() { # seq-function TARGET
  local n
  for _ in $(seq 200); do
    n="$("$1" "$2")"
    (( n >= 200 )) && return 0
    sleep 0.05
  done
  cat "$T/writer.err"
  failf "the writer committed only ${n:-0} rows in 10 s"
}
# assert_unbroken_prefix FILE-of-titles: the w-N titles are exactly w-1..w-max.
assert_unbroken_prefix() {
  awk '/^w-[0-9]+$/ { n = substr($0, 3) + 0; if (n in seen) dup++; seen[n] = 1; c++; if (n > m) m = n }
       END { if (dup || c != m) { printf "writer rows: %d distinct of w-1..w-%d, %d duplicates\n", c, m, dup; exit 1 } }' "$1" \
    || failf "the writer's rows in the restored database are not one consistent prefix"
}
# Every item as id|title, in the text each backend gives its ids.
item_rows_sqlite() { sq "$1" "SELECT lower(hex(id)) || '|' || title FROM item"; }
item_rows_pg() { psql "$1" -X -q -At -F'|' -v ON_ERROR_STOP=1 -c "SELECT id::text, title FROM item"; }
# The highest w-N in a file of id|title rows (0 when none).
max_writer_seq() { cut -d'|' -f2 "$1" | awk -F- '/^w-/ && $2 > m { m = $2 } END { print m + 0 }'; }

# backup_under_load sqlite|pg TARGET: with the writer committing into
# TARGET, records every row committed so far ($T/before.rows, BEFORE_SEQ,
# BEFORE_N), runs backup.sh (BACKUP, BACKUP_MS), then stops the writer and
# checks it committed while backup.sh ran (AFTER_SEQ).
backup_under_load() {
  local kind="$1" target="$2"
  "item_rows_$kind" "$target" >"$T/before.rows" || failf "reading the rows before the backup"
  BEFORE_SEQ="$(max_writer_seq "$T/before.rows")"
  BEFORE_N="$(wc -l <"$T/before.rows")"
  local t0
  t0="$(date +%s%3N)"
  BACKUP="$("$APP/scripts/backup.sh" 2>"$T/backup.err")" || { cat "$T/backup.err"; failf "backup.sh failed"; }
  BACKUP_MS=$(( $(date +%s%3N) - t0 ))
  AFTER_SEQ="$("writer_seq_$kind" "$target")"
  stop_writer || failf "the writer failed"
  cat "$T/backup.err"
  echo "backup: $BACKUP"
  (( AFTER_SEQ > BEFORE_SEQ )) || failf "the writer committed nothing while backup.sh ran ($BEFORE_SEQ -> $AFTER_SEQ)"
}

# assert_restored_rows sqlite|pg SOURCE RESTORED: the restore holds every row
# committed before the backup, none the source never had, and the writer's
# rows as one unbroken prefix, w-1..w-RESTORED_SEQ.
assert_restored_rows() {
  local kind="$1" ids
  "item_rows_$kind" "$2" >"$T/source.rows" || failf "reading the source's rows"
  "item_rows_$kind" "$3" >"$T/restored.rows" || failf "reading the restored rows"
  for ids in before source restored; do cut -d'|' -f1 "$T/$ids.rows" | sort >"$T/$ids.ids"; done
  assert_eq "$(comm -23 "$T/before.ids" "$T/restored.ids" | wc -l)" 0 "rows committed before the backup that are missing from the restore"
  assert_eq "$(comm -13 "$T/source.ids" "$T/restored.ids" | wc -l)" 0 "restored rows the source never had"
  cut -d'|' -f2 "$T/restored.rows" | awk '/^w-/' >"$T/restored.titles"
  assert_unbroken_prefix "$T/restored.titles"
  RESTORED_SEQ="$(max_writer_seq "$T/restored.rows")"
}

# --- SQLite ------------------------------------------------------------------
seed_sqlite() { # FILE ROWS
  sqlite3 -batch -bail "$1" <<SQL || failf "seeding $1 failed"
PRAGMA foreign_keys = ON;
BEGIN;
INSERT INTO "user" (email, is_active, is_superuser, full_name, hashed_password, id, created_at)
  VALUES ('writer@example.com', 1, 0, 'Background Writer', '$HASH', X'$OWNER_HEX', '2026-11-22T08:00:00.000001+00:00');
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $2)
INSERT INTO item (description, title, owner_id, id, created_at)
  SELECT printf('%.200c', 'x'), 'seed-' || i, X'$OWNER_HEX', randomblob(16), strftime('%Y-%m-%dT%H:%M:%f000+00:00', 'now') FROM n;
COMMIT;
SQL
}
# A migrated, seeded SQLite database on the app-data volume: $T/data/app.db.
prepare_sqlite() { # ROWS
  setup_app sqlite
  DB="$T/data/app.db"
  api "sqlite:$DB" migrate || failf "api migrate on SQLite failed"
  seed_sqlite "$DB" "$1"
}
# Every file of a directory with its checksum.
dir_fingerprint() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum); }

case_1_sqlite_backup_under_write_load_then_restore_into_a_fresh_file() {
  trap kill_writer EXIT
  ensure_tools
  prepare_sqlite "$SEED_ROWS"

  start_writer sqlite "$DB"
  wait_writer_started writer_seq_sqlite "$DB"
  backup_under_load sqlite "$DB"
  local backup="$BACKUP"
  [[ "$backup" == "$APP/backups/app-"*.db && -f "$backup" ]] || failf "backup.sh printed '$backup', not a file in $APP/backups"
  assert_file_contains "$LOGF" "EVENT run worker: $WORKER_BIN backup"
  local source_n
  source_n="$(sq "$DB" 'SELECT count(*) FROM item')"

  # Restore into a fresh app-data volume: nothing at /data/app.db yet.
  mkdir -p "$T/data-restored"
  export FAKE_DATA_DIR="$T/data-restored"
  ops restore --yes "$backup"
  assert_eq "$RC" 0 "restore.sh exit code"
  local R="$T/data-restored/app.db"
  [[ -f "$R" ]] || failf "nothing restored at $R"
  assert_order "$LOGF" "EVENT stop api" "EVENT run worker: $WORKER_BIN restore $(dirname "$backup")/"
  assert_order "$LOGF" "EVENT stop worker" "EVENT run worker: $WORKER_BIN restore"
  assert_order "$LOGF" "EVENT run worker exited 0" "EVENT up api"
  assert_file_contains "$T/out" "into /data/app.db (integrity ok)"
  assert_file_contains "$T/out" "RESTORED $backup (sqlite)"

  assert_eq "$(sq "$R" 'PRAGMA integrity_check')" ok "PRAGMA integrity_check of the restored database"
  assert_eq "$(sq "$R" 'PRAGMA foreign_key_check')" "" "PRAGMA foreign_key_check of the restored database"
  local restored_n
  restored_n="$(sq "$R" 'SELECT count(*) FROM item')"
  assert_file_contains "$T/out" "item: $restored_n rows"
  assert_file_contains "$T/out" "user: 1 rows"
  assert_restored_rows sqlite "$DB" "$R"
  # The api takes the restored file as its own: migrations recorded and intact.
  api "sqlite:$R" migrate || failf "api migrate refuses the restored database"
  assert_eq "$(sq "$DB" 'SELECT count(*) FROM item')" "$source_n" "the source database after the restore"
  echo "REPORT SQLite: seed $SEED_ROWS items; $BEFORE_N items committed before backup.sh; writer committed $((AFTER_SEQ - BEFORE_SEQ)) rows while backup.sh ran ($BACKUP_MS ms), $((RESTORED_SEQ - BEFORE_SEQ)) of them inside the snapshot; source ended with $source_n, restored file has $restored_n items (all $BEFORE_N earlier ones, w-1..w-$RESTORED_SEQ unbroken), integrity_check ok, foreign_key_check clean"
}

case_3_sqlite_restore_refuses_a_corrupt_backup_and_keeps_the_database() {
  ensure_tools
  prepare_sqlite 3000
  local good
  good="$("$APP/scripts/backup.sh" 2>"$T/backup.err")" || { cat "$T/backup.err"; failf "backup.sh failed"; }
  local bad="$T/bad"
  mkdir -p "$bad"
  # Pages in the middle of the item table overwritten; the header still says SQLite.
  cp "$good" "$bad/app-20261101T000000.000Z.db"
  dd if=/dev/urandom of="$bad/app-20261101T000000.000Z.db" bs=4096 seek=40 count=8 conv=notrunc status=none
  # Half a file, as left by a failed copy.
  head -c "$(( $(stat -c %s "$good") / 2 ))" "$good" >"$bad/app-20261102T000000.000Z.db"
  # Not a database at all.
  head -c 65536 /dev/urandom >"$bad/app-20261103T000000.000Z.db"

  sq "$DB" "INSERT INTO item (description, title, owner_id, id, created_at) VALUES (NULL, 'after the backup', X'$OWNER_HEX', randomblob(16), NULL)"
  local before count f refused=()
  before="$(dir_fingerprint "$T/data")"
  count="$(sq "$DB" 'SELECT count(*) FROM item')"
  for f in "$bad"/*.db; do
    : >"$LOGF"
    ops restore --yes "$f"
    assert_ne "$RC" 0 "restore.sh exit code for $(basename "$f")"
    assert_file_contains "$T/out" "integrity check failed"
    assert_file_contains "$T/out" "the previous database is still in place"
    assert_file_lacks "$T/out" "RESTORED"
    assert_order "$LOGF" "EVENT stop api" "EVENT run worker exited 1"
    assert_order "$LOGF" "EVENT run worker exited 1" "EVENT up api"
    assert_eq "$(dir_fingerprint "$T/data")" "$before" "the data volume after refusing $(basename "$f")"
    refused+=("$(basename "$f"): $(grep -m1 -o 'integrity check failed: [^"]*' "$T/out" | sed 's|: /[^:]*: |: |')")
  done
  assert_eq "$(sq "$DB" 'SELECT count(*) FROM item')" "$count" "rows after the refused restores"
  assert_eq "$(sq "$DB" 'PRAGMA integrity_check')" ok "integrity of the kept database"
  assert_eq "$(awk '$2 == "api" || $2 == "worker" { print $4 }' "$STATE/containers" | sort -u)" running "api and worker restarted"
  echo "REPORT SQLite: 3 corrupt backups refused (pages overwritten, truncated, random bytes); app.db and its directory byte-identical ($count items), api and worker started again"
  printf 'REPORT   %s\n' "${refused[@]}"
}

# --- Postgres ----------------------------------------------------------------
seed_pg() { # URL ROWS
  psql "$1" -X -q -v ON_ERROR_STOP=1 >/dev/null <<SQL || failf "seeding $1 failed"
BEGIN;
INSERT INTO "user" (email, is_active, is_superuser, full_name, hashed_password, id, created_at)
  VALUES ('writer@example.com', true, false, 'Background Writer', '$HASH', '$OWNER_UUID', now());
INSERT INTO item (description, title, owner_id, id, created_at)
  SELECT repeat('x', 200), 'seed-' || i, '$OWNER_UUID', gen_random_uuid(), now() FROM generate_series(1, $2) AS i;
COMMIT;
SQL
}
# A migrated, seeded database, the one the postgres container serves:
# SRC (name) and SRC_URL; FAKE_PG_DB points at it.
prepare_pg() { # ROWS
  setup_app postgres
  new_pg_db live
  SRC="$NEW_PG_DB"
  SRC_URL="$(pg_url "$SRC")"
  api "$SRC_URL" migrate || failf "api migrate on Postgres failed"
  seed_pg "$SRC_URL" "$1"
  export FAKE_PG_DB="$SRC" FAKE_PG_USER="${PG_ADMIN_URL#*://}"
  FAKE_PG_USER="${FAKE_PG_USER%%[@:/]*}"
}
# The schema, from the catalogs: columns (type, nullability, default),
# indexes, and constraints (their definitions, except CHECK expressions,
# which Postgres deparses differently after a dump and restore).
pg_schema() {
  pgq "$1" "SELECT table_name, column_name, data_type, is_nullable, coalesce(column_default, '')
            FROM information_schema.columns WHERE table_schema = 'public' ORDER BY table_name COLLATE \"C\", column_name COLLATE \"C\"" &&
  pgq "$1" "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname COLLATE \"C\"" &&
  pgq "$1" "SELECT conrelid::regclass::text AS tbl, conname, contype, CASE WHEN contype = 'c' THEN '' ELSE pg_get_constraintdef(oid) END, convalidated
            FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY tbl COLLATE \"C\", conname COLLATE \"C\""
}

case_2_postgres_backup_under_write_load_then_restore_into_a_fresh_database() {
  trap 'kill_writer; drop_pg_dbs' EXIT
  ensure_tools
  ensure_postgres
  prepare_pg "$SEED_ROWS"

  start_writer postgres "$SRC_URL"
  wait_writer_started writer_seq_pg "$SRC_URL"
  backup_under_load pg "$SRC_URL"
  local backup="$BACKUP"
  [[ "$backup" == "$APP/backups/pg-"*.dump && -s "$backup" ]] || failf "backup.sh printed '$backup', not a dump in $APP/backups"
  assert_eq "$(head -c 5 "$backup")" PGDMP "custom-format archive"
  assert_file_contains "$LOGF" "EVENT exec postgres sh -c exec pg_dump -Fc"
  assert_file_contains "$LOGF" "EVENT exec postgres pg_restore --list"
  local source_n
  source_n="$(pgq "$SRC_URL" 'SELECT count(*) FROM item')"

  # Restore on a fresh server: its postgres container has an empty POSTGRES_DB.
  new_pg_db fresh
  local DST="$NEW_PG_DB" DST_URL
  DST_URL="$(pg_url "$DST")"
  export FAKE_PG_DB="$DST"
  ops restore --yes "$backup"
  assert_eq "$RC" 0 "restore.sh exit code"
  assert_order "$LOGF" "EVENT exec postgres pg_restore -U $FAKE_PG_USER -d ${DST}_restore --no-owner --exit-on-error --single-transaction" "EVENT stop api"
  assert_order "$LOGF" "EVENT stop worker" "EVENT exec postgres psql -X -q -v ON_ERROR_STOP=1 -U $FAKE_PG_USER -d postgres --single-transaction"
  assert_order "$LOGF" "EVENT stop worker" "EVENT up api"
  assert_file_contains "$LOGF" "count-rows --database ${DST}_restore"
  assert_file_contains "$T/out" "RESTORED $backup (postgres)"
  assert_eq "$(pgq "$PG_ADMIN_URL" "SELECT count(*) FROM pg_database WHERE datname LIKE '${DST}\\_pre\\_restore\\_%'")" 1 "the replaced (empty) database is kept"

  local restored_n
  restored_n="$(pgq "$DST_URL" 'SELECT count(*) FROM item')"
  grep -Eq "^item +$restored_n\$" "$T/out" || failf "restore.sh did not print item $restored_n"
  grep -Eq '^user +1$' "$T/out" || failf "restore.sh did not print user 1"
  assert_restored_rows pg "$SRC_URL" "$DST_URL"
  # Integrity: the same schema (tables, keys, indexes, constraints) as the
  # source, no orphans, the same recorded migrations, and the api accepts it.
  (( $(pg_schema "$SRC_URL" | wc -l) > 40 )) || failf "reading the schema of $SRC_URL"
  diff <(pg_schema "$SRC_URL") <(pg_schema "$DST_URL") || failf "the restored schema differs from the source"
  assert_eq "$(pgq "$DST_URL" 'SELECT count(*) FROM item i LEFT JOIN "user" u ON u.id = i.owner_id WHERE u.id IS NULL')" 0 "orphan items"
  diff <(pgq "$SRC_URL" "SELECT version, encode(checksum, 'hex'), success FROM _sqlx_migrations ORDER BY version") \
    <(pgq "$DST_URL" "SELECT version, encode(checksum, 'hex'), success FROM _sqlx_migrations ORDER BY version") \
    || failf "recorded migrations differ"
  api "$DST_URL" migrate || failf "api migrate refuses the restored database"
  echo "REPORT Postgres: seed $SEED_ROWS items; $BEFORE_N items committed before backup.sh; writer committed $((AFTER_SEQ - BEFORE_SEQ)) rows while backup.sh ran ($BACKUP_MS ms), $((RESTORED_SEQ - BEFORE_SEQ)) of them inside pg_dump's snapshot; source ended with $source_n, restored database has $restored_n items (all $BEFORE_N earlier ones, w-1..w-$RESTORED_SEQ unbroken), schema identical, no orphans"
}

case_4_postgres_restore_refuses_a_corrupt_dump_and_keeps_the_database() {
  trap drop_pg_dbs EXIT
  ensure_tools
  ensure_postgres
  prepare_pg 3000
  local good
  good="$("$APP/scripts/backup.sh" 2>"$T/backup.err")" || { cat "$T/backup.err"; failf "backup.sh failed"; }
  local bad="$T/bad"
  mkdir -p "$bad"
  # Half an archive: its table of contents is intact, its data is not.
  head -c "$(( $(stat -c %s "$good") / 2 ))" "$good" >"$bad/pg-20261101T000000Z.dump"
  # Not an archive at all.
  head -c 65536 /dev/urandom >"$bad/pg-20261102T000000Z.dump"

  pgq "$SRC_URL" "INSERT INTO item (description, title, owner_id, id, created_at) VALUES (NULL, 'after the backup', '$OWNER_UUID', gen_random_uuid(), NULL)" >/dev/null
  local fp_sql='SELECT count(*) || $$ $$ || md5(string_agg(id::text || title || coalesce(description, $$$$), $$,$$ ORDER BY id)) FROM item'
  local before f refused=()
  before="$(pgq "$SRC_URL" "$fp_sql")"
  for f in "$bad"/*.dump; do
    : >"$LOGF"
    ops restore --yes "$f"
    assert_ne "$RC" 0 "restore.sh exit code for $(basename "$f")"
    assert_file_lacks "$T/out" "RESTORED"
    assert_file_lacks "$LOGF" "EVENT stop"
    assert_eq "$(pgq "$SRC_URL" "$fp_sql")" "$before" "rows of the live database after refusing $(basename "$f")"
    assert_eq "$(pgq "$PG_ADMIN_URL" "SELECT count(*) FROM pg_database WHERE datname LIKE '${SRC}\\_pre\\_restore\\_%'")" 0 "no swap happened"
    refused+=("$(basename "$f"): $(grep -o 'ERROR: .*' "$T/out" | head -n 1)")
  done
  assert_eq "$(awk '$2 == "api" || $2 == "worker" { print $4 }' "$STATE/containers" | sort -u)" running "api and worker never stopped"
  echo "REPORT Postgres: 2 corrupt dumps refused (truncated, random bytes) before api and worker were stopped; the live database unchanged ($before)"
  printf 'REPORT   %s\n' "${refused[@]}"
}

case_5_postgres_restore_over_the_live_database_keeps_the_old_one() {
  STRAGGLER=""
  trap 'if [[ -n "$STRAGGLER" ]]; then kill "$STRAGGLER" 2>/dev/null; wait "$STRAGGLER" 2>/dev/null; fi; drop_pg_dbs' EXIT
  ensure_tools
  ensure_postgres
  prepare_pg 3000
  local backup
  backup="$("$APP/scripts/backup.sh" 2>"$T/backup.err")" || { cat "$T/backup.err"; failf "backup.sh failed"; }
  pgq "$SRC_URL" "SELECT id::text FROM item" | sort >"$T/backup.ids"
  pgq "$SRC_URL" "INSERT INTO item (description, title, owner_id, id, created_at)
                  SELECT NULL, 'after the backup ' || i, '$OWNER_UUID', gen_random_uuid(), now() FROM generate_series(1, 25) AS i" >/dev/null
  # A client still connected to the database (restore.sh must disconnect it).
  psql "$SRC_URL" -X -q -c 'SELECT pg_sleep(120)' >"$T/straggler.out" 2>&1 &
  STRAGGLER=$!
  for _ in $(seq 100); do
    [[ "$(pgq "$PG_ADMIN_URL" "SELECT count(*) FROM pg_stat_activity WHERE datname = '$SRC' AND query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()")" == 1 ]] && break
    sleep 0.05
  done
  ops restore --yes "$backup"
  assert_eq "$RC" 0 "restore.sh exit code"
  wait "$STRAGGLER"
  STRAGGLER=""
  assert_file_contains "$T/straggler.out" "terminat"
  local old
  old="$(pgq "$PG_ADMIN_URL" "SELECT datname FROM pg_database WHERE datname LIKE '${SRC}\\_pre\\_restore\\_%'")"
  [[ -n "$old" ]] || failf "the replaced database was not kept"
  diff "$T/backup.ids" <(pgq "$SRC_URL" "SELECT id::text FROM item" | sort) >/dev/null || failf "$SRC does not hold exactly the backup's rows"
  assert_eq "$(pgq "$(pg_url "$old")" "SELECT count(*) FROM item WHERE title LIKE 'after the backup %'")" 25 "rows after the backup, in the kept database"
  assert_eq "$(pgq "$SRC_URL" "SELECT count(*) FROM item WHERE title LIKE 'after the backup %'")" 0 "rows after the backup, in the restored database"
  api "$SRC_URL" migrate || failf "api migrate refuses the restored database"
  echo "REPORT Postgres in place: $(wc -l <"$T/backup.ids") items restored over the live database with a client connected (disconnected by restore.sh); the replaced database kept as $old with the 25 later rows"
}

run_cases "$@"
