#!/usr/bin/env bash
# restore.sh [--yes] FILE: replace the production database with a backup.
#
# Stops api and worker first (graceful: compose honours stop_grace_period), then
#  SQLite:   docker compose run --rm worker restore FILE  (FILE's directory is
#            mounted read-only at /restore). The worker integrity-checks the file,
#            prints the row counts of "user", item and jobs and atomically
#            replaces the database file.
#  Postgres: checks the dump (pg_restore --list), restores it into a fresh
#            database <db>_restore (--exit-on-error --single-transaction), prints
#            the row counts of "user", item and jobs there (worker count-rows), then swaps it in by
#            renaming: <db> becomes <db>_pre_restore_<UTC time> (kept; drop it
#            yourself when satisfied) and <db>_restore becomes <db>.
# then starts api and worker again on the running tag and checks /readyz
# through Caddy. On a failed restore the old database is left in place and
# the services are started on it again; exit 1.
# Asks for confirmation on a terminal unless --yes is given.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_TAG=restore

assume_yes=0
if [[ "${1:-}" == --yes ]]; then assume_yes=1; shift; fi
[[ $# -eq 1 ]] || { echo "usage: $0 [--yes] BACKUP_FILE" >&2; exit 2; }
file="$1"
[[ -f "$file" && -r "$file" ]] || die "no readable file '$file'"
file="$(cd "$(dirname "$file")" && pwd)/$(basename "$file")"

export_compose_env
tag="$(current_tag || true)"
if [[ -n "$tag" ]]; then
  export IMAGE_TAG="$tag"
fi
kind="$(db_kind)"

if [[ "$assume_yes" != 1 && -t 0 ]]; then
  read -r -p "Replace the $kind database of project '$COMPOSE_PROJECT' with $file? api and worker will stop. [y/N] " answer
  [[ "$answer" == [yY]* ]] || die "cancelled"
fi

# Only one of deploy/rollback/restore at a time.
exec 9>>"$LOCK_FILE"
flock -w "$(env_get DEPLOY_LOCK_TIMEOUT 900)" 9 || die "a deploy holds $LOCK_FILE; try again later"

start_services() {
  log "starting api and worker${IMAGE_TAG:+ on $IMAGE_TAG}"
  dc up -d --no-deps api worker
}

stopped=0
on_exit() {
  local rc=$?
  if [[ "$stopped" == 1 && $rc -ne 0 ]]; then
    log "restore failed; the previous database is still in place. Restarting api and worker on it."
    start_services || log "could not restart api and worker: run 'docker compose -p $COMPOSE_PROJECT up -d api worker'"
  fi
}
trap on_exit EXIT

stop_services() {
  log "stopping api and worker"
  dc stop api worker
  stopped=1
}

case "$kind" in
  sqlite)
    stop_services
    log "restoring $file via the worker (integrity check and row counts first)"
    out="$(dc run --rm --no-deps -T -v "$(dirname "$file"):/restore:ro" worker restore "/restore/$(basename "$file")" 2>&1)" || {
      printf '%s\n' "$out" >&2
      die "worker restore failed"
    }
    printf '%s\n' "$out"
    ;;
  postgres)
    dc exec -T postgres pg_restore --list <"$file" >/dev/null || die "$file is not a readable pg_dump -Fc archive"
    # shellcheck disable=SC2016 # expanded inside the container
    mapfile -t ids < <(dc exec -T postgres sh -c 'printf "%s\n%s\n" "$POSTGRES_USER" "${POSTGRES_DB:-$POSTGRES_USER}"')
    pg_user="${ids[0]:-}"
    db="${ids[1]:-}"
    [[ "$pg_user" =~ ^[A-Za-z0-9_]+$ && "$db" =~ ^[A-Za-z0-9_]+$ ]] || die "unexpected POSTGRES_USER/POSTGRES_DB in the postgres container"
    fresh="${db}_restore"
    old="${db}_pre_restore_$(date -u +%Y%m%dT%H%M%SZ)"
    psql_admin() { dc exec -T postgres psql -X -q -v ON_ERROR_STOP=1 -U "$pg_user" -d postgres "$@"; }

    log "creating a fresh database $fresh"
    printf 'DROP DATABASE IF EXISTS "%s";\nCREATE DATABASE "%s" OWNER "%s";\n' "$fresh" "$fresh" "$pg_user" | psql_admin
    log "pg_restore into $fresh"
    dc exec -T postgres pg_restore -U "$pg_user" -d "$fresh" --no-owner --exit-on-error --single-transaction <"$file" \
      || die "pg_restore failed; $db was not touched ($fresh may be dropped)"
    log "integrity: row counts in the restored database"
    dc run --rm --no-deps -T worker count-rows --database "$fresh" \
      || die "the restored database has no readable \"user\" table; $db was not touched"

    stop_services
    log "swapping: $db -> $old, $fresh -> $db"
    printf "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '%s' AND pid <> pg_backend_pid();\nALTER DATABASE \"%s\" RENAME TO \"%s\";\nALTER DATABASE \"%s\" RENAME TO \"%s\";\n" \
      "$db" "$db" "$old" "$fresh" "$db" | psql_admin --single-transaction >/dev/null || die "database swap failed"
    log "the previous database is kept as $old (DROP DATABASE \"$old\" when satisfied)"
    ;;
esac

start_services
stopped=0
for svc in api worker; do
  id="$(running_containers "$svc" | head -n 1)"
  [[ -n "$id" ]] || die "$svc is not running after the restore"
  wait_healthy "$id" "$(env_get HEALTH_WAIT_TIMEOUT 180)" "$(env_get HEALTH_POLL_INTERVAL 2)" || die "$svc is not healthy after the restore"
done
"$LIB_DIR/health-check.sh" || die "/readyz through Caddy fails after the restore"
log "RESTORED $file ($kind); api and worker are healthy"
