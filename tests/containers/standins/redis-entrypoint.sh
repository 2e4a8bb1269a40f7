#!/usr/bin/env bash
# Entrypoint of the redis stand-in: as root, own /data and run as redis.
#
# The official image builds Redis with protected mode off by default (its
# Dockerfile patches the default in src/config.c: a container's port is only
# reachable where it is published). Debian's Redis keeps it on, and then
# answers every client that is not on loopback (the api, the worker) with
# DENIED and closes the connection. So the stand-in turns it off the same
# way, as a default: after a config file, before the caller's own options.
set -euo pipefail
if [[ "${1:-}" == -* ]]; then set -- redis-server "$@"; fi
if [[ "${1:-}" == redis-server ]]; then
  shift
  config=()
  if [[ -n "${1:-}" && "$1" != -* ]]; then
    config=("$1")
    shift
  fi
  set -- redis-server "${config[@]}" --protected-mode no "$@"
fi
if [[ "${1:-}" == redis-server && "$(id -u)" == 0 ]]; then
  find . \! -user redis -exec chown redis:redis '{}' +
  exec setpriv --reuid=redis --regid=redis --init-groups "$@"
fi
exec "$@"
