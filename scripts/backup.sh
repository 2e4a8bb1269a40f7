#!/usr/bin/env bash
# backup.sh: take one backup of the production database now; print its path.
#
# SQLite (default): `docker compose run --rm worker backup`, an online backup
#   (VACUUM INTO + integrity_check) written to BACKUP_HOST_DIR, which is mounted
#   into the one-off container at /backups; the worker keeps the newest BACKUP_KEEP.
# Postgres (COMPOSE_PROFILES contains "postgres"): pg_dump -Fc run inside the
#   postgres container (`docker compose exec -T postgres`), streamed to
#   BACKUP_HOST_DIR/pg-<UTC timestamp>.dump, checked with pg_restore --list;
#   the newest BACKUP_KEEP dumps are kept.
#
# Settings: BACKUP_HOST_DIR (default $APP_DIR/backups; must be writable by the
# container user uid 10001 for SQLite, setup-server.sh prepares it), BACKUP_KEEP
# (default 7). Safe to run while the service is up.
#
# Image: the one-off worker runs the tag that is running now, as restore.sh
# does: the current-tag file, else the running worker's image tag, else
# IMAGE_TAG from the environment (compose's default is latest, which may be a
# different release or not be on the host at all).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_TAG=backup
export_compose_env
tag="$(current_tag || true)"
[[ -n "$tag" ]] || tag="$(running_tag worker)"
if [[ -n "$tag" ]] && valid_tag "$tag"; then
  export IMAGE_TAG="$tag"
fi
log "using image tag ${IMAGE_TAG:-latest (compose default; no current-tag file, no running worker)}"

backup_dir="$(env_get BACKUP_HOST_DIR "$APP_DIR/backups")"
keep="$(env_get BACKUP_KEEP 7)"
[[ "$keep" =~ ^[1-9][0-9]*$ ]] || die "BACKUP_KEEP must be a positive integer, got '$keep'"
mkdir -p "$backup_dir"
kind="$(db_kind)"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"

case "$kind" in
  sqlite)
    log "SQLite online backup via the worker into $backup_dir (keep $keep)"
    out="$(dc run --rm --no-deps -T \
      -e BACKUP_DIR=/backups -e "BACKUP_KEEP=$keep" \
      -v "$backup_dir:/backups" \
      worker backup)" || die "worker backup failed"
    path="$(printf '%s\n' "$out" | sed '/^[[:space:]]*$/d' | tail -n 1)"
    [[ -n "$path" ]] || die "worker backup printed no file name"
    host_path="$backup_dir/${path##*/}"
    log "backup written: $host_path"
    printf '%s\n' "$host_path"
    ;;
  postgres)
    dest="$backup_dir/pg-${stamp}.dump"
    tmp="$(mktemp "$backup_dir/.pg-${stamp}.XXXXXX")"
    trap 'rm -f "$tmp"' EXIT
    log "pg_dump -Fc via the postgres container into $dest (keep $keep)"
    # shellcheck disable=SC2016 # expanded inside the container, from its own env
    dc exec -T postgres sh -c 'exec pg_dump -Fc -U "$POSTGRES_USER" -d "${POSTGRES_DB:-$POSTGRES_USER}"' >"$tmp" \
      || die "pg_dump failed"
    [[ -s "$tmp" ]] || die "pg_dump produced an empty file"
    # Integrity: the archive's table of contents must be readable.
    dc exec -T postgres pg_restore --list <"$tmp" >/dev/null || die "pg_restore --list cannot read the dump"
    chmod 640 "$tmp"
    mv -f "$tmp" "$dest"
    trap - EXIT
    # Retention: newest $keep dumps stay.
    mapfile -t old < <(find "$backup_dir" -maxdepth 1 -type f -name 'pg-*.dump' -printf '%f\n' | sort -r | tail -n +"$((keep + 1))")
    for f in "${old[@]}"; do
      rm -f -- "${backup_dir:?}/$f"
      log "retention: removed $f"
    done
    log "backup written: $dest"
    printf '%s\n' "$dest"
    ;;
esac
