#!/usr/bin/env bash
# Instructions per request, by function, with valgrind's callgrind: counts
# that repeat run after run, unlike wall or CPU time on a busy machine.
#
# First the floor, crates/api/examples/bare_axum.rs (`GET /`), profiled the
# same way. Then for each backend: a fresh database, the release api started under
# callgrind (LOG_LEVEL=info), a user and 100 items created, then for each
# route a warm-up of BENCH_CALLGRIND_WARMUP requests, the counters zeroed, a
# fixed BENCH_CALLGRIND_REQUESTS requests on one keep-alive connection
# (curl), and the counters dumped: that dump, divided by the number of
# requests, is one request's cost. Prints a table of instructions per
# request (total, and inclusive for the functions named in FOCUS below) and
# keeps every dump in BENCH_CALLGRIND_DIR for callgrind_annotate.
#
# The binaries need symbols, so this script builds them with
# CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=line-tables-only
# (the other bench scripts then rebuild them stripped).
#
# Usage: scripts/bench/callgrind.sh
# Settings (environment), besides those of scripts/bench/common.sh:
#   BENCH_CALLGRIND_REQUESTS (500), BENCH_CALLGRIND_WARMUP (100)
#   BENCH_CALLGRIND_DIR   where the dumps go (default: target/callgrind)
set -euo pipefail

# shellcheck source=SCRIPTDIR/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

REQUESTS=${BENCH_CALLGRIND_REQUESTS:-500}
WARMUP=${BENCH_CALLGRIND_WARMUP:-100}
OUT_DIR=${BENCH_CALLGRIND_DIR:-$TARGET_DIR/callgrind}
USER_PASSWORD=bench-password-1

need valgrind "apt-get install valgrind"
need callgrind_annotate "apt-get install valgrind"
BENCH_QUIET_WAIT=0
export CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=line-tables-only
has_symbols() { (($(nm "$1" 2>/dev/null | wc -l) > 0)); }
# A stripped api (built by the other bench scripts) is rebuilt with symbols.
has_symbols "$BIN_DIR/api" || rm -f "$BIN_DIR/api"
bench_init
mkdir -p "$OUT_DIR"
has_symbols "$RUN_BIN_DIR/api" || die "$BIN_DIR/api has no symbols"

# Where a request's instructions go: a label and a function-name pattern
# (callgrind_annotate --inclusive=yes); the first function that matches counts.
FOCUS=(
  "request id (a new UUID as a header)|api::middleware::request_id::new_id"
  "telemetry: request span, and the call down the layers below|api::middleware::telemetry::Observe<S> as tower_service::Service"
  "telemetry: outcome recorded on the span, access log line, metrics|api::middleware::telemetry::Started::finish"
  "  access log line (JSON layer, write)|shared_core::telemetry::json_line::JsonLines<W> as tracing_subscriber::layer::Layer<S>>::on_event"
  "  metrics (request series)|api::middleware::telemetry::record|metrics_exporter_prometheus::recorder::Inner.*register|metrics::recorder::Recorder>::register_counter"
  "rate limit (the counter)|api::rate_limit::RateLimiter::request_allowed"
  "token decoding (all calls)|shared_core::auth::token::TokenKeys::decode_access_token"
  "user lookup (CurrentUser)|api::extract::auth::CurrentUser"
  "items::list (SQL, rows)|shared_core::db::items::list"
  "sqlx row decoding (FromRow)|sqlx_core::from_row::FromRow<R>>::from_row|as sqlx_core::from_row::FromRow"
  "JSON response (sonic-rs)|api::json::Json<T> as axum_core::response::into_response::IntoResponse>::into_response"
  "items to JSON (ItemPublic)|impl serde_core::ser::Serialize for api::models::ItemPublic>::serialize"
  "  timestamps|api::models::timestamp::serialize"
  "pool acquire (incl. connection test)|sqlx_core::pool::inner::PoolInner<DB>>::acquire"
)

send() {
  local n=$1 path=$2 token=${3:-} urls=() i
  for ((i = 0; i < n; i++)); do urls+=("$BASE_URL$path"); done
  local auth=()
  [[ -z $token ]] || auth=(-H "Authorization: Bearer $token")
  curl -sS --fail "${auth[@]}" "${urls[@]}" >/dev/null
}

ROWS=()
profile_route() {
  local backend=$1 label=$2 path=$3 token=${4:-} file
  file=$OUT_DIR/${backend// /_}-${label//[^a-zA-Z0-9]/_}.out
  send "$WARMUP" "$path" "$token"
  callgrind_control --zero "$API_PID" >/dev/null
  send "$REQUESTS" "$path" "$token"
  rm -f "$WORK"/callgrind.out.*
  callgrind_control --dump="$label" "$API_PID" >/dev/null
  # The dump lands beside the api (its working directory is $WORK).
  local dump
  for ((i = 0; i < 100; i++)); do
    dump=$(find "$WORK" -maxdepth 1 -name 'callgrind.out.*' -newer "$API_LOG" -size +0 | head -n1)
    [[ -n $dump ]] && break
    sleep 0.1
  done
  [[ -n $dump ]] || die "no callgrind dump for $label"
  sleep 0.5
  mv "$dump" "$file"
  local annotated total
  annotated=$(callgrind_annotate --inclusive=yes --threshold=100 "$file" 2>/dev/null)
  total=$(sed -n 's/^\([0-9,]*\) (100.0%).*PROGRAM TOTALS.*/\1/p' <<<"$annotated" | tr -d ,)
  [[ -n $total ]] || total=$(grep -m1 'PROGRAM TOTALS' <<<"$annotated" | awk '{ gsub(",", "", $1); print $1 }')
  ROWS+=("| $backend | \`$label\` | **total** | $((total / REQUESTS)) |")
  local entry name pattern ir
  for entry in "${FOCUS[@]}"; do
    name=${entry%%|*}
    pattern=${entry#*|}
    ir=$(grep -E -m1 "$pattern" <<<"$annotated" | awk '{ gsub(",", "", $1); print $1 }') || true
    [[ -n $ir ]] && ROWS+=("| $backend | \`$label\` | $name | $((ir / REQUESTS)) |")
  done
  log "[$backend] $label: $((total / REQUESTS)) instructions per request ($file)"
}

# valgrind runs the program as the same pid; give it time to start under emulation.
wait_under_valgrind() {
  local url=$1 log=$2 deadline=$((SECONDS + 300))
  until curl -fso /dev/null --max-time 5 "$url"; do
    kill -0 "$API_PID" 2>/dev/null || die "the server exited: $(tail -n 5 "$log")"
    ((SECONDS < deadline)) || die "the server was not ready under valgrind within 300 s"
    sleep 0.5
  done
}

# The floor first: the bare axum server's `GET /`, on the same runtime set-up.
log "== bare axum (the floor)"
API_LOG=$WORK/bare_axum.log
(
  cd "$WORK" || exit 1
  exec valgrind --tool=callgrind --dump-instr=no --collect-systime=no "$RUN_BIN_DIR/bare_axum" "127.0.0.1:$BENCH_PORT"
) >>"$API_LOG" 2>&1 &
API_PID=$!
wait_under_valgrind "$BASE_URL/" "$API_LOG"
profile_route 'bare axum' 'GET /' /
stop_pid "$API_PID"
API_PID=

for backend in $BENCH_BACKENDS; do
  log "== $backend"
  new_database "$backend"
  API_LOG=$WORK/api.log
  (
    cd "$WORK" || exit 1
    exec env -i PATH="$PATH" ENVIRONMENT=local SECRET_KEY="$BENCH_SECRET_KEY" DATABASE_URL="$DB_URL" \
      LISTEN_ADDR="127.0.0.1:$BENCH_PORT" METRICS_ADDR="127.0.0.1:$BENCH_METRICS_PORT" \
      LOG_LEVEL=info LOG_FORMAT=json RATE_LIMIT_PER_MINUTE=1000000000 \
      FIRST_SUPERUSER="$BENCH_SUPERUSER" FIRST_SUPERUSER_PASSWORD="$BENCH_SUPERUSER_PASSWORD" \
      valgrind --tool=callgrind --dump-instr=no --collect-systime=no "$RUN_BIN_DIR/api"
  ) >>"$API_LOG" 2>&1 &
  API_PID=$!
  wait_under_valgrind "$BASE_URL/readyz" "$API_LOG"
  email="callgrind-$backend-$RANDOM@example.com"
  token=$(signup_and_login "$email" "$USER_PASSWORD")
  for ((i = 0; i < 100; i++)); do
    api_call POST /api/v1/items/ -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
      -d '{"title":"Benchmark item","description":"created by scripts/bench/callgrind.sh"}' >/dev/null
  done
  profile_route "$backend" 'GET /healthz' /healthz
  profile_route "$backend" 'GET /api/v1/utils/health-check/' /api/v1/utils/health-check/
  profile_route "$backend" 'GET /api/v1/users/me' /api/v1/users/me "$token"
  profile_route "$backend" 'GET /api/v1/items/?limit=100' '/api/v1/items/?limit=100' "$token"
  stop_pid "$API_PID"
  API_PID=
  drop_database
done

provenance
echo
echo "Instructions per request (callgrind, $REQUESTS requests after $WARMUP of warm-up, one keep-alive connection;"
echo "inclusive: a function's own instructions and those of everything it calls; the indented lines are part of the one above):"
echo
echo "| backend | request | where | instructions per request |"
echo "|---|---|---|---:|"
printf '%s\n' "${ROWS[@]}"
echo
echo "Dumps: $OUT_DIR (callgrind_annotate --inclusive=yes FILE)."
