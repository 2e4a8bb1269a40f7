# shellcheck shell=bash
# Helpers for tests/ops/test-*.sh. Each test file defines case_* functions and
# calls run_cases; every case runs in a subshell with its output captured and
# prints "ok - NAME", "not ok - NAME" (plus its log) or "skip - NAME: why"
# (a case that calls skip), which run.sh counts.

OPS_TESTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck disable=SC2034 # used by the test files that source this one
REPO_ROOT="$(cd "$OPS_TESTS_DIR/../.." && pwd)"
# shellcheck disable=SC2034
FAKES_DIR="$OPS_TESTS_DIR/fakes"
# Where cargo puts the binaries: CARGO_TARGET_DIR (a relative one is taken
# from the repository root, where the tests run cargo) or target/.
case "${CARGO_TARGET_DIR:-}" in
  "") CARGO_TARGET="$REPO_ROOT/target" ;;
  /*) CARGO_TARGET="$CARGO_TARGET_DIR" ;;
  *) CARGO_TARGET="$REPO_ROOT/$CARGO_TARGET_DIR" ;;
esac
# shellcheck disable=SC2034
DEBUG_BIN_DIR="$CARGO_TARGET/debug"

# apt_install, port_in_use, pick_port, wait_for, stop_pid (and log, die):
# the operator scripts' library.
# shellcheck source=scripts/lib.sh
source "$REPO_ROOT/scripts/lib.sh"
LOG_TAG=ops-test

# Temp dirs made by mk_tmp are removed when the test file exits.
OPS_TMP_ROOT="$(mktemp -d "${TMPDIR:-/tmp}/ops-tests.XXXXXX")"
trap 'rm -rf "$OPS_TMP_ROOT"' EXIT
mk_tmp() { mktemp -d "$OPS_TMP_ROOT/case.XXXXXX"; }

# server_layout [v1|empty]: a fresh temp dir T holding APP=$T/app laid out as
# the server's APP_DIR (compose/ with an empty compose.prod.yml, the real
# scripts/*.sh, a .env), the docker stand-ins' state dir STATE=$T/state and
# their (empty) call log LOGF=$T/docker.log. v1 (the default): api, worker
# and caddy containers running, current-tag v1; empty: no container.
server_layout() {
  T="$(mk_tmp)"
  APP="$T/app"
  STATE="$T/state"
  LOGF="$T/docker.log"
  mkdir -p "$APP/compose" "$APP/scripts" "$STATE"
  cp "$REPO_ROOT"/scripts/*.sh "$APP/scripts/"
  : >"$APP/compose/compose.prod.yml"
  cat >"$APP/.env" <<'EOF'
DOMAIN=app.example.test
IMAGE_PREFIX=ghcr.io/acme/app
HEALTH_RETRIES=3
HEALTH_INTERVAL=0.1
EOF
  : >"$LOGF"
  if [[ "${1:-v1}" == v1 ]]; then
    printf '%s\n' 'api-1-v1 api v1 running' 'worker-1-v1 worker v1 running' 'caddy-1-stock caddy stock running' >"$STATE/containers"
    echo v1 >"$APP/current-tag"
  else
    : >"$STATE/containers"
  fi
}

# ops SCRIPT ARGS...: $APP/scripts/SCRIPT.sh ARGS as on the server, its output
# kept in $T/out and shown, its exit code in RC.
ops() {
  "$APP/scripts/$1.sh" "${@:2}" >"$T/out" 2>&1
  # shellcheck disable=SC2034 # read by the cases
  RC=$?
  cat "$T/out"
}

skip() { echo "SKIP $*"; exit 77; }
failf() { echo "ASSERTION FAILED: $*" >&2; exit 1; }
assert_eq() { [[ "$1" == "$2" ]] || failf "${3:-values differ}: expected '$2', got '$1'"; }
assert_ne() { [[ "$1" != "$2" ]] || failf "${3:-values equal}: did not expect '$2'"; }
assert_file_contains() { grep -qF -- "$2" "$1" || failf "$1 does not contain '$2'"; }
assert_file_lacks() { ! grep -qF -- "$2" "$1" || failf "$1 contains '$2'"; }
# line number of the first line of FILE containing the fixed string, or 0
line_of() { local n; n="$(grep -nF -m1 -- "$2" "$1" | cut -d: -f1)"; echo "${n:-0}"; }
# assert_order FILE A B: a line with A exists and comes before the first line with B
assert_order() {
  local a b
  a="$(line_of "$1" "$2")"
  b="$(line_of "$1" "$3")"
  (( a > 0 )) || failf "'$2' not found in $1"
  (( b > 0 )) || failf "'$3' not found in $1"
  (( a < b )) || failf "'$2' (line $a) does not come before '$3' (line $b)"
}

run_cases() {
  local fn name rc log
  local filter="${1:-}"
  for fn in $(declare -F | awk '{ print $3 }' | grep '^case_' | grep -- "$filter"); do
    name="${fn#case_}"
    log="$OPS_TMP_ROOT/$fn.log"
    ( "$fn" ) >"$log" 2>&1
    rc=$?
    if [[ -n "${OPS_TEST_VERBOSE:-}" ]]; then sed 's/^/    : /' "$log"; fi
    if (( rc == 0 )); then
      echo "ok - ${TEST_GROUP:-ops}: $name"
      grep '^REPORT ' "$log" | sed 's/^/    /' || true
    elif (( rc == 77 )); then
      echo "skip - ${TEST_GROUP:-ops}: $name: $(grep '^SKIP ' "$log" | head -n 1 | cut -c6-)"
    else
      echo "not ok - ${TEST_GROUP:-ops}: $name (exit $rc)"
      sed 's/^/    | /' "$log" | tail -n 80
    fi
  done
}
