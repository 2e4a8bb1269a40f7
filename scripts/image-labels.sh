#!/usr/bin/env bash
# image-labels.sh: the OCI labels of the api and worker images that depend on
# the source tree, one KEY=VALUE per line, for `docker build --label` (or the
# `labels:` input of docker/build-push-action):
#
#   org.opencontainers.image.version    the workspace version in Cargo.toml
#                                       ([workspace.package] version), which
#                                       `api --version` and `worker --version` print
#   org.opencontainers.image.revision   the commit (git rev-parse HEAD), when in git
#   org.opencontainers.image.created    the commit time (RFC 3339), when in git: a
#                                       property of the source, so a rebuild of the
#                                       same commit gets the same label
#
# A value that is not known is left out: no empty or made-up label.
# docker/Dockerfile itself sets only what it knows (title, description,
# licence, base image); the source URL is added by the workflow.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

version="$(awk '
  /^\[/ { in_pkg = ($0 == "[workspace.package]") }
  in_pkg && /^version[[:space:]]*=/ { gsub(/^version[[:space:]]*=[[:space:]]*"|"[[:space:]]*$/, ""); print; exit }
' "$ROOT/Cargo.toml")"
[[ -n "$version" ]] || { echo "image-labels.sh: no [workspace.package] version in $ROOT/Cargo.toml" >&2; exit 1; }
echo "org.opencontainers.image.version=$version"

if revision="$(git -C "$ROOT" rev-parse --verify -q HEAD 2>/dev/null)" && [[ -n "$revision" ]]; then
  echo "org.opencontainers.image.revision=$revision"
  created="$(git -C "$ROOT" log -1 --format=%cI HEAD 2>/dev/null || true)"
  if [[ -n "$created" ]]; then
    echo "org.opencontainers.image.created=$created"
  fi
fi
