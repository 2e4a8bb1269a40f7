#!/usr/bin/env bash
# Runs every tests/ops/test-*.sh and prints "N passed, M failed" as its last
# line; exits non-zero when a case failed or none ran.
#
# Needs bash, shellcheck, OpenSSH (server and client) and rsync. As root on a
# fresh Debian/Ubuntu machine it installs the missing ones with apt-get (with
# sudo -n when not root and sudo allows it). Nothing else on the system is
# changed: the tests work in temp dirs, start their own sshd as a child
# process on 127.0.0.1 and stop it and remove their temp dirs at the end.
#   tests/ops/run.sh [PATTERN]   run only the test files whose name has PATTERN
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pattern="${1:-}"
# apt_install: scripts/lib.sh.
# shellcheck source=scripts/lib.sh
source "$here/../../scripts/lib.sh"
LOG_TAG=ops-tests

need=()
command -v shellcheck >/dev/null || need+=(shellcheck)
[[ -x /usr/sbin/sshd ]] || need+=(openssh-server)
command -v ssh >/dev/null && command -v ssh-keygen >/dev/null || need+=(openssh-client)
command -v rsync >/dev/null || need+=(rsync)
command -v flock >/dev/null || need+=(util-linux)
if (( ${#need[@]} > 0 )); then
  apt_install "${need[@]}" || echo "could not install ${need[*]}; the tests that need them will fail"
fi

passed=0
failed=0
skipped=0
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
for t in "$here"/test-*.sh; do
  [[ -z "$pattern" || "$(basename "$t")" == *"$pattern"* ]] || continue
  echo "# $(basename "$t")"
  start=$(date +%s)
  timeout 900 bash "$t" >"$out" 2>&1
  rc=$?
  cat "$out"
  p=$(grep -c '^ok - ' "$out")
  f=$(grep -c '^not ok - ' "$out")
  s=$(grep -c '^skip - ' "$out")
  if (( rc != 0 )) || (( p + f + s == 0 )); then
    echo "not ok - $(basename "$t") exited $rc after running $((p + f + s)) case(s)"
    f=$((f + 1))
  fi
  echo "# $(basename "$t"): $p passed, $f failed, $s skipped in $(( $(date +%s) - start ))s"
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
done
if (( skipped > 0 )); then
  echo "($skipped skipped, see 'skip -' lines above)"
fi
if (( passed + failed == 0 )); then
  failed=1
fi
echo "$passed passed, $failed failed"
(( failed == 0 ))
