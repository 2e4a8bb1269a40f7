#!/usr/bin/env bash
# HTTP throughput and latency of the release api over loopback, with wrk.
#
# For each backend (SQLite, then Postgres): a fresh database, the release api
# started on it, a user and 100 items created through the API, then wrk runs
#   GET  /api/v1/users/me
#   GET  /api/v1/items/?limit=100      (the user owns 100 items)
#   POST /api/v1/items/
#   POST /api/v1/login/access-token    (argon2id verify per request: slow by design)
# then the api is stopped (SIGTERM, must exit 0) and the database dropped.
# Prints a Markdown table on stdout; progress and raw wrk output on stderr.
#
# Usage: scripts/bench/api.sh
# Settings (environment), besides those of scripts/bench/common.sh:
#   BENCH_THREADS (2), BENCH_CONNECTIONS (16), BENCH_DURATION (10s), BENCH_WARMUP (2s; 0 to skip)
#   BENCH_LOGIN_CONNECTIONS (4), BENCH_LOGIN_DURATION (5s)
#   BENCH_RAW_DIR   keep every raw wrk output and api log here (default: discarded)
set -euo pipefail

# shellcheck source=SCRIPTDIR/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

THREADS=${BENCH_THREADS:-2}
CONNECTIONS=${BENCH_CONNECTIONS:-16}
DURATION=${BENCH_DURATION:-10s}
WARMUP=${BENCH_WARMUP:-2s}
LOGIN_CONNECTIONS=${BENCH_LOGIN_CONNECTIONS:-4}
LOGIN_DURATION=${BENCH_LOGIN_DURATION:-5s}
RAW_DIR=${BENCH_RAW_DIR:-}
USER_PASSWORD=bench-password-1

need wrk "apt-get install wrk"
bench_init
[[ -z $RAW_DIR ]] || mkdir -p "$RAW_DIR"

ROWS=()
SERVER_STATUS=()

# run_wrk BACKEND LABEL CONNECTIONS DURATION PATH: one measured run (after an
# optional warm-up); appends a table row. The request is described by the
# BENCH_METHOD / BENCH_BODY / BENCH_CONTENT_TYPE / BENCH_TOKEN environment.
run_wrk() {
  local backend=$1 label=$2 connections=$3 duration=$4 path=$5 threads=$THREADS output line
  ((threads <= connections)) || threads=$connections
  local cmd=(wrk -t"$threads" -c"$connections" -d"$duration" --timeout 10s --latency
    -s "$BENCH_DIR/wrk-report.lua" "$BASE_URL$path")
  if [[ $WARMUP != 0 && $label != login* ]]; then
    wrk -t"$threads" -c"$connections" -d"$WARMUP" --timeout 10s -s "$BENCH_DIR/wrk-report.lua" \
      "$BASE_URL$path" >/dev/null
  fi
  log "[$backend] ${cmd[*]}"
  output=$("${cmd[@]}")
  printf '%s\n' "$output" >&2
  if [[ -n $RAW_DIR ]]; then
    printf '%s\n' "${cmd[*]}" "$output" >"$RAW_DIR/$backend-${label//[^a-zA-Z0-9]/_}.txt"
  fi
  line=$(grep '^BENCH ' <<<"$output") || die "no BENCH line from wrk"
  # shellcheck disable=SC2034 # some fields are parsed for completeness
  local requests seconds rps p50_ms p90_ms p99_ms max_ms status_errors connect_errors read_errors write_errors timeouts
  local field
  for field in ${line#BENCH }; do
    printf -v "${field%%=*}" '%s' "${field#*=}"
  done
  local socket_errors=$((connect_errors + read_errors + write_errors + timeouts))
  ROWS+=("| $backend | \`$label\` | $connections | $duration | $requests | $rps | $p50_ms | $p99_ms | $max_ms | $status_errors | $socket_errors |")
}

# server_status_counts BACKEND: the api's own count of responses by route and
# status for the routes under test (from /metrics), to catch non-2xx wrk hides.
server_status_counts() {
  local backend=$1 metrics
  metrics=$(curl -fsS --max-time 5 "$METRICS_URL")
  local counts
  counts=$(grep '^http_requests_total{' <<<"$metrics" |
    grep -E 'users/me"|/items/"|login/access-token"' |
    sed -E 's/^http_requests_total\{(.*)\} ([0-9.e+]+)$/\1 => \2/') || true
  while IFS= read -r line; do
    [[ -n $line ]] && SERVER_STATUS+=("$backend: $line")
  done <<<"$counts"
}

bench_backend() {
  local backend=$1 email token item_json count
  log "== $backend"
  wait_for_quiet
  SERVER_STATUS+=("$backend: CPU busy with other work just before the run: ${MACHINE_BUSY}%; load average after: $(cut -d' ' -f1-3 /proc/loadavg)")
  new_database "$backend"
  start_api
  wait_ready

  email="bench-$backend-$RANDOM@example.com"
  token=$(signup_and_login "$email" "$USER_PASSWORD")
  [[ -n $token ]] || die "[$backend] no access token"
  item_json='{"title":"Benchmark item","description":"created by scripts/bench/api.sh"}'
  local i
  for ((i = 0; i < 100; i++)); do
    api_call POST /api/v1/items/ -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
      -d "$item_json" >/dev/null
  done
  count=$(api_call GET '/api/v1/items/?limit=100' -H "Authorization: Bearer $token" |
    sed -n 's/.*"count":\([0-9]*\).*/\1/p')
  [[ $count == 100 ]] || die "[$backend] expected 100 items, the api counts ${count:-none}"
  api_call GET /api/v1/users/me -H "Authorization: Bearer $token" >/dev/null

  BENCH_TOKEN=$token BENCH_METHOD=GET BENCH_BODY='' BENCH_CONTENT_TYPE='' \
    run_wrk "$backend" 'GET /api/v1/users/me' "$CONNECTIONS" "$DURATION" /api/v1/users/me
  BENCH_TOKEN=$token BENCH_METHOD=GET BENCH_BODY='' BENCH_CONTENT_TYPE='' \
    run_wrk "$backend" 'GET /api/v1/items/?limit=100' "$CONNECTIONS" "$DURATION" '/api/v1/items/?limit=100'
  BENCH_TOKEN=$token BENCH_METHOD=POST BENCH_BODY=$item_json BENCH_CONTENT_TYPE=application/json \
    run_wrk "$backend" 'POST /api/v1/items/' "$CONNECTIONS" "$DURATION" /api/v1/items/
  BENCH_TOKEN='' BENCH_METHOD=POST BENCH_CONTENT_TYPE=application/x-www-form-urlencoded \
    BENCH_BODY="username=${email//@/%40}&password=$USER_PASSWORD" \
    run_wrk "$backend" 'login (POST /api/v1/login/access-token)' "$LOGIN_CONNECTIONS" "$LOGIN_DURATION" \
    /api/v1/login/access-token

  server_status_counts "$backend"
  local problems
  problems=$(grep -c -E '"level":"(WARN|ERROR)"' "$API_LOG" || true)
  SERVER_STATUS+=("$backend: api log lines at WARN or ERROR during the run: $problems")
  stop_api
  [[ -z $RAW_DIR ]] || cp "$API_LOG" "$RAW_DIR/$backend-api.log"
  : >"$API_LOG"
  drop_database
}

for backend in $BENCH_BACKENDS; do
  bench_backend "$backend"
done

provenance
echo
echo "| backend | request | connections | duration | requests | req/s | p50 ms | p99 ms | max ms | non-2xx/3xx | socket errors |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
echo
echo "wrk: -t$THREADS, --timeout 10s, warm-up $WARMUP per non-login run; login with -c$LOGIN_CONNECTIONS."
echo
echo "Server-side response counts (api /metrics, http_requests_total, whole run incl. setup and warm-up):"
echo
printf -- '- %s\n' "${SERVER_STATUS[@]}"
