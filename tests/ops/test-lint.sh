#!/usr/bin/env bash
# Static checks of the ops code: shellcheck on every script in scripts/ and
# tests/ops/ (including the stand-ins), and actionlint on the workflows
# (pinned in tests/ops/requirements.txt, from the test suite's own virtualenv
# that scripts/test-python.py makes on first use).
set -uo pipefail
TEST_GROUP=lint
# shellcheck source=tests/ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

shell_files() {
  cd "$REPO_ROOT" || exit 1
  {
    find scripts tests/ops tests/containers -type f -name '*.sh'
    find tests/ops/fakes -type f
  } | sort -u
}

case_shellcheck_every_script() {
  command -v shellcheck >/dev/null || failf "shellcheck is not installed"
  cd "$REPO_ROOT" || exit 1
  local files=()
  mapfile -t files < <(shell_files)
  (( ${#files[@]} >= 10 )) || failf "expected at least 10 scripts, found ${#files[@]}"
  for f in "${files[@]}"; do
    head -n 1 "$f" | grep -qE '^#!/usr/bin/env bash|^# shellcheck shell=bash' || failf "$f is not marked as bash"
  done
  shellcheck -x -S style "${files[@]}" || failf "shellcheck reported problems"
  echo "REPORT shellcheck clean: ${#files[@]} files"
}

case_scripts_are_strict_and_executable() {
  cd "$REPO_ROOT" || exit 1
  local f
  for f in scripts/*.sh; do
    # Sourced libraries (lib.sh) are neither run nor strict.
    head -n 1 "$f" | grep -qx '# shellcheck shell=bash' && continue
    [[ -x "$f" ]] || failf "$f is not executable"
    grep -qx 'set -euo pipefail' "$f" || failf "$f lacks set -euo pipefail"
  done
}

case_actionlint_workflows() {
  cd "$REPO_ROOT" || exit 1
  local python actionlint
  python="$(python3 scripts/test-python.py)" || failf "scripts/test-python.py could not make the virtualenv"
  actionlint="$(dirname "$python")/actionlint"
  [[ -x "$actionlint" ]] || failf "no actionlint in $(dirname "$python")"
  "$actionlint" -version | head -n 1
  "$actionlint" .github/workflows/*.yml || failf "actionlint reported problems"
  echo "REPORT actionlint clean: $("$actionlint" -version | head -n 1)"
}

run_cases "$@"
