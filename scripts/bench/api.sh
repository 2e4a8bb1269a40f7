#!/usr/bin/env bash
# HTTP throughput, latency and CPU cost per request of the release api over
# loopback, with wrk, against a bare axum server as the floor.
#
# First the floor: crates/api/examples/bare_axum.rs (`GET /`, a small body,
# the api's tokio runtime set-up). Then, for each backend (SQLite, then
# Postgres): a fresh database, the release api started on it (LOG_LEVEL=info,
# the default, so every request writes its access log line), a user and 100
# items created through the API, then wrk runs
#   GET  /api/v1/utils/health-check/
#   GET  /healthz
#   GET  /api/v1/users/me
#   GET  /api/v1/items/?limit=100      (the user owns 100 items)
#   POST /api/v1/items/
#   POST /api/v1/login/access-token    (argon2id verify per request: slow by design)
# then the api is stopped (SIGTERM, must exit 0) and the database dropped.
# Last, the floor once more: each route's ratio is to the median of both.
#
# CPU seconds per 10,000 requests is the figure that survives a busy machine
# (req/s and latency do not): user + system time from /proc/PID/stat of the
# server (every thread) and, on Postgres, of every backend connected to the
# bench database, read just before and just after each measured run.
#
# Prints Markdown tables on stdout; progress and raw wrk output on stderr.
#
# Usage: scripts/bench/api.sh
# Settings (environment), besides those of scripts/bench/common.sh:
#   BENCH_THREADS (2), BENCH_CONNECTIONS (16), BENCH_DURATION (10s), BENCH_WARMUP (2s; 0 to skip)
#   BENCH_ROUNDS (1)   rounds over every route; with more, each figure is the median of the rounds
#   BENCH_LOGIN_CONNECTIONS (4), BENCH_LOGIN_DURATION (5s), BENCH_LOGIN=0 to skip login
#   BENCH_LOG_LEVEL (info)   the api's LOG_LEVEL
#   BENCH_RAW_DIR   keep every raw wrk output and api log here (default: discarded)
set -euo pipefail

# shellcheck source=SCRIPTDIR/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

THREADS=${BENCH_THREADS:-2}
CONNECTIONS=${BENCH_CONNECTIONS:-16}
DURATION=${BENCH_DURATION:-10s}
WARMUP=${BENCH_WARMUP:-2s}
ROUNDS=${BENCH_ROUNDS:-1}
LOGIN_CONNECTIONS=${BENCH_LOGIN_CONNECTIONS:-4}
LOGIN_DURATION=${BENCH_LOGIN_DURATION:-5s}
LOGIN=${BENCH_LOGIN:-1}
API_LOG_LEVEL=${BENCH_LOG_LEVEL:-info}
RAW_DIR=${BENCH_RAW_DIR:-}
USER_PASSWORD=bench-password-1

need wrk "apt-get install wrk"
need pgrep "apt-get install procps"
bench_init
[[ -z $RAW_DIR ]] || mkdir -p "$RAW_DIR"

# Results, per "backend|label": the values of each round, space-separated.
declare -A RESULTS=()
ORDER=()
SERVER_STATUS=()
FLOOR_CPU=

# per_10k SECONDS REQUESTS: seconds per 10,000 requests.
per_10k() {
  awk -v s="$1" -v n="$2" 'BEGIN { printf "%.3f", (n > 0 ? s * 10000 / n : 0) }'
}

# run_wrk BACKEND LABEL CONNECTIONS DURATION URL SERVER_PID [DBNAME]: one
# measured run (after an optional warm-up) of the request described by the
# BENCH_METHOD / BENCH_BODY / BENCH_CONTENT_TYPE / BENCH_TOKEN environment;
# the CPU of SERVER_PID and, given DBNAME, of its Postgres backends is read
# around it. Records the round's figures in RESULTS.
run_wrk() {
  local backend=$1 label=$2 connections=$3 duration=$4 url=$5 server_pid=$6 dbname=${7:-} threads=$THREADS
  ((threads <= connections)) || threads=$connections
  local cmd=(wrk -t"$threads" -c"$connections" -d"$duration" --timeout 10s --latency
    -s "$BENCH_DIR/wrk-report.lua" "$url")
  if [[ $WARMUP != 0 && $label != login* ]]; then
    wrk -t"$threads" -c"$connections" -d"$WARMUP" --timeout 10s -s "$BENCH_DIR/wrk-report.lua" "$url" >/dev/null
  fi
  log "[$backend] ${cmd[*]}"
  local server_before db_before='' server_after db_after='' output line
  server_before=$(cpu_ticks "$server_pid")
  # shellcheck disable=SC2046 # one argument per backend pid
  [[ -z $dbname ]] || db_before=$(cpu_ticks $(postgres_backends "$dbname"))
  output=$("${cmd[@]}")
  server_after=$(cpu_ticks "$server_pid")
  # shellcheck disable=SC2046 # one argument per backend pid
  [[ -z $dbname ]] || db_after=$(cpu_ticks $(postgres_backends "$dbname"))
  printf '%s\n' "$output" >&2
  if [[ -n $RAW_DIR ]]; then
    printf '%s\n' "${cmd[*]}" "$output" >"$RAW_DIR/$backend-${label//[^a-zA-Z0-9]/_}-$ROUND.txt"
  fi
  line=$(grep '^BENCH ' <<<"$output") || die "no BENCH line from wrk"
  # shellcheck disable=SC2034 # some fields are parsed for completeness
  local requests seconds rps p50_ms p90_ms p99_ms p999_ms max_ms status_errors connect_errors read_errors write_errors timeouts
  local field
  for field in ${line#BENCH }; do
    printf -v "${field%%=*}" '%s' "${field#*=}"
  done
  local server_cpu db_cpu=0
  server_cpu=$(cpu_seconds_between "$server_before" "$server_after")
  [[ -z $dbname ]] || db_cpu=$(cpu_seconds_between "$db_before" "$db_after")
  local key="$backend|$label"
  [[ -n ${RESULTS[$key|requests]:-} ]] || ORDER+=("$key")
  RESULTS[$key|connections]=$connections
  RESULTS[$key|requests]+="$requests "
  RESULTS[$key|rps]+="$rps "
  RESULTS[$key|p50]+="$p50_ms "
  RESULTS[$key|p99]+="$p99_ms "
  RESULTS[$key|p999]+="$p999_ms "
  RESULTS[$key|server_cpu]+="$(per_10k "$server_cpu" "$requests") "
  RESULTS[$key|db_cpu]+="$([[ -n $dbname ]] && per_10k "$db_cpu" "$requests" || echo -) "
  RESULTS[$key|total_cpu]+="$(per_10k "$(awk -v a="$server_cpu" -v b="$db_cpu" 'BEGIN { print a + b }')" "$requests") "
  RESULTS[$key|errors]+="$status_errors/$((connect_errors + read_errors + write_errors + timeouts)) "
}

# server_status_counts BACKEND: the api's own count of responses by route and
# status for the routes under test (from /metrics), to catch non-2xx wrk hides.
server_status_counts() {
  local backend=$1 metrics
  metrics=$(curl -fsS --max-time 5 "$METRICS_URL")
  local counts
  counts=$(grep '^http_requests_total{' <<<"$metrics" |
    grep -E 'users/me"|/items/"|login/access-token"|health-check/"|/healthz"' |
    sed -E 's/^http_requests_total\{(.*)\} ([0-9.e+]+)$/\1 => \2/') || true
  while IFS= read -r line; do
    [[ -n $line ]] && SERVER_STATUS+=("$backend: $line")
  done <<<"$counts"
}

# bench_floor LABEL: bare axum's `GET /`, measured under LABEL.
bench_floor() {
  local label=$1
  log "== bare axum (the floor: $label)"
  (exec "$RUN_BIN_DIR/bare_axum" "127.0.0.1:$BENCH_PORT") >>"$WORK/bare_axum.log" 2>&1 &
  local pid=$! deadline=$((SECONDS + 30))
  until curl -fso /dev/null --max-time 1 "$BASE_URL/"; do
    kill -0 "$pid" 2>/dev/null || die "bare_axum exited: $(tail -n 5 "$WORK/bare_axum.log")"
    ((SECONDS < deadline)) || die "bare_axum did not answer within 30 s"
    sleep 0.01
  done
  BENCH_TOKEN='' BENCH_METHOD=GET BENCH_BODY='' BENCH_CONTENT_TYPE='' \
    run_wrk 'bare axum' "$label" "$CONNECTIONS" "$DURATION" "$BASE_URL/" "$pid"
  stop_pid "$pid"
}

# Per backend: a fresh database and api, set up once; each round then runs every route.
setup_backend() {
  local backend=$1 item_json count i
  log "== $backend"
  new_database "$backend"
  start_api LOG_LEVEL="$API_LOG_LEVEL"
  wait_ready
  EMAIL="bench-$backend-$RANDOM@example.com"
  TOKEN=$(signup_and_login "$EMAIL" "$USER_PASSWORD")
  [[ -n $TOKEN ]] || die "[$backend] no access token"
  item_json='{"title":"Benchmark item","description":"created by scripts/bench/api.sh"}'
  for ((i = 0; i < 100; i++)); do
    api_call POST /api/v1/items/ -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
      -d "$item_json" >/dev/null
  done
  count=$(api_call GET '/api/v1/items/?limit=100' -H "Authorization: Bearer $TOKEN" |
    sed -n 's/.*"count":\([0-9]*\).*/\1/p')
  [[ $count == 100 ]] || die "[$backend] expected 100 items, the api counts ${count:-none}"
  api_call GET /api/v1/users/me -H "Authorization: Bearer $TOKEN" >/dev/null
}

bench_routes() {
  local backend=$1 dbname=
  [[ $backend == postgres ]] && dbname=${DB_URL%%\?*} && dbname=${dbname##*/}
  local item_json='{"title":"Benchmark item","description":"created by scripts/bench/api.sh"}'
  # Every GET item list must stay 100 items long: POST runs after the lists,
  # and each round starts from a fresh database.
  local measure=(run_wrk "$backend")
  BENCH_TOKEN='' BENCH_METHOD=GET BENCH_BODY='' BENCH_CONTENT_TYPE='' \
    "${measure[@]}" 'GET /api/v1/utils/health-check/' "$CONNECTIONS" "$DURATION" \
    "$BASE_URL/api/v1/utils/health-check/" "$API_PID" "$dbname"
  BENCH_TOKEN='' BENCH_METHOD=GET BENCH_BODY='' BENCH_CONTENT_TYPE='' \
    "${measure[@]}" 'GET /healthz' "$CONNECTIONS" "$DURATION" "$BASE_URL/healthz" "$API_PID" "$dbname"
  BENCH_TOKEN=$TOKEN BENCH_METHOD=GET BENCH_BODY='' BENCH_CONTENT_TYPE='' \
    "${measure[@]}" 'GET /api/v1/users/me' "$CONNECTIONS" "$DURATION" "$BASE_URL/api/v1/users/me" "$API_PID" "$dbname"
  BENCH_TOKEN=$TOKEN BENCH_METHOD=GET BENCH_BODY='' BENCH_CONTENT_TYPE='' \
    "${measure[@]}" 'GET /api/v1/items/?limit=100' "$CONNECTIONS" "$DURATION" \
    "$BASE_URL/api/v1/items/?limit=100" "$API_PID" "$dbname"
  BENCH_TOKEN=$TOKEN BENCH_METHOD=POST BENCH_BODY=$item_json BENCH_CONTENT_TYPE=application/json \
    "${measure[@]}" 'POST /api/v1/items/' "$CONNECTIONS" "$DURATION" "$BASE_URL/api/v1/items/" "$API_PID" "$dbname"
  if [[ $LOGIN != 0 ]]; then
    BENCH_TOKEN='' BENCH_METHOD=POST BENCH_CONTENT_TYPE=application/x-www-form-urlencoded \
      BENCH_BODY="username=${EMAIL//@/%40}&password=$USER_PASSWORD" \
      "${measure[@]}" 'login (POST /api/v1/login/access-token)' "$LOGIN_CONNECTIONS" "$LOGIN_DURATION" \
      "$BASE_URL/api/v1/login/access-token" "$API_PID" "$dbname"
  fi
}

teardown_backend() {
  local backend=$1 problems
  server_status_counts "$backend"
  problems=$(grep -c -E '"level":"(WARN|ERROR)"' "$API_LOG" || true)
  SERVER_STATUS+=("$backend: api log lines at WARN or ERROR during the round: $problems")
  SERVER_STATUS+=("$backend: access log lines (\"request finished\") written: $(grep -c '"request finished"' "$API_LOG" || true)")
  stop_api
  [[ -z $RAW_DIR ]] || cp "$API_LOG" "$RAW_DIR/$backend-api-$ROUND.log"
  : >"$API_LOG"
  drop_database
}

for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
  wait_for_quiet
  SERVER_STATUS+=("round $ROUND: CPU busy with other work just before it: ${MACHINE_BUSY}%")
  bench_floor 'GET /'
  for backend in $BENCH_BACKENDS; do
    setup_backend "$backend"
    bench_routes "$backend"
    teardown_backend "$backend"
  done
  # The floor again: on this machine it moved by a fifth with what ran
  # before it (docs/benchmarks.md, stop 24), so each round is bracketed.
  wait_for_quiet
  bench_floor 'GET / (after the routes)'
  SERVER_STATUS+=("round $ROUND: load average after it: $(cut -d' ' -f1-3 /proc/loadavg)")
done

# figure KEY FIELD: the median over the rounds ("-" when there is none).
figure() {
  local values=${RESULTS[$1|$2]:-}
  if [[ $values == *-* || -z $values ]]; then
    echo -
  else
    tr ' ' '\n' <<<"$values" | grep . | median
  fi
}

# The floor: the median of every floor run, before and after the routes.
FLOOR_CPU=$(printf '%s %s' "${RESULTS['bare axum|GET /|server_cpu']}" \
  "${RESULTS['bare axum|GET / (after the routes)|server_cpu']}" | tr ' ' '\n' | grep . | median)
provenance
echo
echo "| backend | request | c | requests | req/s | p50 ms | p99 ms | p99.9 ms | server CPU-s/10k | Postgres CPU-s/10k | total CPU-s/10k | × bare axum (server) | non-2xx / socket errors |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for key in "${ORDER[@]}"; do
  server=$(figure "$key" server_cpu)
  ratio=$(awk -v a="$server" -v b="$FLOOR_CPU" 'BEGIN { if (b > 0) printf "%.1f", a / b; else printf "-" }')
  # shellcheck disable=SC2016 # the backticks are Markdown
  printf '| %s | `%s` | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
    "${key%%|*}" "${key#*|}" "${RESULTS[$key|connections]}" "$(figure "$key" requests)" "$(figure "$key" rps)" \
    "$(figure "$key" p50)" "$(figure "$key" p99)" "$(figure "$key" p999)" "$server" "$(figure "$key" db_cpu)" \
    "$(figure "$key" total_cpu)" "$ratio" "${RESULTS[$key|errors]% }"
done
echo
echo "wrk: -t$THREADS -c$CONNECTIONS -d$DURATION (login: -c$LOGIN_CONNECTIONS -d$LOGIN_DURATION), --timeout 10s,"
echo "warm-up $WARMUP per non-login run; $ROUNDS round(s), figures are medians over the rounds. CPU-s/10k:"
echo "CPU seconds (user + system, /proc/PID/stat) per 10,000 requests; server = the api (or bare_axum)"
echo "process, all threads (on SQLite the database runs inside it); Postgres = its backends connected"
echo "to the bench database. The ratio is the server's CPU per request over bare axum's \`GET /\`"
echo "(the median of its runs before and after the routes of every round)."
echo
echo "Server-side response counts (api /metrics, http_requests_total, incl. setup and warm-up) and conditions:"
echo
printf -- '- %s\n' "${SERVER_STATUS[@]}"
