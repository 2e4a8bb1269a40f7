#!/usr/bin/env bash
# setup-server.sh changes a real machine (packages, a user, the firewall), so
# it is not run for real here; these cases check that it refuses bad input
# before it changes anything.
set -uo pipefail
TEST_GROUP=setup-server
# shellcheck source=tests/ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case_refuses_without_a_key() {
  local out rc
  out="$("$REPO_ROOT/scripts/setup-server.sh" 2>&1)"
  rc=$?
  echo "$out"
  assert_ne "$rc" 0 "exit code"
  [[ "$out" == *"--authorized-key"* || "$out" == *"run as root"* ]] || failf "unexpected message"
}

case_refuses_a_non_openssh_key() {
  [[ "$(id -u)" == 0 ]] || skip "needs root to reach the key check"
  local out rc
  out="$("$REPO_ROOT/scripts/setup-server.sh" --authorized-key 'not-a-key AAAA' 2>&1)"
  rc=$?
  echo "$out"
  assert_ne "$rc" 0 "exit code"
  [[ "$out" == *"not an OpenSSH public key"* ]] || failf "unexpected message"
}

case_refuses_a_relative_app_dir() {
  [[ "$(id -u)" == 0 ]] || skip "needs root to reach the argument checks"
  local out rc
  out="$("$REPO_ROOT/scripts/setup-server.sh" --authorized-key 'ssh-ed25519 AAAAC3Nza test' --app-dir opt/app 2>&1)"
  rc=$?
  echo "$out"
  assert_ne "$rc" 0 "exit code"
  [[ "$out" == *"--app-dir must be absolute"* ]] || failf "unexpected message"
}

run_cases "$@"
