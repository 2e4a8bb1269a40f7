#!/usr/bin/env bash
# sqlite-to-postgres.sh [--replace] SQLITE_FILE POSTGRES_URL
#
# Copies the rows of "user", item and jobs from a SQLite database of this stack
# into a Postgres database that `api migrate` has already brought to the same
# schema version. Everything is loaded in ONE Postgres transaction: either all
# rows arrive (and the row counts are checked before COMMIT) or none do.
#
#   SQLITE_FILE    the SQLite file (a path, or a sqlite: URL such as
#                  sqlite:///data/app.db). Stop the api and the worker first, or
#                  copy from a backup taken with `worker backup`: the rows are
#                  read in one read transaction, so the copy is consistent, but
#                  anything written after it starts is not copied.
#   POSTGRES_URL   postgres:// or postgresql:// URL of the target. Leave the
#                  password out and use PGPASSWORD or ~/.pgpass to keep it off
#                  the command line.
#   --replace      empty jobs, item and "user" in the target first (in the same
#                  transaction). Without it, a target that already has rows in
#                  any of these tables is refused (e.g. the first superuser an
#                  `api serve` created: run `api migrate`, not `api serve`,
#                  against the target before copying).
#
# Values (the formats the app writes, see migrations/sqlite/): UUIDs are
# 16-byte BLOBs and become uuid; timestamps are RFC 3339 TEXT and become
# timestamptz (a timestamp without an offset is read as UTC); booleans 0/1
# become boolean; JSON TEXT becomes jsonb. Every value travels as hex of its
# bytes (sqlite3 hex() -> COPY into a temporary table -> decode() and a cast
# to the target column's type), so quotes, commas, backslashes, newlines and
# non-ASCII text arrive unchanged whatever the sqlite3 CLI's output settings.
# Columns are matched by name and converted by the target's column types, so
# a migration that adds a column to both backends needs no change here; a
# column present in SQLite but missing in Postgres stops the copy.
#
# Not copied: the workers and schedule_slots tables (runtime state the worker
# recreates) and _sqlx_migrations (the target has its own from `api migrate`).
#
# Needs: sqlite3 (apt install sqlite3) and psql (apt install postgresql-client).
# Exit codes: 0 copied; 1 failed (the target is unchanged); 2 usage.
set -euo pipefail

log() { printf 'sqlite-to-postgres: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
usage() { echo "usage: $(basename "$0") [--replace] SQLITE_FILE POSTGRES_URL" >&2; exit 2; }

replace=0
while (( $# > 0 )); do
  case "$1" in
    --replace) replace=1; shift ;;
    -h|--help) sed -n '2,38p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --) shift; break ;;
    -*) echo "unknown option: $1" >&2; usage ;;
    *) break ;;
  esac
done
(( $# == 2 )) || usage
source_arg="$1"
target_url="$2"

command -v sqlite3 >/dev/null || die "sqlite3 is not installed (apt install sqlite3)"
command -v psql >/dev/null || die "psql is not installed (apt install postgresql-client)"

# sqlite:///data/app.db, sqlite://./x.db, sqlite:./x.db or a plain path; query
# parameters (?mode=ro) are dropped.
sqlite_file="$source_arg"
case "$sqlite_file" in
  sqlite://*) sqlite_file="${sqlite_file#sqlite://}" ;;
  sqlite:*) sqlite_file="${sqlite_file#sqlite:}" ;;
esac
sqlite_file="${sqlite_file%%\?*}"
[[ -f "$sqlite_file" && -r "$sqlite_file" ]] || die "no readable SQLite file '$sqlite_file'"
[[ "$target_url" =~ ^postgres(ql)?:// ]] || die "POSTGRES_URL must start with postgres:// or postgresql://"

export PGCLIENTENCODING=UTF8
lite() { sqlite3 -batch -bail -noheader -list "$sqlite_file" "$@"; }
pg() { psql "$target_url" -X -q -At -v ON_ERROR_STOP=1 "$@"; }

work="$(mktemp -d "${TMPDIR:-/tmp}/sqlite-to-postgres.XXXXXX")"
trap 'rm -rf "$work"' EXIT
[[ "$work" =~ ^[A-Za-z0-9._/-]+$ ]] || die "temporary directory path has unexpected characters: $work"

# ---- checks on the source ----------------------------------------------------
log "checking $sqlite_file (PRAGMA integrity_check)"
integrity="$(lite 'PRAGMA integrity_check;' 2>&1)" || die "cannot read $sqlite_file: $integrity"
[[ "$integrity" == ok ]] || die "$sqlite_file fails the integrity check: $(head -n 3 <<<"$integrity")"

lite_has_table() { [[ "$(lite "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '$1';")" == 1 ]]; }
lite_has_table user || die "$sqlite_file has no \"user\" table: is it a database of this stack?"

# ---- checks on the target ------------------------------------------------------
log "checking the target database"
pg -c 'SELECT 1' >/dev/null || die "cannot connect to the target database (see the psql error above)"
pg_has_table() { [[ "$(pg -c "SELECT to_regclass(format('%I.%I', current_schema(), '$1')) IS NOT NULL")" == t ]]; }
if ! pg_has_table _sqlx_migrations || ! pg_has_table user; then
  die "the target has no schema yet: run \`api migrate\` with DATABASE_URL set to it first"
fi

# Both migration folders use the same version numbers: every version applied
# to the source must be applied to the target.
lite_versions="$(lite 'SELECT version FROM _sqlx_migrations WHERE success ORDER BY version;' 2>/dev/null || true)"
pg_versions="$(pg -c 'SELECT version FROM _sqlx_migrations WHERE success ORDER BY version')"
missing="$(comm -23 <(sed '/^$/d' <<<"$lite_versions" | sort) <(sed '/^$/d' <<<"$pg_versions" | sort) | tr '\n' ' ')"
[[ -z "${missing// /}" ]] \
  || die "the target lacks migration(s) ${missing% } applied to the source: run \`api migrate\` of the same release against it first"

tables=(user item)
if lite_has_table jobs; then
  pg_has_table jobs || die "the source has a jobs table but the target does not: run \`api migrate\` of the same release first"
  tables+=(jobs)
fi

quote_ident() { printf '"%s"' "$1"; }

# ---- per table: columns, the SQLite export query, the Postgres insert --------------
# Export: one line per row, one field per column, each the hex of the value's
# bytes or N for NULL (N is not a hex digit, and an empty field is an empty
# string). Import: COPY (text format) into a temporary table of text columns,
# then INSERT ... SELECT with decode() and a cast to each column's type.
declare -A export_sql import_sql
for table in "${tables[@]}"; do
  declare -A pg_type=()
  while IFS='|' read -r name type; do
    [[ -n "$name" ]] && pg_type[$name]="$type"
  done < <(pg -F '|' -c "SELECT a.attname, format_type(a.atttypid, a.atttypmod)
                          FROM pg_attribute a
                          WHERE a.attrelid = to_regclass(format('%I.%I', current_schema(), '$table'))
                            AND a.attnum > 0 AND NOT a.attisdropped
                          ORDER BY a.attnum")
  mapfile -t lite_cols < <(lite "SELECT name FROM pragma_table_info('$table') ORDER BY cid;")
  (( ${#lite_cols[@]} > 0 )) || die "cannot read the columns of $table in the source"

  exports=()
  targets=()
  converts=()
  staging=()
  for col in "${lite_cols[@]}"; do
    [[ "$col" =~ ^[a-z_][a-z0-9_]*$ ]] || die "unexpected column name '$col' in $table"
    [[ -n "${pg_type[$col]+x}" ]] || die "column $table.$col exists in the source but not in the target: its data would be lost"
    type="${pg_type[$col]}"
    [[ "$type" =~ ^[a-z0-9\ ,()]+$ ]] || die "unexpected type '$type' of $table.$col in the target"
    c="$(quote_ident "$col")"
    case "$type" in
      uuid)
        # A 16-byte BLOB is the uuid's bytes: its hex is the uuid without
        # hyphens, which Postgres reads as a uuid. Anything else is taken as
        # the uuid's text.
        exports+=("CASE WHEN $c IS NULL THEN 'N' WHEN typeof($c) = 'blob' AND length($c) = 16 THEN hex($c) ELSE hex(CAST($c AS TEXT)) END")
        converts+=("CASE WHEN length($c) = 32 THEN $c::uuid ELSE convert_from(decode($c, 'hex'), 'UTF8')::uuid END") ;;
      bytea)
        exports+=("CASE WHEN $c IS NULL THEN 'N' ELSE hex($c) END")
        converts+=("decode($c, 'hex')") ;;
      *)
        # text, varchar, jsonb, timestamptz, boolean (0/1), integers: the
        # UTF-8 text of the value, cast to the column's type.
        exports+=("CASE WHEN $c IS NULL THEN 'N' ELSE hex(CAST($c AS TEXT)) END")
        converts+=("convert_from(decode($c, 'hex'), 'UTF8')::$type") ;;
    esac
    targets+=("$c")
    staging+=("$c text")
  done
  for col in "${!pg_type[@]}"; do
    if ! printf '%s\n' "${lite_cols[@]}" | grep -qxF -- "$col"; then
      log "note: $table.$col exists only in the target; it gets its column default"
    fi
  done
  unset pg_type

  joined="${exports[0]}"
  for ((i = 1; i < ${#exports[@]}; i++)); do
    joined+=" || ',' || ${exports[$i]}"
  done
  export_sql[$table]="SELECT $joined FROM $(quote_ident "$table");"
  stage="$(quote_ident "s2p_$table")"
  import_sql[$table]="CREATE TEMP TABLE $stage ($(IFS=,; echo "${staging[*]}")) ON COMMIT DROP;
\\copy $stage FROM '$work/$table.hex' WITH (FORMAT text, DELIMITER ',', NULL 'N')
INSERT INTO $(quote_ident "$table") ($(IFS=,; echo "${targets[*]}")) SELECT $(IFS=,; echo "${converts[*]}") FROM $stage;"
done

# ---- the target must be empty (or emptied with --replace) --------------------------
nonempty=()
for table in "${tables[@]}"; do
  n="$(pg -c "SELECT count(*) FROM $(quote_ident "$table")")"
  (( n == 0 )) || nonempty+=("$table=$n")
done
if (( ${#nonempty[@]} > 0 && replace == 0 )); then
  die "the target already has rows (${nonempty[*]}); give --replace to empty these tables first, or use a fresh database"
fi
truncate=()
for table in jobs item user; do
  if pg_has_table "$table"; then
    truncate+=("$(quote_ident "$table")")
  fi
done

# ---- export: one read transaction, so all files are one snapshot -------------------
log "reading ${tables[*]} from $sqlite_file"
{
  echo "BEGIN;"
  for table in "${tables[@]}"; do
    echo ".output '$work/$table.count'"
    echo "SELECT count(*) FROM $(quote_ident "$table");"
    echo ".output '$work/$table.hex'"
    echo "${export_sql[$table]}"
  done
  echo ".output stdout"
  echo "COMMIT;"
} | sqlite3 -batch -bail -noheader -list "$sqlite_file" || die "reading $sqlite_file failed"

declare -A expected
for table in "${tables[@]}"; do
  expected[$table]="$(tr -d '[:space:]' <"$work/$table.count")"
  [[ "${expected[$table]}" =~ ^[0-9]+$ ]] || die "could not count the rows of $table in the source"
done

# ---- load: one transaction, counts checked before COMMIT ----------------------------
{
  echo "SET TIME ZONE 'UTC';"
  if (( replace == 1 )); then
    # All at once and without CASCADE: a table this script does not know
    # about that references "user" makes the load fail instead of being emptied.
    echo "TRUNCATE $(IFS=,; echo "${truncate[*]}");"
  fi
  # Parents first: item and jobs reference "user".
  for table in "${tables[@]}"; do
    echo "${import_sql[$table]}"
  done
  for table in "${tables[@]}"; do
    cat <<SQL
DO \$check\$
DECLARE found bigint;
BEGIN
  SELECT count(*) INTO found FROM $(quote_ident "$table");
  IF found <> ${expected[$table]} THEN
    RAISE EXCEPTION '$table: % rows in the target after the copy, ${expected[$table]} in the source; nothing was committed', found;
  END IF;
END
\$check\$;
SQL
  done
  for table in "${tables[@]}"; do
    echo "ANALYZE $(quote_ident "$table");"
  done
} >"$work/load.sql"

how="in one transaction"
if (( replace == 1 )); then how+=", replacing the rows of ${truncate[*]}"; fi
log "loading into the target $how"
pg --single-transaction -f "$work/load.sql" >/dev/null || die "the load failed and was rolled back; the target is unchanged"

summary=()
for table in "${tables[@]}"; do
  summary+=("$table=${expected[$table]}")
done
log "copied ${summary[*]}"
