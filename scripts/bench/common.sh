# shellcheck shell=bash
# Helpers shared by the scripts in scripts/bench/ (api.sh, startup.sh, jobs.sh).
# Sourced, not run. Everything they start is a child of the calling script,
# listens on loopback only, and is stopped (and every database it created
# dropped) by the EXIT trap installed by bench_init.
#
# Settings (environment):
#   CARGO_TARGET_DIR     where the release binaries are (default: <repo>/target); they are
#                        rebuilt when missing or older than the sources
#   BENCH_NO_BUILD=1     never rebuild: measure the binaries that are there, stale or not
#   BENCH_POSTGRES_URL   admin URL of the Postgres server (default postgres://postgres@127.0.0.1:5432/postgres);
#                        the scripts CREATE and DROP their own databases there; a ?query
#                        (e.g. ?sslmode=disable) is kept on the URLs the api gets
#   BENCH_PORT           public port of the api under test (default: a free one above 20000)
#   BENCH_METRICS_PORT   its metrics port (default: a free one above 20000)
#   BENCH_BACKENDS       "sqlite postgres" (default) or one of them
#   BENCH_QUIET_WAIT     seconds to wait, before each measurement block, for the CPUs to be
#                        >= 90% idle (other builds or tests skew the numbers; default 900, 0 = don't wait)

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$BENCH_DIR/../.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_ROOT/target}
BIN_DIR=$TARGET_DIR/release
RUN_BIN_DIR=$BIN_DIR
PG_ADMIN_URL=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
BENCH_PORT=${BENCH_PORT:-}
BENCH_METRICS_PORT=${BENCH_METRICS_PORT:-}
BENCH_BACKENDS=${BENCH_BACKENDS:-sqlite postgres}
BASE_URL=
METRICS_URL=

BENCH_SECRET_KEY=bench-secret-key-that-is-at-least-32-bytes-long
BENCH_SUPERUSER=admin@example.com
BENCH_SUPERUSER_PASSWORD=bench-admin-password

API_PID=
API_LOG=
WORKER_PID=
DB_URL=
WORK=
PG_DATABASES=()

# log, die, port_in_use, pick_port and stop_pid: scripts/lib.sh.
# shellcheck source=scripts/lib.sh
source "$BENCH_DIR/../lib.sh"
LOG_TAG=bench

need() { command -v "$1" >/dev/null 2>&1 || die "$1 is required: $2"; }

bench_cleanup() {
  local status=$? pid
  for pid in $WORKER_PID $API_PID; do
    stop_pid "$pid"
  done
  local name
  for name in "${PG_DATABASES[@]}"; do
    psql "$PG_ADMIN_URL" -qAtX -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null 2>&1 || true
  done
  if [[ -n $WORK && -d $WORK ]]; then
    rm -rf "$WORK"
  fi
  exit "$status"
}

bench_init() {
  need curl "apt-get install curl"
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench.XXXXXX")
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
  ensure_release_build
  # Run a private copy, so a rebuild during the run cannot swap binaries mid-measurement.
  mkdir -p "$WORK/bin"
  cp -p "$BIN_DIR/api" "$BIN_DIR/worker" "$BIN_DIR/examples/bare_axum" "$WORK/bin/"
  RUN_BIN_DIR=$WORK/bin
  local backend
  for backend in $BENCH_BACKENDS; do
    case $backend in
      sqlite) ;;
      postgres)
        need psql "apt-get install postgresql-client"
        psql "$PG_ADMIN_URL" -qAtX -c 'SELECT 1' >/dev/null || die "Postgres not reachable at $PG_ADMIN_URL"
        ;;
      *) die "unknown backend $backend in BENCH_BACKENDS" ;;
    esac
  done
  [[ -n $BENCH_PORT ]] || pick_port BENCH_PORT
  if [[ -z $BENCH_METRICS_PORT ]]; then
    pick_port BENCH_METRICS_PORT
    # A BENCH_PORT from the environment was not handed out by pick_port.
    [[ $BENCH_METRICS_PORT != "$BENCH_PORT" ]] || pick_port BENCH_METRICS_PORT
  fi
  if port_in_use "$BENCH_PORT" || port_in_use "$BENCH_METRICS_PORT"; then
    die "port $BENCH_PORT or $BENCH_METRICS_PORT is already in use (set BENCH_PORT / BENCH_METRICS_PORT)"
  fi
  BASE_URL=http://127.0.0.1:$BENCH_PORT
  # shellcheck disable=SC2034 # used by api.sh
  METRICS_URL=http://127.0.0.1:$BENCH_METRICS_PORT/metrics
}

ensure_release_build() {
  if [[ -x $BIN_DIR/api && -x $BIN_DIR/worker && -x $BIN_DIR/examples/bare_axum ]]; then
    local oldest=$BIN_DIR/api stale binary
    for binary in "$BIN_DIR/worker" "$BIN_DIR/examples/bare_axum"; do
      [[ $binary -nt $oldest ]] || oldest=$binary
    done
    stale=$(cd "$REPO_ROOT" && find crates migrations Cargo.toml Cargo.lock -newer "$oldest" -type f -print -quit)
    [[ -n $stale ]] || return 0
    if [[ ${BENCH_NO_BUILD:-0} == 1 ]]; then
      log "warning: $oldest is older than $stale (BENCH_NO_BUILD=1: using it anyway)"
      return 0
    fi
    log "release binaries older than $stale: rebuilding"
  fi
  need cargo "install Rust (https://rustup.rs)"
  log "building release binaries into $TARGET_DIR (cargo build --release -p api -p worker --bins --example bare_axum)"
  (cd "$REPO_ROOT" && CARGO_TARGET_DIR=$TARGET_DIR cargo build --release -p api -p worker --bins --example bare_axum)
}

# cpu_busy_percent: how busy all CPUs were over the next 2 seconds (whole machine).
cpu_busy_percent() {
  local a b
  a=$(head -n1 /proc/stat)
  sleep 2
  b=$(head -n1 /proc/stat)
  awk -v a="$a" -v b="$b" 'BEGIN {
    n = split(a, x); split(b, y); total = 0
    for (i = 2; i <= n; i++) total += y[i] - x[i]
    idle = (y[5] - x[5]) + (y[6] - x[6])
    printf "%d", (total > 0 ? 100 * (total - idle) / total : 0)
  }'
}

# wait_for_quiet: waits (up to BENCH_QUIET_WAIT s) until nothing else keeps the CPUs busy;
# sets MACHINE_BUSY to the last busy percentage seen before measuring.
MACHINE_BUSY=
wait_for_quiet() {
  local limit=${BENCH_QUIET_WAIT:-900} waited=0
  MACHINE_BUSY=$(cpu_busy_percent)
  while ((MACHINE_BUSY > 10 && waited < limit)); do
    ((waited == 0)) && log "the CPUs are ${MACHINE_BUSY}% busy with other work; waiting up to ${limit}s for them to go quiet"
    sleep 8
    waited=$((waited + 10))
    MACHINE_BUSY=$(cpu_busy_percent)
  done
  ((MACHINE_BUSY <= 10)) || log "warning: measuring on a busy machine (${MACHINE_BUSY}% CPU used by other work)"
}

# provenance: one line saying which binaries are measured and what source they come from.
provenance() {
  local head dirty=clean built
  head=$(git -C "$REPO_ROOT" log -1 --format='%h (%cI)' 2>/dev/null || echo unknown)
  if [[ -n $(git -C "$REPO_ROOT" status --porcelain -- crates migrations Cargo.toml Cargo.lock 2>/dev/null) ]]; then
    dirty="uncommitted changes under crates/, migrations/ or Cargo.*"
  fi
  built=$(date -u -r "$RUN_BIN_DIR/api" +%FT%TZ)
  echo "Binaries: copies of $BIN_DIR/{api,worker} ($("$RUN_BIN_DIR/api" --version)), api built $built;" \
    "repository HEAD $head, working tree $dirty; measured $(date -u +%FT%TZ) on $(nproc) CPUs."
}

# new_database BACKEND: a fresh, empty database; sets DB_URL.
new_database() {
  case $1 in
    sqlite)
      local dir
      dir=$(mktemp -d "$WORK/sqlite.XXXXXX")
      DB_URL=sqlite:$dir/app.db
      ;;
    postgres)
      local name
      name=bench_$(date +%s%N)_$RANDOM
      psql "$PG_ADMIN_URL" -qAtX -v ON_ERROR_STOP=1 -c "CREATE DATABASE $name" >/dev/null
      PG_DATABASES+=("$name")
      # Keep any ?query (e.g. ?sslmode=disable) of the admin URL.
      local query=
      [[ $PG_ADMIN_URL == *\?* ]] && query="?${PG_ADMIN_URL#*\?}"
      DB_URL=${PG_ADMIN_URL%%\?*}
      DB_URL=${DB_URL%/*}/$name$query
      ;;
  esac
}

# drop_database: removes the database DB_URL points at (Postgres) or its directory (SQLite).
drop_database() {
  case $DB_URL in
    sqlite:*)
      local file=${DB_URL#sqlite:}
      rm -rf "$(dirname "$file")"
      ;;
    *)
      local name=${DB_URL%%\?*}
      name=${name##*/}
      psql "$PG_ADMIN_URL" -qAtX -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null
      local kept=() db
      for db in "${PG_DATABASES[@]}"; do
        [[ $db == "$name" ]] || kept+=("$db")
      done
      PG_DATABASES=("${kept[@]}")
      ;;
  esac
  DB_URL=
}

# run_release NAME [VAR=VALUE...]: starts the release binary NAME (api or worker)
# on DB_URL in a clean environment (no .env: it runs in the scratch directory;
# loopback ports, high rate limits, warn-level JSON logs), VAR=VALUE added or
# overriding; its output goes to $WORK/NAME.log. The caller takes $! as its pid.
run_release() {
  local name=$1
  shift
  (
    cd "$WORK" || exit 1
    exec env -i PATH="$PATH" \
      ENVIRONMENT=local \
      SECRET_KEY="$BENCH_SECRET_KEY" \
      DATABASE_URL="$DB_URL" \
      LISTEN_ADDR="127.0.0.1:$BENCH_PORT" \
      METRICS_ADDR="127.0.0.1:$BENCH_METRICS_PORT" \
      LOG_LEVEL=warn \
      LOG_FORMAT=json \
      RATE_LIMIT_PER_MINUTE=1000000000 \
      LOGIN_FAILURES_PER_ACCOUNT_PER_MINUTE=1000000000 \
      LOGIN_FAILURES_PER_CLIENT_PER_MINUTE=1000000000 \
      FIRST_SUPERUSER="$BENCH_SUPERUSER" \
      FIRST_SUPERUSER_PASSWORD="$BENCH_SUPERUSER_PASSWORD" \
      SHUTDOWN_GRACE_SECONDS=10 \
      "$@" \
      "$RUN_BIN_DIR/$name"
  ) >>"$WORK/$name.log" 2>&1 &
}

# start_api [VAR=VALUE...]: starts the api (see run_release); sets API_PID.
# shellcheck disable=SC2120 # the overrides are optional
start_api() {
  API_LOG=$WORK/api.log
  run_release api "$@"
  API_PID=$!
}

# wait_ready: polls /readyz every 5 ms until it answers 200 (60 s at most).
wait_ready() {
  local deadline=$((SECONDS + 60))
  until curl -fso /dev/null --max-time 1 "$BASE_URL/readyz"; do
    if ! kill -0 "$API_PID" 2>/dev/null; then
      tail -n 20 "$API_LOG" >&2
      die "the api exited before it was ready"
    fi
    ((SECONDS < deadline)) || die "the api was not ready within 60 s"
    sleep 0.005
  done
  # Someone else answering on the port would look ready too: the listening
  # socket must be one of the api's own file descriptors.
  api_owns_port || {
    tail -n 20 "$API_LOG" >&2
    die "something other than our api (pid $API_PID) answers on port $BENCH_PORT"
  }
}

api_owns_port() {
  local inode
  inode=$(awk -v port="$(printf ':%04X' "$BENCH_PORT")" \
    'substr($2, length($2) - 4) == port && $4 == "0A" { print $10; exit }' /proc/net/tcp)
  [[ -n $inode ]] && find "/proc/$API_PID/fd" -lname "socket:\[$inode\]" 2>/dev/null | grep -q .
}

# stop_api: stops the api (stop_pid) and insists on exit status 0.
stop_api() {
  stop_pid "$API_PID"
  API_PID=
  ((STOP_STATUS == 0)) || {
    tail -n 20 "$API_LOG" >&2
    die "the api exited with status $STOP_STATUS after SIGTERM"
  }
}

# proc_status_kb PID FIELD: a /proc/PID/status value in kB (VmRSS, VmHWM, ...).
proc_status_kb() {
  awk -v field="$2:" '$1 == field { print $2 }' "/proc/$1/status"
}

# cpu_ticks PID...: user + system CPU time (clock ticks, all threads) each
# process has used so far, one "PID TICKS" line each; gone ones are skipped.
cpu_ticks() {
  local pid stat
  for pid in "$@"; do
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    # Fields after the ")" closing the command name: utime and stime are the 12th and 13th.
    awk -v pid="$pid" '{ print pid, $12 + $13 }' <<<"${stat##*) }"
  done
}

# postgres_backends DBNAME: the pids of the Postgres backends connected to
# DBNAME (their title is "postgres: [CLUSTER: ]USER DBNAME HOST(PORT) STATE").
postgres_backends() {
  pgrep -f "^postgres: ([^ ]+: )?[^ ]+ $1 " || true
}

# cpu_seconds_between BEFORE AFTER: CPU seconds used between two cpu_ticks
# snapshots; a process only in AFTER started in between and counts whole.
cpu_seconds_between() {
  awk -v hz="$(getconf CLK_TCK)" 'FILENAME == ARGV[1] { before[$1] = $2; next } { used += $2 - before[$1] } END { printf "%.3f", used / hz }' \
    <(printf '%s\n' "$1") <(printf '%s\n' "$2")
}

# median: the median of the numbers on stdin, one per line.
median() {
  sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# json_field NAME: a top-level string field of the JSON object on stdin.
json_field() {
  sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p"
}

# api_call METHOD PATH [curl args...]: prints the body; fails unless the status is 200.
api_call() {
  local method=$1 path=$2
  shift 2
  curl -sS --fail-with-body --max-time 30 -X "$method" "$BASE_URL$path" "$@"
}

# signup_and_login EMAIL PASSWORD: creates the user through the API and prints an access token.
signup_and_login() {
  api_call POST /api/v1/users/signup -H 'Content-Type: application/json' \
    -d "{\"email\":\"$1\",\"password\":\"$2\",\"full_name\":\"Bench User\"}" >/dev/null
  api_call POST /api/v1/login/access-token --data-urlencode "username=$1" --data-urlencode "password=$2" |
    json_field access_token
}
