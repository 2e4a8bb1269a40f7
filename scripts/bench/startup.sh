#!/usr/bin/env bash
# Release binary sizes, the api's idle memory, and its start-up time.
#
#  (a) size of target/release/api and target/release/worker;
#  (b) the api's VmRSS (and peak VmHWM) from /proc/PID/status: right after
#      /readyz first answers 200, and idle again after a handful of requests
#      (health probes, a signup and a login, which each run one argon2id
#      hash with m=64 MiB, item writes and reads);
#  (c) time from spawning the process to /readyz answering 200, BENCH_RUNS
#      (7) times per backend: on a fresh, empty database each run (migrations
#      and the first superuser's argon2id hash included), and a restart on an
#      already-initialised database. /readyz is polled every 5 ms, so figures
#      carry ~5-10 ms of polling granularity.
# Every api run is stopped with SIGTERM and must exit 0; every database is dropped.
# Prints Markdown tables on stdout.
#
# Usage: scripts/bench/startup.sh    (settings: see scripts/bench/common.sh; BENCH_RUNS)
set -euo pipefail

# shellcheck source=SCRIPTDIR/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

RUNS=${BENCH_RUNS:-7}

bench_init

now_ns() { date +%s%N; }
ms() { awk -v ns="$1" 'BEGIN { printf "%.1f", ns / 1e6 }'; }
mib_of_kb() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb / 1024 }'; }

# timed_start: starts the api on DB_URL; sets LAST_MS to the ms until /readyz is 200.
# (Not run in $(...): API_PID must be set in this shell.)
LAST_MS=
timed_start() {
  local started
  started=$(now_ns)
  start_api
  wait_ready
  LAST_MS=$(ms $(($(now_ns) - started)))
}

wait_for_quiet
provenance
echo
echo "CPU busy with other work before measuring: ${MACHINE_BUSY}%"
echo
echo "### Release binaries"
echo
echo "| binary | bytes | MiB |"
echo "|---|---:|---:|"
for bin in api worker; do
  bytes=$(stat -c %s "$RUN_BIN_DIR/$bin")
  echo "| $bin | $bytes | $(awk -v b="$bytes" 'BEGIN { printf "%.2f", b / 1048576 }') |"
done
echo

echo "### api resident memory"
echo
echo "| backend | VmRSS after ready | VmRSS idle after requests | VmHWM (peak) |"
echo "|---|---:|---:|---:|"
for backend in $BENCH_BACKENDS; do
  new_database "$backend"
  start_api
  wait_ready
  sleep 1
  rss_ready=$(proc_status_kb "$API_PID" VmRSS)
  token=$(signup_and_login "mem-$backend@example.com" bench-password-1)
  for ((i = 0; i < 10; i++)); do
    curl -fsS -o /dev/null "$BASE_URL/healthz"
    curl -fsS -o /dev/null "$BASE_URL/readyz"
    api_call GET /api/v1/users/me -H "Authorization: Bearer $token" >/dev/null
    api_call POST /api/v1/items/ -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
      -d '{"title":"memory probe"}' >/dev/null
    api_call GET '/api/v1/items/?limit=100' -H "Authorization: Bearer $token" >/dev/null
  done
  sleep 2
  rss_idle=$(proc_status_kb "$API_PID" VmRSS)
  hwm=$(proc_status_kb "$API_PID" VmHWM)
  echo "| $backend | $(mib_of_kb "$rss_ready") MiB ($rss_ready kB) | $(mib_of_kb "$rss_idle") MiB ($rss_idle kB) | $(mib_of_kb "$hwm") MiB ($hwm kB) |"
  stop_api
  drop_database
done
echo

wait_for_quiet
echo "### Start to /readyz 200 (ms, $RUNS runs each; CPU busy with other work before: ${MACHINE_BUSY}%)"
echo
echo "| backend | database | median | min | max | all runs |"
echo "|---|---|---:|---:|---:|---|"
for backend in $BENCH_BACKENDS; do
  fresh=()
  for ((run = 0; run < RUNS; run++)); do
    new_database "$backend"
    timed_start
    fresh+=("$LAST_MS")
    stop_api
    drop_database
  done
  new_database "$backend"
  start_api
  wait_ready
  stop_api
  existing=()
  for ((run = 0; run < RUNS; run++)); do
    timed_start
    existing+=("$LAST_MS")
    stop_api
  done
  drop_database
  for kind in fresh existing; do
    declare -n runs=$kind
    sorted=$(printf '%s\n' "${runs[@]}" | sort -n)
    label="fresh (migrations + first superuser)"
    [[ $kind == existing ]] && label="existing (already migrated)"
    echo "| $backend | $label | $(median <<<"$sorted") | $(head -n1 <<<"$sorted") | $(tail -n1 <<<"$sorted") | ${runs[*]} |"
    unset -n runs
  done
done
