#!/usr/bin/env bash
# deploy.sh, rollback.sh, backup.sh and restore.sh against the docker stand-in
# (tests/ops/fakes/docker) placed first on PATH. Each case builds a fresh
# server layout (APP_DIR with compose/, scripts/, .env, current-tag,
# deploy-history) where v1 is running, then checks the call log.
# The stand-in covers what a real engine cannot show quickly (the order of
# every call, races on the lock, failures injected at each stage); the same
# scripts run against real containers in scripts/container-test.sh (a deploy,
# a release that never becomes healthy rolled back with the old containers
# untouched, a rollback, each with 0 failed requests through Caddy).
set -uo pipefail
TEST_GROUP=deploy
# shellcheck source=tests/ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# setup_app: creates $T/app running v1 and exports the fake's environment.
setup_app() {
  server_layout "${1:-v1}"
  if [[ "${1:-v1}" == v1 ]]; then
    for s in api worker caddy; do echo 1 >"$STATE/seq-$s"; done
    for id in api-1-v1 worker-1-v1 caddy-1-stock; do echo 100 >"$STATE/polls-$id"; done
    printf '2026-11-01T00:00:00Z\tv1\tok\tprevious=none\n' >"$APP/deploy-history"
  fi
  export PATH="$FAKES_DIR:$PATH" FAKE_STATE_DIR="$STATE" FAKE_DOCKER_LOG="$LOGF"
  export HEALTH_POLL_INTERVAL=0.1 WORKER_WAIT_TIMEOUT=10 HEALTH_WAIT_TIMEOUT=10
}
running() { awk '$4 == "running" { print $1 }' "$STATE/containers" | sort | tr '\n' ' '; }
last_history() { tail -n 1 "$APP/deploy-history" | cut -f2,3; }

case_01_happy_path() {
  setup_app
  unset HEALTH_POLL_INTERVAL # the production poll interval (2 s)
  local t0 t1 rc
  t0="$(date +%s%3N)"
  "$APP/scripts/deploy.sh" v2 >"$T/out" 2>&1
  rc=$?
  t1="$(date +%s%3N)"
  cat "$T/out"
  assert_eq "$rc" 0 "deploy exit code"
  assert_eq "$(cat "$APP/current-tag")" v2 "current tag"
  assert_eq "$(last_history)" "v2	ok" "history"
  assert_eq "$(running)" "api-2-v2 caddy-1-stock worker-2-v2 " "running containers"
  # order: pull, backup, migrate once, new api created, healthy, old stopped, worker, readyz
  assert_order "$LOGF" "EVENT pull v2" "EVENT backup"
  assert_order "$LOGF" "EVENT backup" "EVENT migrate v2"
  assert_eq "$(grep -c 'EVENT migrate' "$LOGF")" 1 "migrations run once"
  assert_order "$LOGF" "EVENT migrate v2" "EVENT create api-2-v2"
  assert_order "$LOGF" "EVENT create api-2-v2" "EVENT health api-2-v2 healthy"
  assert_order "$LOGF" "EVENT health api-2-v2 healthy" "EVENT stop api-1-v1"
  assert_order "$LOGF" "EVENT stop api-1-v1" "EVENT rm api-1-v1"
  assert_order "$LOGF" "EVENT rm api-1-v1" "EVENT recreate worker-1-v1"
  assert_order "$LOGF" "EVENT create worker-2-v2" "EVENT readyz 200"
  assert_file_lacks "$LOGF" "EVENT stop api-2-v2"
  assert_file_contains "$LOGF" "CALL docker compose --project-name app -f $APP/compose/compose.prod.yml --env-file $APP/.env up -d --no-deps --no-recreate --scale api=2 api"
  assert_file_contains "$LOGF" "CALL docker stop --time 40 api-1-v1"
  assert_file_contains "$LOGF" "--resolve app.example.test:443:127.0.0.1"
  assert_file_contains "$T/out" "DEPLOYED v2 (previous: v1)"
  local traffic
  traffic="$(grep -o 'traffic on new version v2 after [0-9.]*s' "$T/out" | grep -o '[0-9.]*s$')"
  [[ -n "$traffic" ]] || failf "no 'traffic on new version' line"
  echo "REPORT happy path with the production poll interval (2 s), stand-in docker: start -> traffic on new version $traffic; whole deploy incl. worker and /readyz $(( (t1 - t0) / 1000 )).$(printf '%03d' $(( (t1 - t0) % 1000 )))s"
}

case_02_unhealthy_new_api_rolls_back() {
  setup_app
  FAKE_UNHEALTHY_TAGS=v2 FAKE_STARTING_POLLS=2 ops deploy v2
  assert_ne "$RC" 0 "deploy exit code"
  assert_file_contains "$LOGF" "EVENT health api-2-v2 unhealthy"
  assert_file_lacks "$LOGF" "EVENT stop api-1-v1"
  assert_file_lacks "$LOGF" "EVENT rm api-1-v1"
  assert_file_lacks "$LOGF" "recreate worker"
  assert_order "$LOGF" "EVENT health api-2-v2 unhealthy" "EVENT stop api-2-v2"
  assert_file_contains "$LOGF" "EVENT rm api-2-v2"
  assert_eq "$(running)" "api-1-v1 caddy-1-stock worker-1-v1 " "running containers"
  assert_eq "$(cat "$APP/current-tag")" v1 "current tag"
  assert_eq "$(last_history)" "v2	rolled-back" "history"
  assert_file_contains "$T/out" "DEPLOY FAILED: v2"
  assert_file_contains "$T/out" "ROLLED BACK to v1"
}

case_03_failing_migration_rolls_back() {
  setup_app
  FAKE_MIGRATE_RC=1 ops deploy v2
  assert_ne "$RC" 0 "deploy exit code"
  assert_file_contains "$LOGF" "EVENT migrate v2"
  assert_file_lacks "$LOGF" "EVENT create api"
  assert_file_lacks "$LOGF" "EVENT stop"
  assert_file_lacks "$LOGF" "recreate"
  assert_eq "$(running)" "api-1-v1 caddy-1-stock worker-1-v1 " "running containers"
  assert_eq "$(cat "$APP/current-tag")" v1 "current tag"
  assert_eq "$(last_history)" "v2	rolled-back" "history"
  assert_file_contains "$T/out" "DEPLOY FAILED: v2 (migrations failed)"
  assert_file_contains "$T/out" "ROLLED BACK to v1"
}

case_04_readyz_failure_after_switch_reruns_rollout_with_previous_tag() {
  setup_app
  FAKE_READYZ_FAIL_TAGS=v2 ops deploy v2
  assert_ne "$RC" 0 "deploy exit code"
  assert_order "$LOGF" "EVENT readyz 503" "EVENT create api-3-v1"
  # rollback is the same health-gated rollout: v1 healthy before v2 stops
  assert_order "$LOGF" "EVENT health api-3-v1 healthy" "EVENT stop api-2-v2"
  assert_order "$LOGF" "EVENT stop api-2-v2" "EVENT recreate worker-2-v2"
  assert_eq "$(running)" "api-3-v1 caddy-1-stock worker-3-v1 " "running containers"
  assert_eq "$(tail -n 1 "$LOGF")" "EVENT readyz 200" "final readyz"
  assert_eq "$(cat "$APP/current-tag")" v1 "current tag"
  assert_eq "$(last_history)" "v2	rolled-back" "history"
  assert_file_contains "$T/out" "ROLLED BACK to v1: api and worker run v1 again."
}

case_05_two_deploys_at_once() {
  setup_app
  # A holds the lock for a while (its new api takes ~1.5 s to become healthy).
  FAKE_STARTING_POLLS=15 "$APP/scripts/deploy.sh" v2 >"$T/outA" 2>&1 &
  local pidA=$! i
  for ((i = 0; i < 100; i++)); do
    grep -q "lock acquired" "$T/outA" && break
    sleep 0.05
  done
  assert_file_contains "$T/outA" "lock acquired"
  # B: DEPLOY_LOCK_TIMEOUT=0 -> refuses at once with exit 75
  DEPLOY_LOCK_TIMEOUT=0 "$APP/scripts/deploy.sh" v9 >"$T/outB" 2>&1
  local rcB=$?
  # C: default behaviour -> waits for A, then deploys
  "$APP/scripts/deploy.sh" v3 >"$T/outC" 2>&1 &
  local pidC=$!
  wait "$pidA"
  local rcA=$?
  wait "$pidC"
  local rcC=$?
  echo "--- A"; cat "$T/outA"; echo "--- B"; cat "$T/outB"; echo "--- C"; cat "$T/outC"
  assert_eq "$rcB" 75 "second deploy with DEPLOY_LOCK_TIMEOUT=0 refuses"
  assert_file_contains "$T/outB" "REFUSED: another deploy still holds"
  assert_file_lacks "$LOGF" "v9"
  assert_eq "$rcA" 0 "first deploy"
  assert_eq "$rcC" 0 "waiting deploy"
  assert_file_contains "$T/outC" "another deploy is in progress; waiting"
  # C did nothing before A was finished: its pull comes after A's last step
  assert_order "$LOGF" "EVENT readyz 200" "EVENT pull v3"
  assert_eq "$(cut -f2,3 "$APP/deploy-history" | tr '\n' ' ')" "v1	ok v2	ok v3	ok " "history"
  assert_eq "$(cat "$APP/current-tag")" v3 "current tag"
}

case_06_rollback_script_defaults_to_previous_successful_tag() {
  setup_app
  "$APP/scripts/deploy.sh" v2 >"$T/out1" 2>&1 || { cat "$T/out1"; failf "deploy v2"; }
  : >"$LOGF"
  ops rollback
  assert_eq "$RC" 0 "rollback exit code"
  assert_file_lacks "$LOGF" "EVENT migrate"
  assert_file_contains "$T/out" "migrations skipped"
  assert_order "$LOGF" "EVENT health api-3-v1 healthy" "EVENT stop api-2-v2"
  assert_eq "$(cat "$APP/current-tag")" v1 "current tag"
  assert_eq "$(last_history)" "v1	ok" "history"
}

case_07_first_deploy_on_empty_server() {
  setup_app empty
  rm -f "$APP/current-tag" "$APP/deploy-history"
  ops deploy v1
  assert_eq "$RC" 0 "deploy exit code"
  assert_file_contains "$T/out" "backup skipped: first deploy"
  assert_file_contains "$LOGF" "EVENT migrate v1"
  assert_eq "$(running)" "api-1-v1 caddy-1-stock worker-1-v1 " "running containers"
  assert_eq "$(last_history)" "v1	ok" "history"
}

case_08_failed_first_deploy_says_nothing_to_roll_back() {
  setup_app empty
  FAKE_UNHEALTHY_TAGS=v1 ops deploy v1
  assert_ne "$RC" 0 "deploy exit code"
  assert_file_contains "$T/out" "NOT ROLLED BACK: there is no previous tag"
  assert_eq "$(last_history)" "v1	failed" "history"
}

case_09_postgres_backup_retention() {
  setup_app
  echo "COMPOSE_PROFILES=postgres" >>"$APP/.env"
  mkdir -p "$APP/backups"
  local i
  for i in 1 2 3 4 5 6; do : >"$APP/backups/pg-2026010${i}T000000Z.dump"; done
  BACKUP_KEEP=3 "$APP/scripts/backup.sh" >"$T/out" 2>"$T/err"
  local rc=$?
  cat "$T/out" "$T/err"
  assert_eq "$rc" 0 "backup exit code"
  local newest
  newest="$(cat "$T/out")"
  [[ -f "$newest" ]] || failf "printed backup $newest does not exist"
  assert_eq "$(cat "$newest")" "PGDMP-fake-dump" "dump content"
  assert_eq "$(find "$APP/backups" -name 'pg-*.dump' | wc -l)" 3 "retention keeps 3"
  [[ -f "$APP/backups/pg-20260106T000000Z.dump" && ! -f "$APP/backups/pg-20260103T000000Z.dump" ]] || failf "wrong files kept"
  assert_file_contains "$LOGF" "EVENT exec postgres sh -c exec pg_dump -Fc"
  assert_file_contains "$LOGF" "EVENT exec postgres pg_restore --list"
}

case_10_sqlite_restore_stops_restores_restarts() {
  setup_app
  mkdir -p "$T/bk"
  : >"$T/bk/app-20260101T000000Z.db"
  ops restore --yes "$T/bk/app-20260101T000000Z.db"
  assert_eq "$RC" 0 "restore exit code"
  assert_order "$LOGF" "EVENT stop api-1-v1" "EVENT restore /restore/app-20260101T000000Z.db"
  assert_order "$LOGF" "EVENT stop worker-1-v1" "EVENT restore"
  assert_order "$LOGF" "EVENT restore" "EVENT create api-2-v1"
  assert_file_contains "$LOGF" "-v $T/bk:/restore:ro worker restore /restore/app-20260101T000000Z.db"
  assert_file_contains "$T/out" "integrity_check: ok"
  assert_file_contains "$T/out" "jobs 2"
  assert_file_contains "$T/out" "RESTORED"
}

case_11_postgres_restore_into_fresh_database_then_swap() {
  setup_app
  echo "COMPOSE_PROFILES=postgres" >>"$APP/.env"
  printf 'PGDMP-fake-dump\n' >"$T/pg-20260101T000000Z.dump"
  ops restore --yes "$T/pg-20260101T000000Z.dump"
  assert_eq "$RC" 0 "restore exit code"
  assert_order "$LOGF" "EVENT exec postgres pg_restore --list" "EVENT exec postgres psql -X -q -v ON_ERROR_STOP=1 -U app -d postgres"
  assert_order "$LOGF" "EVENT exec postgres pg_restore -U app -d app_restore --no-owner --exit-on-error --single-transaction" "EVENT stop api-1-v1"
  assert_order "$LOGF" "EVENT stop api-1-v1" "-d postgres --single-transaction"
  assert_order "$LOGF" "EVENT stop worker-1-v1" "EVENT create api-2-v1"
  grep -q 'psql -X -q -v ON_ERROR_STOP=1 -U app -d postgres --single-transaction' "$LOGF" || failf "swap not in one transaction"
  assert_order "$LOGF" "EVENT count-rows --database app_restore" "EVENT stop api-1-v1"
  assert_file_contains "$T/out" "user     3"
  assert_file_contains "$T/out" "jobs     2"
  assert_file_contains "$T/out" "app_pre_restore_"
  assert_file_contains "$T/out" "RESTORED"
}

case_12_standalone_backup_uses_the_running_tag() {
  setup_app
  echo "COMPOSE_PROFILES=" >>"$APP/.env"
  # current-tag says v1: the one-off worker runs v1, not compose's default latest
  (unset IMAGE_TAG; "$APP/scripts/backup.sh") >"$T/out" 2>&1
  local rc=$?
  cat "$T/out"
  assert_eq "$rc" 0 "backup exit code"
  assert_file_contains "$LOGF" "EVENT backup v1"
  # no current-tag file: the running worker container's image tag
  rm -f "$APP/current-tag"
  : >"$LOGF"
  (unset IMAGE_TAG; "$APP/scripts/backup.sh") >"$T/out" 2>&1
  rc=$?
  cat "$T/out"
  assert_eq "$rc" 0 "backup exit code without current-tag"
  assert_file_contains "$LOGF" "EVENT backup v1"
  # during a deploy of v2 the backup is still taken by the running v1
  echo v1 >"$APP/current-tag"
  : >"$LOGF"
  "$APP/scripts/deploy.sh" v2 >"$T/out" 2>&1 || { cat "$T/out"; failf "deploy v2"; }
  assert_file_contains "$LOGF" "EVENT backup v1"
}

case_14_a_new_api_that_refuses_removal_is_removed_on_a_later_try() {
  setup_app
  FAKE_UNHEALTHY_TAGS=v2 FAKE_RM_REFUSALS=2 ops deploy v2
  assert_ne "$RC" 0 "deploy exit code"
  assert_eq "$(grep -c 'EVENT rm-refused api-2-v2' "$LOGF")" 2 "refused removals"
  assert_order "$LOGF" "EVENT rm-refused api-2-v2" "EVENT rm api-2-v2"
  assert_eq "$(running)" "api-1-v1 caddy-1-stock worker-1-v1 " "running containers"
  assert_file_lacks "$STATE/containers" "api-2-v2"
  assert_file_contains "$T/out" "ROLLED BACK to v1"
}

case_15_a_new_api_that_exits_at_start_is_removed() {
  setup_app
  FAKE_EXIT_AT_START_TAGS=v2 ops deploy v2
  assert_ne "$RC" 0 "deploy exit code"
  assert_file_contains "$T/out" "no new container is running"
  assert_file_contains "$LOGF" "EVENT rm api-2-v2"
  assert_file_lacks "$STATE/containers" "v2"
  assert_eq "$(running)" "api-1-v1 caddy-1-stock worker-1-v1 " "running containers"
  assert_file_contains "$T/out" "ROLLED BACK to v1"
}

case_13_refuses_an_engine_older_than_25_before_changing_anything() {
  setup_app
  FAKE_ENGINE_VERSION=24.0.7 ops deploy v2
  assert_eq "$RC" 1 "deploy exit code"
  assert_file_contains "$T/out" "Docker Engine 24.0.7 is too old: compose/compose.prod.yml needs Docker Engine 25 or newer"
  assert_file_lacks "$LOGF" "EVENT"
  assert_eq "$(cat "$APP/current-tag")" v1 "current tag"
  assert_eq "$(last_history)" "v1	ok" "history untouched"
}

run_cases "$@"
