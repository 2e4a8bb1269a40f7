#!/usr/bin/env bash
# ci-deploy.sh TAG: the deploy step of .github/workflows/deploy.yml (also
# usable from a workstation). Runs on the CI runner and talks to the server
# over SSH only, with the server's host key pinned.
#
#  1. writes the private key and the pinned known_hosts into a private temp dir;
#     ssh runs with StrictHostKeyChecking=yes and no other known_hosts file, so
#     an unknown or changed host key stops the deploy before anything is sent;
#  2. copies compose/, Caddyfile and scripts/ to REMOTE_APP_DIR (rsync over ssh,
#     --delete inside those paths only). The Caddyfile is rewritten in place
#     (--inplace, same inode): caddy bind-mounts that single file, and a file
#     replaced by a new one would stay invisible to the running container, so
#     deploy.sh's `caddy reload` would reload the old content;
#  3. pipes the production .env (PRODUCTION_ENV, plus IMAGE_PREFIX when set)
#     over stdin to scripts/remote-install-env.sh on the server, which installs
#     it atomically with mode 600. Secrets never appear on a command line;
#  4. optionally logs the server's docker into the registry (REGISTRY_TOKEN over
#     stdin, docker login --password-stdin);
#  5. runs REMOTE_APP_DIR/scripts/deploy.sh TAG there; its exit code is ours.
#
# Environment:
#   SSH_HOST (required), SSH_USER (deploy), SSH_PORT (22)
#   SSH_PRIVATE_KEY   the private key's text (or SSH_KEY_FILE, a path)
#   SSH_KNOWN_HOSTS   known_hosts line(s) for the server (required), e.g. from
#                     `ssh-keyscan -p PORT HOST` checked against the server's key
#   PRODUCTION_ENV    the server's .env content (required unless SKIP_ENV=1)
#   IMAGE_PREFIX      appended to the .env as IMAGE_PREFIX=... when set
#   REGISTRY, REGISTRY_USER, REGISTRY_TOKEN   optional registry login on the server
#   REMOTE_APP_DIR    (/opt/app)   DEPLOY_SOURCE_DIR (this repository's root)
set -euo pipefail

# log, die, valid_tag: scripts/lib.sh (beside this script in the checkout).
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_TAG=ci-deploy

[[ $# -eq 1 ]] || { echo "usage: $0 TAG" >&2; exit 2; }
tag="$1"
valid_tag "$tag" || die "invalid tag '$tag'"

host="${SSH_HOST:-}"
user="${SSH_USER:-deploy}"
port="${SSH_PORT:-22}"
app="${REMOTE_APP_DIR:-/opt/app}"
src="${DEPLOY_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"

[[ -n "$host" ]] || die "SSH_HOST is not set"
[[ "$host" =~ ^[A-Za-z0-9.:-]+$ ]] || die "SSH_HOST has unexpected characters"
[[ "$user" =~ ^[a-z_][a-z0-9_-]*$ ]] || die "SSH_USER has unexpected characters"
[[ "$port" =~ ^[0-9]+$ ]] || die "SSH_PORT must be a number"
[[ "$app" =~ ^/[A-Za-z0-9._/-]+$ ]] || die "REMOTE_APP_DIR must be an absolute path of plain characters"
[[ -n "${SSH_KNOWN_HOSTS:-}" ]] || die "SSH_KNOWN_HOSTS is not set: refusing to connect without a pinned host key"
if [[ "${SKIP_ENV:-0}" != 1 && -z "${PRODUCTION_ENV:-}" ]]; then
  die "PRODUCTION_ENV is not set (SKIP_ENV=1 keeps the server's current .env)"
fi
for p in compose Caddyfile scripts; do
  [[ -e "$src/$p" ]] || die "$src/$p is missing"
done

umask 077
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
[[ "$work" =~ ^[A-Za-z0-9._/-]+$ ]] || die "temporary directory path has unexpected characters: $work"

printf '%s\n' "$SSH_KNOWN_HOSTS" >"$work/known_hosts"
if [[ -n "${SSH_PRIVATE_KEY:-}" ]]; then
  printf '%s\n' "$SSH_PRIVATE_KEY" | tr -d '\r' >"$work/id"
elif [[ -n "${SSH_KEY_FILE:-}" ]]; then
  cp "$SSH_KEY_FILE" "$work/id"
else
  die "SSH_PRIVATE_KEY (or SSH_KEY_FILE) is not set"
fi
chmod 600 "$work/id" "$work/known_hosts"

ssh_opts=(-F /dev/null -p "$port" -i "$work/id" -o IdentitiesOnly=yes
  -o UserKnownHostsFile="$work/known_hosts" -o GlobalKnownHostsFile=/dev/null
  -o StrictHostKeyChecking=yes -o CheckHostIP=no -o UpdateHostKeys=no
  -o BatchMode=yes -o ConnectTimeout=20 -o ServerAliveInterval=15 -o ServerAliveCountMax=4)
dest="$user@$host"
# shellcheck disable=SC2029 # remote commands are built from validated values on purpose
remote() { ssh "${ssh_opts[@]}" "$dest" "$@"; }

log "checking the pinned host key of $host:$port"
remote true || die "cannot connect to $dest:$port with the pinned host key (see the ssh error above)"

log "copying compose/, Caddyfile, scripts/ to $dest:$app"
(cd "$src" && rsync -rlptz --delete \
  -e "ssh ${ssh_opts[*]}" compose scripts "$dest:$app/") || die "copy failed"
# In place: the running caddy container sees the file through a bind mount of
# its inode (see 2. above). -L: a symlinked Caddyfile is sent as its content.
(cd "$src" && rsync -Lptz --inplace \
  -e "ssh ${ssh_opts[*]}" Caddyfile "$dest:$app/Caddyfile") || die "copy of the Caddyfile failed"

if [[ "${SKIP_ENV:-0}" != 1 ]]; then
  log "installing $app/.env (stdin, atomic, mode 600)"
  {
    printf '%s\n' "$PRODUCTION_ENV"
    if [[ -n "${IMAGE_PREFIX:-}" ]]; then
      printf 'IMAGE_PREFIX=%s\n' "$IMAGE_PREFIX"
    fi
  } | remote "$app/scripts/remote-install-env.sh $app/.env" || die "writing .env failed"
fi

if [[ -n "${REGISTRY_TOKEN:-}" ]]; then
  registry="${REGISTRY:-ghcr.io}"
  [[ "$registry" =~ ^[A-Za-z0-9.:-]+$ ]] || die "REGISTRY has unexpected characters"
  [[ "${REGISTRY_USER:-}" =~ ^[A-Za-z0-9._-]+$ ]] || die "REGISTRY_USER must be set with REGISTRY_TOKEN"
  log "logging the server into $registry as $REGISTRY_USER"
  printf '%s' "$REGISTRY_TOKEN" | remote "docker login $registry --username $REGISTRY_USER --password-stdin >/dev/null" \
    || die "registry login on the server failed"
fi

log "running scripts/deploy.sh $tag on $dest"
remote "cd $app && ./scripts/deploy.sh $tag"
