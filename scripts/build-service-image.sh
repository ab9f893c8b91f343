#!/usr/bin/env bash
# Build the service image from the repository's Dockerfile on a machine with no image
# registry: the two base images the Dockerfile takes as build arguments are made locally
# from Debian packages (debootstrap + `docker import`); the Rust toolchain of the builder
# base is this machine's own (rustup cannot download one here). Each base is labelled with
# a hash of this script and reused while it matches.
#
# usage: scripts/build-service-image.sh [IMAGE]   (default otter-service:dev)
set -euo pipefail
cd "$(dirname "$0")/.."
image=${1:-otter-service:dev}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
recipe=$(sha256sum "$0" | cut -c1-16)
toolchain=$(rustc --print sysroot)
rust_version=$(rustc --version | cut -d' ' -f2)
runtime_base=otter-runtime-base:bookworm
rust_base=otter-rust-base:$rust_version

up_to_date() {
  [ "$(docker image inspect -f '{{index .Config.Labels "otter-service.recipe"}}' "$1" 2>/dev/null)" = "$recipe" ]
}

# debootstrap a minimal bookworm with $2 into a temp dir, run $3 (a function) on it, import as $1.
make_base() {
  local name=$1 packages=$2 extra=$3 root
  root=$(mktemp -d /var/tmp/otter-base.XXXXXX)
  echo "[base] debootstrap $name ($packages)"
  debootstrap --variant=minbase --include="$packages" bookworm "$root" "$mirror" >"$root.log" 2>&1 \
    || { tail -20 "$root.log" >&2; rm -rf "$root" "$root.log"; exit 1; }
  rm -f "$root.log"
  "$extra" "$root"
  rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/*
  echo "[base] docker import $name"
  tar -C "$root" -c . | docker import -c "LABEL otter-service.recipe=$recipe" \
    -c 'ENV PATH=/usr/local/cargo/bin:/usr/local/bin:/usr/bin:/bin CARGO_HOME=/usr/local/cargo LANG=C.UTF-8' \
    - "$name" >/dev/null
  rm -rf "$root"
}

no_extra() { :; }
add_rust() {
  local root=$1
  # The host's toolchain (without its documentation) and its CA bundle (cargo fetches
  # crates through whatever TLS setup this machine has).
  mkdir -p "$root/usr/local/rust" "$root/usr/local/cargo/bin"
  cp -a "$toolchain/bin" "$toolchain/lib" "$root/usr/local/rust/"
  for tool in cargo rustc rustdoc; do ln -sf "/usr/local/rust/bin/$tool" "$root/usr/local/cargo/bin/$tool"; done
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
}

command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
up_to_date "$runtime_base" || make_base "$runtime_base" ca-certificates,curl,passwd no_extra
up_to_date "$rust_base" || make_base "$rust_base" ca-certificates,gcc,libc6-dev add_rust

echo "[image] docker build $image"
start=$(date +%s)
docker build -q --network host \
  --build-arg RUST_IMAGE="$rust_base" --build-arg RUNTIME_IMAGE="$runtime_base" \
  -t "$image" . >/dev/null
docker image inspect -f '{{.Size}}' "$image" \
  | awk -v i="$image" -v s="$(( $(date +%s) - start ))" '{printf "built %s (%.0f MB) in %d s\n", i, $1/1e6, s}'
