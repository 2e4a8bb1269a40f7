#!/usr/bin/env bash
# setup-server.sh changes a real machine (packages, a user, the firewall), so
# it is not run for real here; these cases check that it refuses bad input
# before it changes anything.
set -uo pipefail
TEST_GROUP=setup-server
# shellcheck source=tests/ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# assert_refused REGEX ARGS...: setup-server.sh ARGS exits non-zero with a
# message that matches REGEX (extended).
assert_refused() {
  local regex="$1" out rc
  shift
  out="$("$REPO_ROOT/scripts/setup-server.sh" "$@" 2>&1)"
  rc=$?
  echo "$out"
  assert_ne "$rc" 0 "exit code"
  [[ "$out" =~ $regex ]] || failf "unexpected message (expected /$regex/)"
}

case_refuses_without_a_key() {
  assert_refused '--authorized-key|run as root'
}

case_refuses_a_non_openssh_key() {
  [[ "$(id -u)" == 0 ]] || skip "needs root to reach the key check"
  assert_refused 'not an OpenSSH public key' --authorized-key 'not-a-key AAAA'
}

case_refuses_a_relative_app_dir() {
  [[ "$(id -u)" == 0 ]] || skip "needs root to reach the argument checks"
  assert_refused '--app-dir must be absolute' --authorized-key 'ssh-ed25519 AAAAC3Nza test' --app-dir opt/app
}

case_refuses_a_docker_engine_older_than_25() {
  [[ "$(id -u)" == 0 ]] || skip "needs root to reach the Docker check"
  # Everything before the Docker step must already be installed, or the case
  # would install packages: skip rather than change the machine.
  local p
  for p in ca-certificates curl rsync util-linux openssh-server; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || skip "$p is not installed"
  done
  local T bin
  T="$(mk_tmp)"
  bin="$T/bin"
  mkdir -p "$bin"
  # A docker whose compose plugin works but whose engine is 24.
  printf '#!/bin/sh
case "$*" in
  "compose version"*) echo "Docker Compose version v2.29.1" ;;
  *Server.Version*) echo 24.0.7 ;;
  *) exit 1 ;;
esac
' >"$bin/docker"
  chmod +x "$bin/docker"
  PATH="$bin:$PATH" assert_refused 'Docker Engine 24\.0\.7 found; the production stack needs Docker Engine 25 or newer' \
    --authorized-key 'ssh-ed25519 AAAAC3Nza test' --user ops-test-nobody --no-firewall
  ! id ops-test-nobody >/dev/null 2>&1 || failf "the user was created before the check"
}

run_cases "$@"
