#!/usr/bin/env bash
# remote-install-env.sh TARGET: runs ON THE SERVER (called by ci-deploy.sh over
# SSH). Reads the new .env content from standard input (never from the command
# line) and installs it at TARGET atomically: a temporary file in the same
# directory, mode 600 before any byte is written, fsync, then rename over TARGET.
# A half-written or empty .env never replaces the current one.
set -euo pipefail
umask 077

[[ $# -eq 1 ]] || { echo "usage: $0 TARGET < content" >&2; exit 2; }
target="$1"
dir="$(dirname "$target")"
base="$(basename "$target")"
[[ -d "$dir" ]] || { echo "remote-install-env: no directory $dir" >&2; exit 1; }

tmp="$(mktemp "$dir/.$base.tmp.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
chmod 600 "$tmp"
# CRLF from a secret pasted on another OS would end up inside the values.
tr -d '\r' >"$tmp"

if [[ ! -s "$tmp" ]]; then
  echo "remote-install-env: empty input; $target left unchanged" >&2
  exit 1
fi
if ! grep -qE '^[[:space:]]*(export[[:space:]]+)?[A-Za-z_][A-Za-z0-9_]*=' "$tmp"; then
  echo "remote-install-env: input has no KEY=value line; $target left unchanged" >&2
  exit 1
fi
sync "$tmp" 2>/dev/null || sync
mv -f "$tmp" "$target"
trap - EXIT
sync "$dir" 2>/dev/null || true
echo "remote-install-env: installed $target ($(grep -cE '^[[:space:]]*(export[[:space:]]+)?[A-Za-z_][A-Za-z0-9_]*=' "$target") variables, mode 600)"
