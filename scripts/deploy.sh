#!/usr/bin/env bash
# deploy.sh TAG: roll the production stack (project "app") to image tag TAG with
# no downtime, and put the previous tag back by itself when anything fails.
#
#  1. lock: one deploy at a time (flock on $APP_DIR/.deploy.lock). A second
#     deploy WAITS up to DEPLOY_LOCK_TIMEOUT seconds (default 900) for the first
#     to finish, then REFUSES with exit code 75. DEPLOY_LOCK_TIMEOUT=0 refuses at
#     once. The GitHub workflow also serialises deploys (concurrency group).
#  2. record the running tag (current-tag file, else the running api's image).
#  3. docker compose pull (if the registry is unreachable, images already on
#     the host are used: that is what makes rollbacks work offline).
#  4. backup first: scripts/backup.sh (SQLite: worker backup; Postgres: pg_dump).
#  5. migrations once: docker compose run --rm migrate. Migrations must stay
#     backward compatible for one release (expand/contract) so that the
#     previous tag keeps working against the migrated schema.
#  6. api: start the new containers next to the old ones (--scale api=2N
#     --no-recreate), wait until every new one is healthy (docker inspect
#     .State.Health.Status); Caddy sends traffic to all healthy api containers;
#     then stop the old ones gracefully (docker stop -t API_STOP_TIMEOUT), remove
#     them and scale back to N. A new api that does not become healthy is
#     removed and the old ones are never stopped.
#  7. worker: docker compose up -d --no-deps worker (compose stops the old one
#     with SIGTERM and the service's stop_grace_period, so in-flight jobs drain).
#  8. caddy: make sure it runs and reload its config (Caddyfile may have changed).
#  9. scripts/health-check.sh: GET https://$DOMAIN/readyz through Caddy.
# 10. on any failure: put the previous tag back (same rollout, previous tag),
#     say so, exit 1. Every outcome is appended to $APP_DIR/deploy-history
#     (UTC time, tag, result, note), tab-separated.
#
# Settings (environment, else $APP_DIR/.env): IMAGE_PREFIX, COMPOSE_PROFILES,
# DOMAIN, DEPLOY_LOCK_TIMEOUT (900), HEALTH_WAIT_TIMEOUT (180 s for a new
# container to become healthy), HEALTH_POLL_INTERVAL (2 s), API_STOP_TIMEOUT
# (40 s, keep above SHUTDOWN_GRACE_SECONDS), WORKER_WAIT_TIMEOUT (120 s),
# SKIP_BACKUP=1, SKIP_MIGRATIONS=1 (rollback.sh sets it: older binaries must not
# run migrations), CADDY_RELOAD=0 to skip the Caddy reload.
#
# Refuses at once (exit 1, nothing changed) when the engine is older than
# Docker Engine 25, which compose/compose.prod.yml needs.
#
# Exit codes: 0 deployed; 1 failed (rolled back when possible); 2 usage;
# 75 another deploy holds the lock.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_TAG=deploy
SCRIPT_DIR="$LIB_DIR"

usage() { echo "usage: $0 TAG" >&2; exit 2; }
[[ $# -eq 1 ]] || usage
TAG="$1"
valid_tag "$TAG" || { echo "invalid tag: '$TAG'" >&2; exit 2; }
cd "$APP_DIR"
# Before anything changes: an engine the compose file cannot run on.
require_docker_engine

ms_now() { date +%s%3N; }
T0="$(ms_now)"
elapsed() { local t; t="$(ms_now)"; printf '%d.%03ds' $(((t - T0) / 1000)) $(((t - T0) % 1000)); }

# ---- 1. lock -------------------------------------------------------------
lock_timeout="$(env_get DEPLOY_LOCK_TIMEOUT 900)"
exec 9>>"$LOCK_FILE"
if [[ "$lock_timeout" == 0 ]]; then
  flock_args=(-n)
else
  flock_args=(-w "$lock_timeout")
  if ! flock -n 9; then
    log "another deploy is in progress; waiting up to ${lock_timeout}s for it to finish"
  fi
fi
if ! flock "${flock_args[@]}" 9; then
  log "REFUSED: another deploy still holds $LOCK_FILE; $TAG was not deployed"
  exit 75
fi
log "lock acquired; deploying $TAG"

export_compose_env
health_timeout="$(env_get HEALTH_WAIT_TIMEOUT 180)"
poll="$(env_get HEALTH_POLL_INTERVAL 2)"
stop_timeout="$(env_get API_STOP_TIMEOUT 40)"
worker_timeout="$(env_get WORKER_WAIT_TIMEOUT 120)"
image_prefix="$(env_get IMAGE_PREFIX)"

# ---- 2. the running tag ----------------------------------------------------
PREV="$(current_tag || true)"
[[ -n "$PREV" ]] || PREV="$(running_tag api)"
log "running tag: ${PREV:-none (first deploy)}; new tag: $TAG"

STAGE=start
FINISHED=0
on_exit() {
  local rc=$?
  if [[ "$FINISHED" != 1 ]]; then
    log "deploy of $TAG aborted unexpectedly at stage '$STAGE' (exit $rc)."
    log "Check 'docker compose -p $COMPOSE_PROJECT ps'; scripts/rollback.sh ${PREV:-<tag>} puts the previous tag back."
    history_append "$TAG" aborted "stage=$STAGE previous=${PREV:-none}" || true
  fi
}
trap on_exit EXIT

# ---- rollout building blocks ---------------------------------------------
# rollout_api: start new api containers (current IMAGE_TAG) next to the old
# ones; on success the old ones are stopped. On failure the new ones are
# removed and the old ones are left exactly as they were.
rollout_api() {
  local -a olds news
  local id n all
  mapfile -t olds < <(running_containers api)
  n="${#olds[@]}"
  API_OLD_COUNT="$n"
  if (( n == 0 )); then
    log "api: no running container; starting $IMAGE_TAG"
    dc up -d --no-deps api || return 1
  else
    log "api: starting $n new container(s) on $IMAGE_TAG next to $n old"
    dc up -d --no-deps --no-recreate --scale "api=$((2 * n))" api || { remove_new_api "${olds[@]}"; return 1; }
  fi
  mapfile -t all < <(running_containers api)
  news=()
  for id in "${all[@]}"; do
    if ! printf '%s\n' "${olds[@]}" | grep -qxF -- "$id"; then
      news+=("$id")
    fi
  done
  if (( ${#news[@]} == 0 )); then
    # Created but not running: a release that exits at start sits between
    # two restarts of its restart policy. It must not keep crash-looping
    # next to the old one.
    log "api: no new container is running"
    remove_new_api "${olds[@]}"
    return 1
  fi
  for id in "${news[@]}"; do
    log "api: waiting for ${id:0:12} to become healthy (timeout ${health_timeout}s)"
    if ! wait_healthy "$id" "$health_timeout" "$poll"; then
      log "api: new container ${id:0:12} is not healthy; last log lines:"
      docker logs --tail 30 "$id" >&2 2>&1 || true
      remove_new_api "${olds[@]}"
      return 1
    fi
    log "api: ${id:0:12} healthy after $(elapsed); it now takes traffic next to the old one(s)"
  done
  for id in "${olds[@]}"; do
    log "api: stopping old container ${id:0:12} gracefully (up to ${stop_timeout}s)"
    docker stop --time "$stop_timeout" "$id" >/dev/null || log "api: docker stop ${id:0:12} failed"
    docker rm "$id" >/dev/null || log "api: docker rm ${id:0:12} failed"
  done
  if (( n > 0 )); then
    dc up -d --no-deps --no-recreate --scale "api=$n" api || log "api: scale back to $n reported an error"
  fi
  return 0
}

# remove_new_api OLD_IDS...: stop and remove every api container that is not
# one of OLD_IDS. The old containers are never touched. A container caught
# between two restarts of its restart policy may refuse the first removal
# (seen with a release that exits at start): it is tried again until gone,
# and one still there after that is reported, since it would keep
# crash-looping next to the old release.
remove_new_api() {
  local id try left=()
  while read -r id; do
    [[ -n "$id" ]] || continue
    if (( $# > 0 )) && printf '%s\n' "$@" | grep -qxF -- "$id"; then
      continue
    fi
    log "api: removing new container ${id:0:12}"
    docker stop --time 10 "$id" >/dev/null 2>&1 || true
    for ((try = 1; try <= 10; try++)); do
      docker rm -f "$id" >/dev/null 2>&1 || true
      docker inspect "$id" >/dev/null 2>&1 || break
      sleep 1
    done
    if docker inspect "$id" >/dev/null 2>&1; then left+=("$id"); fi
  done < <(service_containers api)
  if (( ${#left[@]} > 0 )); then
    log "api: could not remove ${left[*]}; remove it by hand (docker rm -f)"
    return 1
  fi
}

rollout_worker() {
  local id
  log "worker: restarting on $IMAGE_TAG (old worker drains within its stop_grace_period)"
  dc up -d --no-deps worker || return 1
  id="$(running_containers worker | head -n 1)"
  [[ -n "$id" ]] || { log "worker: no running container"; return 1; }
  wait_healthy "$id" "$worker_timeout" "$poll" || { log "worker: not healthy"; return 1; }
  log "worker: ${id:0:12} healthy on $IMAGE_TAG"
}

reload_caddy() {
  dc up -d --no-deps --no-recreate caddy || { log "caddy: could not be started"; return 1; }
  if [[ "$(env_get CADDY_RELOAD 1)" == 1 ]]; then
    dc exec -T caddy caddy reload --config /etc/caddy/Caddyfile --adapter caddyfile >/dev/null 2>&1 \
      || log "caddy: reload failed; it keeps serving its previous configuration (check the Caddyfile)"
  fi
  return 0
}

health_check() {
  "$SCRIPT_DIR/health-check.sh"
}

# ---- failure handling ------------------------------------------------------
# fail REASON: put PREV back according to how far the deploy got, say so, exit 1.
fail() {
  local reason="$1"
  FINISHED=1
  log "DEPLOY FAILED: $TAG ($reason) at stage '$STAGE'"
  if [[ -z "$PREV" ]]; then
    log "NOT ROLLED BACK: there is no previous tag to go back to (first deploy)."
    history_append "$TAG" failed "$reason; no previous tag"
    exit 1
  fi
  if [[ "$PREV" == "$TAG" ]]; then
    log "NOT ROLLED BACK: the previous tag is the same tag ($TAG)."
    history_append "$TAG" failed "$reason; previous tag is the same"
    exit 1
  fi
  if [[ "$STAGE" == api && "${API_OLD_COUNT:-0}" == 0 ]]; then
    STAGE=api-none-running # nothing was serving before: start PREV again
  fi
  case "$STAGE" in
    pull|backup|migrate|api)
      # No running container was changed: the old api and worker (PREV) kept
      # serving; new api containers, if any, were already removed.
      export IMAGE_TAG="$PREV"
      log "ROLLED BACK to $PREV: the old api and worker were never stopped; $PREV is still serving."
      ;;
    *)
      log "ROLLING BACK to $PREV: re-running the rollout with the previous tag"
      export IMAGE_TAG="$PREV"
      STAGE=rollback
      if ! rollout_api; then
        log "ROLLBACK FAILED: the api on $PREV did not become healthy; $TAG is still running. Manual action needed."
        history_append "$TAG" failed "$reason; rollback to $PREV failed (api)"
        exit 1
      fi
      if ! rollout_worker; then
        log "ROLLBACK INCOMPLETE: api is back on $PREV but the worker is not healthy. Manual action needed."
        history_append "$TAG" failed "$reason; rollback to $PREV: worker unhealthy"
        exit 1
      fi
      log "ROLLED BACK to $PREV: api and worker run $PREV again."
      ;;
  esac
  set_current_tag "$PREV"
  if health_check; then
    log "ROLLED BACK: $PREV answers /readyz through Caddy."
    history_append "$TAG" rolled-back "$reason; back on $PREV"
  else
    log "ROLLED BACK to $PREV, but /readyz through Caddy still fails. Manual action needed."
    history_append "$TAG" rolled-back "$reason; back on $PREV; readyz still failing"
  fi
  exit 1
}

# ---- 3. pull ----------------------------------------------------------------
STAGE=pull
export IMAGE_TAG="$TAG"
if ! dc pull; then
  if [[ -n "$image_prefix" ]] && docker image inspect "$image_prefix/api:$TAG" >/dev/null 2>&1 \
     && docker image inspect "$image_prefix/worker:$TAG" >/dev/null 2>&1; then
    log "pull failed, but the $TAG images are already on this host; using them"
  else
    fail "docker compose pull failed"
  fi
fi

# ---- 4. backup --------------------------------------------------------------
STAGE=backup
if [[ "$(env_get SKIP_BACKUP 0)" == 1 ]]; then
  log "backup skipped (SKIP_BACKUP=1)"
elif [[ -z "$PREV" ]]; then
  log "backup skipped: first deploy, no data yet"
else
  if [[ "$(db_kind)" == postgres ]]; then
    dc up -d --no-deps --no-recreate --wait postgres || fail "postgres did not start"
  fi
  "$SCRIPT_DIR/backup.sh" >/dev/null || fail "backup failed"
fi

# ---- 5. migrations ----------------------------------------------------------
STAGE=migrate
if [[ "$(env_get SKIP_MIGRATIONS 0)" == 1 ]]; then
  log "migrations skipped (SKIP_MIGRATIONS=1)"
else
  if [[ "$(db_kind)" == postgres ]]; then
    dc up -d --no-deps --no-recreate --wait postgres || fail "postgres did not start"
  fi
  log "running migrations once (docker compose run --rm migrate)"
  dc run --rm --no-deps -T migrate || fail "migrations failed"
fi
if [[ ",$(env_get COMPOSE_PROFILES)," == *,redis,* ]]; then
  dc up -d --no-deps --no-recreate redis || log "redis: could not be started (the api falls back to in-memory rate limits)"
fi

# ---- 6. api -------------------------------------------------------------------
STAGE=api
rollout_api || fail "new api did not become healthy"
STAGE=switched
log "traffic on new version $TAG after $(elapsed) (old api stopped)"

# ---- 7. worker ----------------------------------------------------------------
STAGE=worker
rollout_worker || fail "worker did not become healthy"

# ---- 8./9. caddy and the public check -------------------------------------------
STAGE=readyz
reload_caddy || fail "caddy is not running"
health_check || fail "/readyz through Caddy failed"

# ---- done -----------------------------------------------------------------------
set_current_tag "$TAG"
history_append "$TAG" ok "previous=${PREV:-none} took=$(elapsed)"
FINISHED=1
log "DEPLOYED $TAG (previous: ${PREV:-none}) in $(elapsed)"
