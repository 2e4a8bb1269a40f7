#!/usr/bin/env bash
# Entrypoint of the redis stand-in: as root, own /data and run as redis.
set -euo pipefail
if [[ "${1:-}" == -* ]]; then set -- redis-server "$@"; fi
if [[ "${1:-}" == redis-server && "$(id -u)" == 0 ]]; then
  find . \! -user redis -exec chown redis:redis '{}' +
  exec setpriv --reuid=redis --regid=redis --init-groups "$@"
fi
exec "$@"
