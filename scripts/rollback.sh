#!/usr/bin/env bash
# rollback.sh [TAG]: put an earlier release back with the same zero-downtime
# rollout as deploy.sh (same lock, health gate, automatic return on failure).
#
# Without TAG: the newest tag in $APP_DIR/deploy-history that deployed
# successfully ("ok") and is not the tag running now.
# Migrations are NOT run (SKIP_MIGRATIONS=1): the older binary runs against
# the current schema, which is why migrations stay backward compatible for one
# release. A backup is still taken first.
# `rollback.sh --list` prints the deploy history.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_TAG=rollback

if [[ "${1:-}" == --list ]]; then
  [[ -f "$HISTORY_FILE" ]] && cat "$HISTORY_FILE"
  exit 0
fi
[[ $# -le 1 ]] || { echo "usage: $0 [TAG|--list]" >&2; exit 2; }

current="$(current_tag || true)"
target="${1:-}"
if [[ -z "$target" ]]; then
  [[ -f "$HISTORY_FILE" ]] || die "no deploy history at $HISTORY_FILE; give the tag explicitly"
  target="$(awk -F '\t' -v cur="$current" '$3 == "ok" && $2 != cur { t = $2 } END { print t }' "$HISTORY_FILE")"
  [[ -n "$target" ]] || die "no earlier successful deploy in $HISTORY_FILE; give the tag explicitly"
fi
valid_tag "$target" || die "invalid tag '$target'"
log "rolling back from ${current:-unknown} to $target (migrations are not run)"
SKIP_MIGRATIONS=1 exec "$LIB_DIR/deploy.sh" "$target"
