#!/usr/bin/env bash
# health-check.sh [URL]: GET /readyz through Caddy over HTTPS, with retries.
#
# Settings (environment, else the server's .env):
#   DOMAIN                 the public host name (required unless a URL is given)
#   HEALTH_URL             full URL, default https://$DOMAIN/readyz
#   HEALTH_RESOLVE_LOCAL   1 (default) = connect to 127.0.0.1 for $DOMAIN (curl --resolve),
#                          so the check goes through this server's Caddy even when DNS
#                          points elsewhere (e.g. a load balancer, or not yet switched)
#   HEALTH_INSECURE        1 = accept any certificate (curl -k), for an internal CA or
#                          staging certificates; default 0 (certificate must verify)
#   HEALTH_CACERT          a CA bundle to trust instead (curl --cacert)
#   HEALTH_RETRIES         attempts, default 30
#   HEALTH_INTERVAL        seconds between attempts, default 2
#   HEALTH_TIMEOUT         seconds per attempt, default 5
# Exit 0 on the first HTTP 200, 1 when every attempt failed.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_TAG=health

domain="$(env_get DOMAIN)"
url="${1:-$(env_get HEALTH_URL)}"
if [[ -z "$url" ]]; then
  [[ -n "$domain" ]] || die "DOMAIN (or HEALTH_URL) is not set"
  url="https://$domain/readyz"
fi
retries="$(env_get HEALTH_RETRIES 30)"
interval="$(env_get HEALTH_INTERVAL 2)"
per_try="$(env_get HEALTH_TIMEOUT 5)"

curl_args=(--silent --show-error --output /dev/null --write-out '%{http_code}'
  --max-time "$per_try" --proto '=https,http')
if [[ "$(env_get HEALTH_RESOLVE_LOCAL 1)" == 1 && "$url" =~ ^https?://([^/:]+)(:([0-9]+))? ]]; then
  host="${BASH_REMATCH[1]}"
  port="${BASH_REMATCH[3]}"
  if [[ -z "$port" ]]; then
    if [[ "$url" == https://* ]]; then port=443; else port=80; fi
  fi
  curl_args+=(--resolve "$host:$port:127.0.0.1")
fi
if [[ "$(env_get HEALTH_INSECURE 0)" == 1 ]]; then
  curl_args+=(--insecure)
fi
cacert="$(env_get HEALTH_CACERT)"
if [[ -n "$cacert" ]]; then
  curl_args+=(--cacert "$cacert")
fi

for ((i = 1; i <= retries; i++)); do
  code="$(curl "${curl_args[@]}" "$url" 2>/dev/null || true)"
  if [[ "$code" == 200 ]]; then
    log "$url answered 200 (attempt $i/$retries)"
    exit 0
  fi
  log "$url answered '${code:-no response}' (attempt $i/$retries)"
  if (( i < retries )); then
    sleep "$interval"
  fi
done
log "$url never answered 200 after $retries attempts"
exit 1
