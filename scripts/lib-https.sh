# shellcheck shell=bash
# Checks over HTTPS through Caddy for scripts/container-test.sh (the stack
# as containers; the same checks of the stack as processes are Rust, in
# crates/api/tests/stack): counted checks, a curl client, the application's
# end-to-end checks and a load generator for the zero-downtime
# measurements. Sourced, never run.
#
# The caller sets T (a temp dir), CURRENT_RUN (the key the checks are
# counted under), and before the HTTP helpers are used https_client PORT CA.

# ---------------------------------------------------------------------------
# counted checks

# shellcheck disable=SC2034 # R_SENT, R_FAILED, R_NOTE, R_SPREAD: read by the callers' summaries
declare -A R_PASS=() R_FAIL=() R_SENT=() R_FAILED=() R_NOTE=() R_SPREAD=()
CURRENT_RUN=""
FAILURES=()
pass() { R_PASS[$CURRENT_RUN]=$((${R_PASS[$CURRENT_RUN]:-0} + 1)); printf '  ok    %s\n' "$*"; }
fail() {
  R_FAIL[$CURRENT_RUN]=$((${R_FAIL[$CURRENT_RUN]:-0} + 1))
  FAILURES+=("$CURRENT_RUN: $1")
  printf '  FAIL  %s\n' "$1"
  if [[ -n "${2:-}" ]]; then printf '%s\n' "$2" | head -n 20 | sed 's/^/        /'; fi
}
# expect DESC ACTUAL EXPECTED [DETAIL]
expect() {
  if [[ "$2" == "$3" ]]; then pass "$1"; else fail "$1 (expected $3, got $2)" "${4:-}"; fi
}

# ---------------------------------------------------------------------------
# curl through Caddy: https://localhost:PORT with Caddy's internal CA

# https_client HTTPS_PORT CA_FILE: where call sends requests (CA_FILE
# empty: curl -k).
https_client() {
  HTTPS_PORT="$1"
  CA_FILE="$2"
  BASE="https://localhost:$HTTPS_PORT"
  BODY="$T/resp.body"
  HEADERS="$T/resp.headers"
  CODE=""
  if [[ -n "$CA_FILE" ]]; then
    CURL_TLS=(--cacert "$CA_FILE" --resolve "localhost:$HTTPS_PORT:127.0.0.1")
  else
    CURL_TLS=(-k --resolve "localhost:$HTTPS_PORT:127.0.0.1")
  fi
}

# call METHOD PATH [curl args...]: through Caddy; sets CODE, writes BODY/HEADERS.
call() {
  local method="$1" path="$2"
  shift 2
  CODE="$(curl -sS -o "$BODY" -D "$HEADERS" -w '%{http_code}' -X "$method" --max-time 40 \
    "${CURL_TLS[@]}" "$@" "$BASE$path" 2>"$T/curl.err")" || CODE="${CODE:-000}"
  [[ -n "$CODE" ]] || CODE=000
}
jfield() { # KEY [FILE]: a top-level field of a JSON document
  python3 -c 'import json, sys
v = json.load(open(sys.argv[2])).get(sys.argv[1])
print("" if v is None else (json.dumps(v) if isinstance(v, (dict, list)) else v))' "$1" "${2:-$BODY}" 2>/dev/null || true
}
header() { # NAME: value of a response header of the last call
  grep -i "^$1:" "$HEADERS" | head -n 1 | cut -d: -f2- | sed 's/^ *//; s/\r$//'
}
direct_code() { # URL
  curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$1" 2>/dev/null || true
}

# ---------------------------------------------------------------------------
# the application through the edge

# https_app_checks HSTS_MAX_AGE HTTP_PORT SUPERUSER SUPERUSER_PASSWORD:
# /readyz, the security headers, the HTTP redirect, signup, login (sets
# TOKEN, USER_EMAIL, USER_PASSWORD), items CRUD, an items_export job done by
# the worker (the caller defines worker_log_tail for the failure detail), the
# superuser's login and /metrics answered 404 by Caddy.
https_app_checks() {
  local hsts="$1" http_port="$2" superuser="$3" superuser_password="$4" i
  for ((i = 0; i < 50; i++)); do
    call GET /readyz
    [[ "$CODE" == 200 ]] && break
    sleep 0.2
  done
  expect "GET /readyz through Caddy (TLS verified)" "$CODE" 200 "$(cat "$T/curl.err" "$BODY" 2>/dev/null)"
  expect "Strict-Transport-Security (HSTS_MAX_AGE from compose)" "$(header Strict-Transport-Security)" \
    "max-age=$hsts; includeSubDomains"
  expect "X-Content-Type-Options" "$(header X-Content-Type-Options)" nosniff
  expect "X-Frame-Options" "$(header X-Frame-Options)" DENY
  expect "Referrer-Policy" "$(header Referrer-Policy)" strict-origin-when-cross-origin
  expect "no Server header" "$(header Server)" ""
  local redirect
  redirect="$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "http://127.0.0.1:$http_port/readyz" -H "Host: localhost:$http_port" || true)"
  expect "plain HTTP redirects to HTTPS" "${redirect%% *}" 308 "$redirect"

  USER_EMAIL="stack-$CURRENT_RUN-$$@example.com"
  USER_PASSWORD="$(python3 -c 'import secrets; print(secrets.token_urlsafe(12))')"
  local email="$USER_EMAIL" password="$USER_PASSWORD"
  call POST /api/v1/users/signup -H 'Content-Type: application/json' \
    --data "{\"email\":\"$email\",\"password\":\"$password\",\"full_name\":\"Stack Test\"}"
  expect "POST /api/v1/users/signup" "$CODE" 200 "$(cat "$BODY")"
  call POST /api/v1/login/access-token --data-urlencode "username=$email" --data-urlencode "password=$password"
  expect "POST /api/v1/login/access-token" "$CODE" 200 "$(cat "$BODY")"
  TOKEN="$(jfield access_token)"
  local auth=(-H "Authorization: Bearer $TOKEN")
  call POST /api/v1/items/ "${auth[@]}" -H 'Content-Type: application/json' \
    --data '{"title":"stack test item","description":"created through Caddy"}'
  expect "POST /api/v1/items/" "$CODE" 200 "$(cat "$BODY")"
  local item
  item="$(jfield id)"
  call GET "/api/v1/items/$item" "${auth[@]}"
  expect "GET /api/v1/items/{id}" "$CODE:$(jfield title)" "200:stack test item" "$(cat "$BODY")"
  call PUT "/api/v1/items/$item" "${auth[@]}" -H 'Content-Type: application/json' --data '{"title":"stack test item v2"}'
  expect "PUT /api/v1/items/{id}" "$CODE:$(jfield title)" "200:stack test item v2" "$(cat "$BODY")"
  call GET /api/v1/items/ "${auth[@]}"
  expect "GET /api/v1/items/ lists it" "$CODE:$(jfield count)" "200:1" "$(cat "$BODY")"

  call POST /api/v1/jobs/ "${auth[@]}" -H 'Content-Type: application/json' --data '{"kind":"items_export","payload":{}}'
  expect "POST /api/v1/jobs/ items_export" "$CODE" 202 "$(cat "$BODY")"
  local job status=""
  job="$(jfield id)"
  for ((i = 0; i < 150; i++)); do
    call GET "/api/v1/jobs/$job" "${auth[@]}"
    status="$(jfield status)"
    [[ "$status" == succeeded || "$status" == failed || "$status" == dead ]] && break
    sleep 0.2
  done
  expect "the worker completes the job" "$status" succeeded "$(cat "$BODY"; worker_log_tail)"
  call GET "/api/v1/jobs/$job/result" "${auth[@]}"
  local ctype
  ctype="$(header Content-Type)"
  expect "GET /api/v1/jobs/{id}/result is text/csv" "$CODE:${ctype%%;*}" "200:text/csv" "$(head -c 500 "$BODY")"
  if grep -q "stack test item v2" "$BODY"; then pass "the CSV holds the item"; else fail "the CSV holds the item" "$(head -c 500 "$BODY")"; fi

  call DELETE "/api/v1/items/$item" "${auth[@]}"
  expect "DELETE /api/v1/items/{id}" "$CODE" 200 "$(cat "$BODY")"
  call GET "/api/v1/items/$item" "${auth[@]}"
  expect "GET of the deleted item" "$CODE" 404 "$(cat "$BODY")"

  call POST /api/v1/login/access-token --data-urlencode "username=$superuser" --data-urlencode "password=$superuser_password"
  expect "superuser login (password from FIRST_SUPERUSER_PASSWORD_FILE)" "$CODE" 200 "$(cat "$BODY")"

  # -- /metrics: never through Caddy; the api's own listener has it
  call GET /metrics
  expect "GET /metrics through Caddy" "$CODE" 404
  if grep -q '^# TYPE' "$BODY"; then fail "Caddy's /metrics answer has Prometheus content"; fi
  call GET /metrics/anything
  expect "GET /metrics/anything through Caddy" "$CODE" 404
}

# ---------------------------------------------------------------------------
# load: curl with keep-alive connections at a fixed rate, one line per request
# ("<status> <seconds> <stream> <error>"), in batches until told to stop.
LOAD_PIDS=()
LOAD_TAG=""

load_stream() { # NAME RATE PATH [CURL CONFIG LINES...]
  local name="$1" rate="$2" path="$3" cfg="$T/$LOAD_TAG-load-$1.curlrc" i
  shift 3
  {
    printf 'silent\ncacert = "%s"\nresolve = "localhost:%s:127.0.0.1"\nmax-time = 40\n' "$CA_FILE" "$HTTPS_PORT"
    printf 'rate = "%s/s"\n' "$rate"
    printf 'write-out = "%%{http_code} %%{time_total} %s %%{errormsg}\\n"\n' "$name"
    printf '%s\n' "$@"
    for ((i = 0; i < rate * 2; i++)); do
      printf 'url = "%s%s"\noutput = "/dev/null"\n' "$BASE" "$path"
    done
  } >"$cfg"
  local deadline=$((SECONDS + 120))
  while [[ ! -e "$T/load.stop" ]] && ((SECONDS < deadline)); do
    curl -K "$cfg" >>"$T/$LOAD_TAG-load-$name.out" 2>/dev/null || true
  done
}

# start_load TAG: LOAD_STREAMS streams each of GET health-check and
# authenticated GET items at LOAD_RATE/s, and one stream of POST items (not
# idempotent: Caddy does not retry those once sent) at LOAD_RATE/4 per
# second, until stop_load; their lines are load_lines.
start_load() {
  LOAD_TAG="$1"
  rm -f "$T/load.stop" "$T/$LOAD_TAG"-load-*.out
  LOAD_PIDS=()
  local i bearer="header = \"Authorization: Bearer $TOKEN\""
  for ((i = 1; i <= LOAD_STREAMS; i++)); do
    load_stream "GET-health-check-$i" "$LOAD_RATE" /api/v1/utils/health-check/ &
    LOAD_PIDS+=($!)
    load_stream "GET-items-$i" "$LOAD_RATE" /api/v1/items/ "$bearer" &
    LOAD_PIDS+=($!)
  done
  load_stream POST-items "$(((LOAD_RATE + 3) / 4))" /api/v1/items/ "$bearer" \
    'header = "Content-Type: application/json"' 'data = "{\"title\":\"written under load\"}"' &
  LOAD_PIDS+=($!)
}

stop_load() {
  touch "$T/load.stop"
  local p
  for p in "${LOAD_PIDS[@]}"; do
    wait "$p" 2>/dev/null || true
  done
  LOAD_PIDS=()
}

load_lines() { cat "$T/$LOAD_TAG"-load-*.out 2>/dev/null || true; }

# load_report KEY: the requests of the last load (stop_load first), sent and
# failed per stream, into R_SENT/R_FAILED/R_NOTE[KEY]; a failed request is a
# failed check.
load_report() {
  local key="$1" sent failed
  sent="$(load_lines | wc -l)"
  failed="$(load_lines | awk '$1 !~ /^2[0-9][0-9]$/' | wc -l)"
  # shellcheck disable=SC2034 # read by the caller's summary
  R_SENT[$key]="$sent"
  # shellcheck disable=SC2034
  R_FAILED[$key]="$failed"
  R_NOTE[$key]="$(load_lines | sort -k2,2g | awk '{ t[NR] = $2 } END { if (NR) printf "latency p50 %.3fs p99 %.3fs max %.3fs", t[int(NR * 0.5) + 1], t[int(NR * 0.99) + 1], t[NR] }')"
  load_lines | awk '{ k = $3; sub(/-[0-9]+$/, "", k); n[k]++; if ($1 !~ /^2[0-9][0-9]$/) f[k]++; if ($2 > m[k]) m[k] = $2 }
    END { for (k in n) printf "        %-18s %6d sent %4d failed  max %.3fs\n", k, n[k], f[k], m[k] }' | sort
  if ((sent > 0)); then pass "load: $sent requests sent (${R_NOTE[$key]})"; else fail "load: no request was sent"; fi
  expect "load: failed requests (non-2xx or connection errors)" "$failed" 0 \
    "$(load_lines | awk '$1 !~ /^2[0-9][0-9]$/ { $2 = ""; print }' | sort | uniq -c | sort -rn | head -n 10)"
}
