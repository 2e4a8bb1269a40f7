# shellcheck shell=bash
# Shared helpers for the server-side scripts (deploy.sh, rollback.sh, backup.sh,
# restore.sh, health-check.sh). Sourced, never executed.
#
# The first section (logging, apt_install, ports, waiting, stopping a
# process) is also sourced by the development and test scripts:
# check-static.sh, ci-deploy.sh, bench/common.sh, .ci/run,
# tests/ops/lib.sh and tests/ops/run.sh. It depends on nothing of the server
# layout below. (setup-server.sh is copied to a bare server on its own and
# keeps its own few helpers.)
#
# Layout on the server (see compose/README.md): APP_DIR (default: the parent of this
# scripts/ directory, /opt/app in production) holds compose/compose.prod.yml,
# Caddyfile, scripts/, .env, backups/, deploy-history and current-tag.
#
# Every setting can come from the environment or from APP_DIR/.env; the
# environment wins.

# ---------------------------------------------------------------------------
# General helpers

# log MESSAGE / die MESSAGE: a UTC-timestamped line tagged LOG_TAG on stderr;
# die exits 1 after it.
log() { printf '%s [%s] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${LOG_TAG:-ops}" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# apt_install PACKAGE...: apt-get install without recommends, quietly, as
# root (or through sudo -n when that works); when the install fails, once
# more after apt-get update (the package lists of a fresh machine are empty
# or stale). Returns 1, saying what to install, where it cannot.
apt_install() {
  local sudo=()
  if [[ "$(id -u)" != 0 ]]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo=(sudo -n); fi
  fi
  if [[ "$(id -u)" != 0 && ${#sudo[@]} == 0 ]] || ! command -v apt-get >/dev/null; then
    log "missing $*; cannot install them here (not root, or no apt-get): apt-get install $*"
    return 1
  fi
  log "installing $* (apt-get)"
  local install=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@")
  "${install[@]}" >/dev/null 2>&1 && return 0
  "${sudo[@]}" apt-get update -qq >/dev/null && "${install[@]}" >/dev/null
}

# port_in_use PORT [ADDRESS...]: something accepts connections on PORT at one
# of the addresses (default 127.0.0.1).
port_in_use() {
  local port="$1" a
  shift
  for a in "${@:-127.0.0.1}"; do
    if (exec 3<>"/dev/tcp/$a/$port") 2>/dev/null; then return 0; fi
  done
  return 1
}

# pick_port VAR [PREFERRED [ADDRESS...]]: sets VAR to PREFERRED when nothing
# listens on it at the addresses (default 127.0.0.1), else to a random free
# port from 20000 to 59999; never to a port an earlier call handed out. Not
# in $(...): the ports handed out are remembered in this shell.
declare -gA PICKED_PORTS=()
pick_port() {
  local var="$1" p="${2:-}" i
  shift $(($# < 2 ? $# : 2))
  for ((i = 0; i < 100; i++)); do
    [[ -n "$p" ]] || p=$((20000 + RANDOM % 40000))
    if [[ -z "${PICKED_PORTS[$p]:-}" ]] && ! port_in_use "$p" "$@"; then
      PICKED_PORTS[$p]=1
      printf -v "$var" '%s' "$p"
      return 0
    fi
    p=""
  done
  die "no free port found"
}

# wait_for [--while PID] SECONDS CMD...: runs CMD every 0.1 s until it
# succeeds; 1 when SECONDS have passed first, or, with --while, as soon as
# process PID has exited.
wait_for() {
  local pid="" end
  if [[ "$1" == --while ]]; then
    pid="$2"
    shift 2
  fi
  end=$((SECONDS + $1))
  shift
  while true; do
    "$@" && return 0
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    ((SECONDS < end)) || return 1
    sleep 0.1
  done
}

# stop_pid PID [SECONDS]: SIGTERM, up to SECONDS (default 30) to exit, then
# SIGKILL; sets STOP_STATUS to its exit status (137 when killed, 127 when it
# was no child of this shell). Not in $(...): only this shell can wait for
# its children.
STOP_STATUS=
# shellcheck disable=SC2034 # STOP_STATUS is read by the callers
stop_pid() {
  local pid="$1" limit="${2:-30}" i
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < limit * 20; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid ignored SIGTERM for ${limit}s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  STOP_STATUS=0
  wait "$pid" 2>/dev/null || STOP_STATUS=$?
}

# ---------------------------------------------------------------------------
# The server layout

LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
APP_DIR="${APP_DIR:-$(cd "$LIB_DIR/.." && pwd)}"
ENV_FILE="${ENV_FILE:-$APP_DIR/.env}"
COMPOSE_FILE_PATH="${COMPOSE_FILE_PATH:-$APP_DIR/compose/compose.prod.yml}"
COMPOSE_PROJECT="${COMPOSE_PROJECT:-app}"
HISTORY_FILE="${HISTORY_FILE:-$APP_DIR/deploy-history}"
CURRENT_TAG_FILE="${CURRENT_TAG_FILE:-$APP_DIR/current-tag}"
LOCK_FILE="${LOCK_FILE:-$APP_DIR/.deploy.lock}"


# env_get NAME [DEFAULT]: the value of NAME from the environment, else the last
# NAME=... line of the .env file (surrounding quotes removed), else DEFAULT.
env_get() {
  local name="$1" default="${2:-}" line value
  if [[ -n "${!name+x}" ]]; then
    printf '%s' "${!name}"
    return 0
  fi
  if [[ -r "$ENV_FILE" ]]; then
    line="$(grep -E "^[[:space:]]*(export[[:space:]]+)?${name}=" "$ENV_FILE" | tail -n 1 || true)"
    if [[ -n "$line" ]]; then
      value="${line#*=}"
      value="${value%$'\r'}"
      if [[ "$value" =~ ^\"(.*)\"$ || "$value" =~ ^\'(.*)\'$ ]]; then
        value="${BASH_REMATCH[1]}"
      fi
      printf '%s' "$value"
      return 0
    fi
  fi
  printf '%s' "$default"
}

# dc ARGS...: docker compose for the production project.
dc() {
  local args=(compose --project-name "$COMPOSE_PROJECT" -f "$COMPOSE_FILE_PATH")
  if [[ -f "$ENV_FILE" ]]; then
    args+=(--env-file "$ENV_FILE")
  fi
  docker "${args[@]}" "$@"
}

# The database flavour: "postgres" when the postgres profile is enabled,
# otherwise "sqlite" (the api and worker share the /data volume).
db_kind() {
  local profiles
  profiles=",$(env_get COMPOSE_PROFILES),"
  if [[ "$profiles" == *,postgres,* ]]; then
    echo postgres
  else
    echo sqlite
  fi
}

# Export what docker compose needs for interpolation so it does not depend on
# the shell that called us.
export_compose_env() {
  local v
  for v in COMPOSE_PROFILES IMAGE_PREFIX; do
    if [[ -z "${!v+x}" ]]; then
      local val
      val="$(env_get "$v")"
      if [[ -n "$val" ]]; then
        export "$v=$val"
      fi
    fi
  done
}

# compose/compose.prod.yml needs Docker Engine 25 or newer (its healthchecks
# use start_interval; older engines, or Compose against them, refuse it).
MIN_DOCKER_ENGINE=25

# require_docker_engine: dies with what to do unless the engine that `docker`
# talks to is Docker Engine MIN_DOCKER_ENGINE or newer. DOCKER_ENGINE_CHECK=0
# skips it (scripts/container-test.sh on podman, with a compose file made
# for podman).
require_docker_engine() {
  [[ "$(env_get DOCKER_ENGINE_CHECK 1)" != 0 ]] || return 0
  local version
  version="$(docker version --format '{{.Server.Version}}' 2>/dev/null || true)"
  if [[ -z "$version" ]]; then
    die "no Docker Engine answers ('docker version' failed): start it (systemctl start docker) or check DOCKER_HOST"
  fi
  if [[ ! "${version%%.*}" =~ ^[0-9]+$ ]] || ((${version%%.*} < MIN_DOCKER_ENGINE)); then
    die "Docker Engine $version is too old: compose/compose.prod.yml needs Docker Engine $MIN_DOCKER_ENGINE or newer (healthcheck start_interval). Upgrade it (setup-server.sh --docker official installs the current release) before deploying."
  fi
}

valid_tag() {
  [[ "$1" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]]
}

# Containers (ids) of a compose service, running or not.
service_containers() {
  dc ps -a -q "$1" 2>/dev/null | sed '/^$/d' || true
}

# running_containers SERVICE: ids of the service's running containers, one a line.
running_containers() {
  dc ps -q "$1" 2>/dev/null | sed '/^$/d' || true
}

# running_tag SERVICE: the image tag of the service's first running container
# (latest for an image named without one); nothing when none runs.
running_tag() {
  local id image
  id="$(running_containers "$1" | head -n 1)"
  [[ -n "$id" ]] || return 0
  image="$(docker inspect --format '{{.Config.Image}}' "$id" 2>/dev/null || true)"
  [[ -n "$image" ]] || return 0
  image="${image%%@*}"
  if [[ "${image##*/}" == *:* ]]; then echo "${image##*:}"; else echo latest; fi
}

container_health() {
  docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$1" 2>/dev/null || echo missing
}

# wait_healthy ID TIMEOUT_SECONDS INTERVAL: 0 when the container reports healthy
# (or, for a container without a healthcheck, is running), 1 when it turns
# unhealthy, exits, disappears or the timeout passes.
wait_healthy() {
  local id="$1" timeout="$2" interval="$3" status start now
  start="$(date +%s)"
  while true; do
    status="$(container_health "$id")"
    case "$status" in
      healthy|running) return 0 ;;
      unhealthy|exited|dead|missing|removing) log "container ${id:0:12} is $status"; return 1 ;;
    esac
    now="$(date +%s)"
    if (( now - start >= timeout )); then
      log "container ${id:0:12} still '$status' after ${timeout}s"
      return 1
    fi
    sleep "$interval"
  done
}

history_append() { # TAG RESULT [NOTE]
  printf '%s\t%s\t%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" "$2" "${3:-}" >>"$HISTORY_FILE"
}

current_tag() {
  if [[ -s "$CURRENT_TAG_FILE" ]]; then
    head -n 1 "$CURRENT_TAG_FILE"
  fi
}

set_current_tag() {
  local tmp
  tmp="$(mktemp "$CURRENT_TAG_FILE.XXXXXX")"
  printf '%s\n' "$1" >"$tmp"
  chmod 644 "$tmp"
  mv -f "$tmp" "$CURRENT_TAG_FILE"
}
