#!/usr/bin/env bash
# Entrypoint of the postgres stand-in (tests/containers/standins): what the
# official image's docker-entrypoint.sh does for the variables this project
# uses. As root: fix the ownership of PGDATA and the socket directory, then
# run as postgres. Empty PGDATA: initdb with POSTGRES_USER and the password
# from POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE, password authentication
# (scram-sha-256) for TCP, trust on the local socket, POSTGRES_DB created.
set -euo pipefail

if [[ "${1:-}" == -* ]]; then set -- postgres "$@"; fi
if [[ "${1:-}" != postgres ]]; then exec "$@"; fi

if [[ "$(id -u)" == 0 ]]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  chmod 3775 /var/run/postgresql
  find "$PGDATA" /var/run/postgresql \! -user postgres -exec chown postgres:postgres '{}' +
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

user="${POSTGRES_USER:-postgres}"
db="${POSTGRES_DB:-$user}"
password="${POSTGRES_PASSWORD:-}"
if [[ -n "${POSTGRES_PASSWORD_FILE:-}" ]]; then
  password="$(<"$POSTGRES_PASSWORD_FILE")"
fi

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
  [[ -n "$password" ]] || { echo "postgres stand-in: POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE is required" >&2; exit 1; }
  pwfile="$(mktemp)"
  printf '%s\n' "$password" >"$pwfile"
  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of arguments
  initdb --username="$user" --pwfile="$pwfile" ${POSTGRES_INITDB_ARGS:-} -D "$PGDATA" >/dev/null
  rm -f "$pwfile"
  printf '%s\n' 'local all all trust' 'host all all all scram-sha-256' >"$PGDATA/pg_hba.conf"
  echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
  if [[ "$db" != postgres ]]; then
    pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start >/dev/null
    psql -X -q -v ON_ERROR_STOP=1 -U "$user" -d postgres -c "CREATE DATABASE \"$db\""
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  fi
  echo "postgres stand-in: initialised $PGDATA (user $user, database $db)"
fi
exec "$@"
