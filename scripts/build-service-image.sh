#!/usr/bin/env bash
# Build the service image from the repository's Dockerfile on a machine with no image
# registry: the two base images the Dockerfile takes as build arguments are made locally
# from Debian packages (debootstrap + `docker import`); the Rust toolchain of the builder
# base is this machine's own (rustup cannot download one here). Each base is labelled with
# a hash of this script and reused while it matches.
#
# The image is labelled with a hash of what goes into it (this script, the Dockerfile,
# Cargo.*, src/, course_config/): when that matches, nothing is built. The
# builder stage's leftover image (the Dockerfile labels it otter-service.stage=build) is
# removed after the build, so no dangling GB-sized image stays behind; the price is that a
# changed source tree rebuilds the dependencies too (about 5 minutes on 2 cores).
# Runs as root, or as a user with sudo (it runs itself again through sudo).
#
# usage: scripts/build-service-image.sh [IMAGE]   (default otter-service:dev)
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$self")/.."
. scripts/lib.sh
image=${1:-otter-service:dev}
ensure_system_packages debootstrap docker
become_root "$self" "$@"
mirror=$(debian_mirror)
recipe=$(sha256sum "$self" | cut -c1-16)
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
  say "[base] debootstrap $name ($packages) from $mirror"
  with_progress "debootstrap $name" \
    debootstrap --variant=minbase --include="$packages" bookworm "$root" "$mirror" \
    || { rm -rf --one-file-system "$root"; exit 1; }
  "$extra" "$root"
  rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/*
  say "[base] docker import $name"
  tar -C "$root" -c . | docker import -c "LABEL otter-service.recipe=$recipe" \
    -c 'ENV PATH=/usr/local/cargo/bin:/usr/local/bin:/usr/bin:/bin CARGO_HOME=/usr/local/cargo LANG=C.UTF-8' \
    - "$name" >/dev/null
  rm -rf --one-file-system "$root"
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

up_to_date "$runtime_base" || make_base "$runtime_base" ca-certificates,curl,passwd no_extra
up_to_date "$rust_base" || make_base "$rust_base" ca-certificates,gcc,libc6-dev add_rust

# Everything the image is made of: unchanged sources and recipe, nothing to build.
source_hash=$({ echo "$recipe $rust_version"; find Dockerfile Cargo.toml Cargo.lock src course_config \
  -type f | LC_ALL=C sort | xargs -d '\n' sha256sum; } | sha256sum | cut -c1-16)
if [ "$(docker image inspect -f '{{index .Config.Labels "otter-service.source"}}' "$image" 2>/dev/null)" = "$source_hash" ]; then
  say "[image] $image is up to date (sources $source_hash)"
  exit 0
fi

say "[image] docker build $image (the log's last line every 15 s)"
start=$(date +%s)
with_progress "docker build $image" \
  docker build --network host --label "otter-service.source=$source_hash" \
  --build-arg RUST_IMAGE="$rust_base" --build-arg RUNTIME_IMAGE="$runtime_base" \
  -t "$image" .
# The builder stage's image is dangling now (about 2 GB): remove it and its layers, and a
# previous build of this image that the new one untagged.
docker image prune -f --filter label=otter-service.stage=build >/dev/null
docker image prune -f --filter label=otter-service.source >/dev/null
docker image inspect -f '{{.Size}}' "$image" \
  | awk -v i="$image" -v s="$(( $(date +%s) - start ))" '{printf "built %s (%.0f MB) in %d s\n", i, $1/1e6, s}'
