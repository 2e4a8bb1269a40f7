#!/usr/bin/env bash
# The workflow's SSH step for real: a throwaway OpenSSH server on 127.0.0.1 (own
# sshd_config, host key and client key in a temp dir, run in the foreground as
# a child process and killed at the end; nothing is installed or changed on
# the system except /run/sshd, which sshd needs and which is removed again if
# this test created it). scripts/ci-deploy.sh, the script the deploy workflow
# calls, runs against it with the host key pinned. On the "server" side the
# app dir is a temp dir and scripts/deploy.sh is a stand-in that records its
# arguments; scripts/remote-install-env.sh is the real one.
set -uo pipefail
TEST_GROUP=ssh
# shellcheck source=tests/ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SSHD=/usr/sbin/sshd
S="$(mk_tmp)"
SSHD_PID=""
PORT=""
CREATED_PRIVSEP=0

cleanup() {
  if [[ -n "$SSHD_PID" ]]; then stop_pid "$SSHD_PID" 10; fi
  if [[ "$CREATED_PRIVSEP" == 1 ]]; then rmdir /run/sshd 2>/dev/null; fi
  rm -rf "$OPS_TMP_ROOT"
}
trap cleanup EXIT

start_sshd() {
  ssh-keygen -q -t ed25519 -N '' -C test-host -f "$S/host_key"
  ssh-keygen -q -t ed25519 -N '' -C test-other-host -f "$S/other_host_key"
  ssh-keygen -q -t ed25519 -N '' -C test-client -f "$S/client_key"
  me="$(id -un)"
  # The remote session gets the stand-in docker on PATH (for `docker login`).
  printf 'environment="PATH=%s:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",environment="FAKE_STATE_DIR=%s" %s\n' \
    "$FAKES_DIR" "$S/state" "$(cat "$S/client_key.pub")" >"$S/authorized_keys"
  mkdir -p "$S/state"
  : >"$S/state/containers"
  if [[ "$(id -u)" == 0 && ! -d /run/sshd ]]; then
    mkdir -p /run/sshd && chmod 755 /run/sshd && CREATED_PRIVSEP=1
  fi
  for _ in 1 2 3 4 5; do
    pick_port PORT
    cat >"$S/sshd_config" <<EOF
Port $PORT
ListenAddress 127.0.0.1
HostKey $S/host_key
PidFile $S/sshd.pid
AuthorizedKeysFile $S/authorized_keys
AllowUsers $me
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
PermitUserEnvironment yes
StrictModes no
UsePAM no
X11Forwarding no
AllowTcpForwarding no
PrintMotd no
LogLevel VERBOSE
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
    "$SSHD" -t -f "$S/sshd_config" || return 1
    "$SSHD" -D -e -f "$S/sshd_config" 2>>"$S/sshd.log" &
    SSHD_PID=$!
    wait_for --while "$SSHD_PID" 5 port_in_use "$PORT" && return 0
    stop_pid "$SSHD_PID" 10
    SSHD_PID=""
  done
  echo "could not start sshd:" >&2
  cat "$S/sshd.log" >&2
  return 1
}

# The "server": a fresh app dir with an old .env and a stale file.
setup_remote() {
  REMOTE="$S/remote/app"
  rm -rf "$S/remote" "$S/src"
  mkdir -p "$REMOTE/scripts"
  printf 'OLD_SETTING=1\n' >"$REMOTE/.env"
  chmod 644 "$REMOTE/.env"
  : >"$REMOTE/scripts/stale-from-old-release.sh"
  # What the workflow checks out: compose/, Caddyfile, scripts/ (real ones,
  # except deploy.sh, replaced by a stand-in that records how it was called).
  SRC="$S/src"
  mkdir -p "$SRC/compose" "$SRC/scripts"
  if [[ -f "$REPO_ROOT/compose/compose.prod.yml" ]]; then
    cp "$REPO_ROOT/compose/compose.prod.yml" "$SRC/compose/"
  else
    echo 'services: {}' >"$SRC/compose/compose.prod.yml"
  fi
  echo 'example.test { respond "ok" }' >"$SRC/Caddyfile"
  cp "$REPO_ROOT"/scripts/*.sh "$SRC/scripts/"
  cat >"$SRC/scripts/deploy.sh" <<EOF
#!/usr/bin/env bash
printf 'args=%s cwd=%s env_mode=%s\n' "\$*" "\$PWD" "\$(stat -c %a .env)" >>"$S/deploy-invocations"
[[ "\$1" != fail-me ]]
EOF
  chmod +x "$SRC/scripts/deploy.sh"
  # A wrapper ssh first on PATH records every ssh command line (rsync's too).
  mkdir -p "$S/bin"
  cat >"$S/bin/ssh" <<EOF
#!/usr/bin/env bash
printf '%s\n' "\$*" >>"$S/ssh-argv.log"
exec /usr/bin/ssh "\$@"
EOF
  chmod +x "$S/bin/ssh"
  : >"$S/ssh-argv.log"
  : >"$S/deploy-invocations"
}

SECRET_ENV=$'ENVIRONMENT=production\nSECRET_KEY=s3cr3t-Value-that-must-not-leak-0123456789\nDOMAIN=app.example.test\nFIRST_SUPERUSER_PASSWORD="p@ss word $HOME"'
REG_TOKEN="ghp_registry-token-that-must-not-leak"

ci_deploy() { # KNOWN_HOSTS_KEYFILE TAG [extra env...]
  local kh="$1" tag="$2"
  shift 2
  env PATH="$S/bin:$PATH" \
    SSH_HOST=127.0.0.1 SSH_PORT="$PORT" SSH_USER="$(id -un)" \
    SSH_PRIVATE_KEY="$(cat "$S/client_key")" \
    SSH_KNOWN_HOSTS="[127.0.0.1]:$PORT $(cut -d' ' -f1,2 "$kh")" \
    PRODUCTION_ENV="$SECRET_ENV" IMAGE_PREFIX=ghcr.io/acme/app \
    REGISTRY=ghcr.io REGISTRY_USER=ci-bot REGISTRY_TOKEN="$REG_TOKEN" \
    REMOTE_APP_DIR="$REMOTE" DEPLOY_SOURCE_DIR="$SRC" FAKE_STATE_DIR="$S/state" \
    "$@" "$REPO_ROOT/scripts/ci-deploy.sh" "$tag"
}

case_01_deploy_over_ssh_with_pinned_host_key() {
  setup_remote
  local inode_before rc
  inode_before="$(stat -c %i "$REMOTE/.env")"
  ci_deploy "$S/host_key.pub" 0123abcd >"$S/out" 2>&1
  rc=$?
  cat "$S/out"
  assert_eq "$rc" 0 "ci-deploy exit code"
  # .env: mode 600, the secret content, replaced by rename (new inode), no temp file
  assert_eq "$(stat -c %a "$REMOTE/.env")" 600 ".env mode"
  assert_file_contains "$REMOTE/.env" "SECRET_KEY=s3cr3t-Value-that-must-not-leak-0123456789"
  assert_file_contains "$REMOTE/.env" "FIRST_SUPERUSER_PASSWORD=\"p@ss word \$HOME\""
  assert_file_contains "$REMOTE/.env" "IMAGE_PREFIX=ghcr.io/acme/app"
  assert_file_lacks "$REMOTE/.env" "OLD_SETTING"
  assert_ne "$(stat -c %i "$REMOTE/.env")" "$inode_before" ".env inode (atomic rename)"
  assert_eq "$(find "$REMOTE" -maxdepth 1 -name '.env.tmp.*' | wc -l)" 0 "temp files left"
  # deploy.sh ran once, in the app dir, with the tag, after .env was in place
  assert_eq "$(cat "$S/deploy-invocations")" "args=0123abcd cwd=$REMOTE env_mode=600" "deploy.sh invocation"
  # files copied; a file removed from the release is removed on the server
  [[ -f "$REMOTE/compose/compose.prod.yml" && -f "$REMOTE/Caddyfile" && -x "$REMOTE/scripts/remote-install-env.sh" ]] \
    || failf "compose/, Caddyfile or scripts/ not copied"
  [[ ! -e "$REMOTE/scripts/stale-from-old-release.sh" ]] || failf "stale script not removed"
  # registry login on the server: token via stdin only
  assert_file_contains "$S/state/docker.log" "CALL docker login ghcr.io --username ci-bot --password-stdin"
  assert_eq "$(cat "$S/state/login-stdin")" "$REG_TOKEN" "token given on stdin"
  # no secret on any command line, host key checking strict
  assert_file_lacks "$S/ssh-argv.log" "s3cr3t"
  assert_file_lacks "$S/ssh-argv.log" "$REG_TOKEN"
  assert_file_lacks "$S/state/docker.log" "$REG_TOKEN"
  assert_file_contains "$S/ssh-argv.log" "StrictHostKeyChecking=yes"
  [[ "$(grep -c . "$S/ssh-argv.log")" -ge 4 ]] || failf "expected several ssh connections"
  grep -F "Accepted publickey for $(id -un)" "$S/sshd.log" >/dev/null || failf "sshd did not log the key login"
}

case_02_wrong_host_key_is_refused() {
  setup_remote
  ci_deploy "$S/other_host_key.pub" 0123abcd >"$S/out" 2>&1
  local rc=$?
  cat "$S/out"
  assert_ne "$rc" 0 "ci-deploy exit code"
  grep -qE "Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED" "$S/out" || failf "no host key error shown"
  assert_eq "$(cat "$REMOTE/.env")" "OLD_SETTING=1" ".env untouched"
  assert_eq "$(cat "$S/deploy-invocations")" "" "deploy.sh not run"
  [[ -e "$REMOTE/scripts/stale-from-old-release.sh" ]] || failf "files were copied despite the wrong host key"
}

case_03_missing_known_hosts_is_refused() {
  setup_remote
  ci_deploy "$S/host_key.pub" 0123abcd SSH_KNOWN_HOSTS= >"$S/out" 2>&1
  local rc=$?
  cat "$S/out"
  assert_ne "$rc" 0 "ci-deploy exit code"
  assert_file_contains "$S/out" "refusing to connect without a pinned host key"
  assert_eq "$(cat "$S/deploy-invocations")" "" "deploy.sh not run"
}

case_04_remote_deploy_failure_fails_the_step() {
  setup_remote
  ci_deploy "$S/host_key.pub" fail-me >"$S/out" 2>&1
  local rc=$?
  cat "$S/out"
  assert_ne "$rc" 0 "ci-deploy exit code"
  assert_file_contains "$S/deploy-invocations" "args=fail-me"
}

case_05_empty_env_keeps_the_old_one() {
  setup_remote
  ci_deploy "$S/host_key.pub" 0123abcd PRODUCTION_ENV=$'\n' IMAGE_PREFIX= >"$S/out" 2>&1
  local rc=$?
  cat "$S/out"
  assert_ne "$rc" 0 "ci-deploy exit code"
  assert_eq "$(cat "$REMOTE/.env")" "OLD_SETTING=1" ".env untouched"
  assert_eq "$(find "$REMOTE" -maxdepth 1 -name '.env.tmp.*' | wc -l)" 0 "temp files left"
  assert_eq "$(cat "$S/deploy-invocations")" "" "deploy.sh not run"
}

case_06_caddyfile_rewritten_in_place() {
  # caddy bind-mounts the single file: a new inode would stay invisible to it
  setup_remote
  printf 'old.example.test { respond "old" }\n' >"$REMOTE/Caddyfile"
  local inode_before rc
  inode_before="$(stat -c %i "$REMOTE/Caddyfile")"
  ci_deploy "$S/host_key.pub" 0123abcd >"$S/out" 2>&1
  rc=$?
  cat "$S/out"
  assert_eq "$rc" 0 "ci-deploy exit code"
  assert_eq "$(cat "$REMOTE/Caddyfile")" 'example.test { respond "ok" }' "Caddyfile content"
  assert_eq "$(stat -c %i "$REMOTE/Caddyfile")" "$inode_before" "Caddyfile inode (rewritten in place)"
}

missing=()
for t in "$SSHD" ssh ssh-keygen rsync; do
  command -v "$t" >/dev/null || missing+=("$t")
done
if (( ${#missing[@]} > 0 )); then
  echo "not ok - ssh: prerequisites missing: ${missing[*]} (apt-get install openssh-server openssh-client rsync)"
  exit 0
fi
if ! start_sshd >"$S/start.log" 2>&1; then
  echo "not ok - ssh: could not start a throwaway sshd"
  sed 's/^/    | /' "$S/start.log"
  exit 0
fi
run_cases "$@"
