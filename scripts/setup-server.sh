#!/usr/bin/env bash
# setup-server.sh: prepare a bare Debian or Ubuntu server for the app. Run as root.
# Idempotent: running it again changes nothing that is already in place.
#
#   setup-server.sh --authorized-key 'ssh-ed25519 AAAA... ci-deploy' [options]
#   setup-server.sh --authorized-key-file /root/ci-deploy.pub [options]
#
# Options:
#   --user NAME          deploy user (default deploy)
#   --app-dir DIR        application directory (default /opt/app)
#   --docker official    Docker Engine + compose plugin from Docker's own apt
#                        repository via its convenience script (default; gives
#                        `docker compose` v2 on every supported release)
#   --docker distro      Debian/Ubuntu packages instead (docker.io plus
#                        docker-compose on Debian >= 13 / docker-compose-v2 on Ubuntu)
#   --ssh-port N         SSH port to allow in the firewall (default 22)
#   --no-firewall        leave the firewall alone
#
# Docker Engine 25 or newer is required (compose/compose.prod.yml uses
# healthcheck start_interval): the script stops with what to do when the
# engine is older, e.g. Debian 12's own docker.io (20.10).
#
# What it does: installs Docker (unless `docker compose` already works), curl,
# rsync, ufw; creates the deploy user in the docker group with the given
# authorized key; creates APP_DIR owned by that user and APP_DIR/backups
# (writable by the containers' uid 10001 and the deploy group); firewall:
# deny incoming except SSH, 80/tcp, 443/tcp and 443/udp (HTTP/3).
# Note: membership of the docker group is root-equivalent on this host; the
# deploy key must be kept as carefully as a root key.
set -euo pipefail

user=deploy
app_dir=/opt/app
docker_from=official
ssh_port=22
firewall=1
keys=()

while (( $# > 0 )); do
  case "$1" in
    --user) user="$2"; shift 2 ;;
    --app-dir) app_dir="$2"; shift 2 ;;
    --docker) docker_from="$2"; shift 2 ;;
    --ssh-port) ssh_port="$2"; shift 2 ;;
    --no-firewall) firewall=0; shift ;;
    --authorized-key) keys+=("$2"); shift 2 ;;
    --authorized-key-file)
      while IFS= read -r line; do
        [[ -n "$line" && "$line" != \#* ]] && keys+=("$line")
      done <"$2"
      shift 2 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

[[ "$(id -u)" == 0 ]] || die "run as root"
(( ${#keys[@]} > 0 )) || die "give the deploy user's public key with --authorized-key or --authorized-key-file"
[[ "$user" =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || die "invalid user name '$user'"
[[ "$app_dir" == /* ]] || die "--app-dir must be absolute"
[[ "$ssh_port" =~ ^[0-9]+$ ]] || die "invalid --ssh-port"
for k in "${keys[@]}"; do
  [[ "$k" =~ ^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh.com|sk-ecdsa-sha2-nistp256@openssh.com)[[:space:]] ]] \
    || die "not an OpenSSH public key: ${k:0:40}..."
done
[[ -r /etc/os-release ]] || die "no /etc/os-release: Debian or Ubuntu expected"
# shellcheck source=/dev/null
. /etc/os-release
case "${ID:-}:${ID_LIKE:-}" in
  debian:*|ubuntu:*|*:*debian*) ;;
  *) die "Debian or Ubuntu expected, found ${PRETTY_NAME:-unknown}" ;;
esac

export DEBIAN_FRONTEND=noninteractive
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if (( ${#missing[@]} > 0 )); then
    log "installing ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

# ---- base packages ---------------------------------------------------------
apt_install ca-certificates curl rsync util-linux openssh-server

# ---- Docker ----------------------------------------------------------------
if command -v docker >/dev/null && docker compose version >/dev/null 2>&1; then
  log "docker and the compose plugin are already installed: $(docker compose version --short 2>/dev/null || true)"
else
  case "$docker_from" in
    official)
      log "installing Docker Engine from Docker's repository (convenience script)"
      script="$(mktemp)"
      trap 'rm -f "$script"' EXIT
      curl -fsSL https://get.docker.com -o "$script"
      sh "$script"
      ;;
    distro)
      if [[ "$ID" == ubuntu ]]; then
        apt_install docker.io docker-compose-v2
      else
        apt_install docker.io docker-compose
      fi
      ;;
    *) die "--docker must be official or distro" ;;
  esac
  docker compose version >/dev/null 2>&1 || die "docker compose v2 is not available after the install (on Debian 12 use --docker official)"
fi
# compose/compose.prod.yml needs Docker Engine 25 or newer (healthcheck
# start_interval); Debian 12's docker.io is 20.10.
engine="$(docker version --format '{{.Server.Version}}' 2>/dev/null || true)"
if [[ ! "${engine%%.*}" =~ ^[0-9]+$ ]] || ((${engine%%.*} < 25)); then
  die "Docker Engine ${engine:-(not running)} found; the production stack needs Docker Engine 25 or newer. Remove the old packages and run again with --docker official (Docker's repository), or upgrade the distribution's docker.io"
fi
log "Docker Engine $engine (25 or newer needed)"
if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
  systemctl enable --now docker >/dev/null
fi

# ---- deploy user -------------------------------------------------------------
if ! id "$user" >/dev/null 2>&1; then
  log "creating user $user"
  useradd --create-home --shell /bin/bash "$user"
fi
if ! id -nG "$user" | tr ' ' '\n' | grep -qx docker; then
  log "adding $user to the docker group"
  usermod -aG docker "$user"
fi
home="$(getent passwd "$user" | cut -d: -f6)"
install -d -o "$user" -g "$user" -m 700 "$home/.ssh"
auth="$home/.ssh/authorized_keys"
touch "$auth"
for k in "${keys[@]}"; do
  if ! grep -qxF -- "$k" "$auth"; then
    printf '%s\n' "$k" >>"$auth"
    log "authorized key added for $user"
  fi
done
chown "$user:$user" "$auth"
chmod 600 "$auth"

# ---- application directory -----------------------------------------------------
install -d -o "$user" -g "$user" -m 750 "$app_dir"
# backups/: written by the containers (uid 10001) and by the deploy user (pg_dump).
install -d -o 10001 -g "$user" -m 2770 "$app_dir/backups"
log "application directory $app_dir ready (owner $user)"

# ---- firewall --------------------------------------------------------------------
if [[ "$firewall" == 1 ]]; then
  apt_install ufw
  ufw default deny incoming >/dev/null
  ufw default allow outgoing >/dev/null
  ufw allow "$ssh_port/tcp" >/dev/null
  ufw allow 80/tcp >/dev/null
  ufw allow 443/tcp >/dev/null
  ufw allow 443/udp >/dev/null
  ufw --force enable >/dev/null
  log "firewall: incoming allowed only on $ssh_port/tcp, 80/tcp, 443/tcp, 443/udp"
  log "note: ports published by Docker bypass ufw; only caddy publishes ports (80, 443)"
fi

log "done. Next: put the host key into the SSH_KNOWN_HOSTS secret:"
log "  ssh-keyscan -p $ssh_port <this host>   (compare with: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub)"
