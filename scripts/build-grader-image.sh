#!/usr/bin/env bash
# Build the grader image (otter-grader + ipykernel + the trusted evaluator of grader/, one
# image for every assignment) with no
# image registry: debootstrap a minimal Debian, install otter in a venv inside it, and
# `docker import` the tree. Users with a registry can use deployment/grader/Dockerfile.
#
# Cached: the image carries a label with the hash of this script and of grader/otter_trusted;
# a second run with the same ones and an existing image does nothing. About two minutes otherwise. Runs as
# root, or as a user with sudo (it runs itself again through sudo: debootstrap and chroot
# need root).
#
# usage: scripts/build-grader-image.sh [--requirements FILE] [IMAGE]
#   IMAGE defaults to otter-grader:7.0.0. With --requirements, the packages of FILE (pip's
#   requirements format, e.g. datascience, pandas) are installed beside otter: one image per
#   course, named in the course config with "image" (see course_config/README.md).
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$self")/.."
. scripts/lib.sh

OTTER_VERSION=7.0.0
requirements=/dev/null
if [ "${1:-}" = --requirements ]; then
  requirements=$(realpath "${2:?--requirements needs a file}")
  [ -f "$requirements" ] || { echo "no such requirements file: $requirements" >&2; exit 2; }
  shift 2
fi
image=${1:-otter-grader:$OTTER_VERSION}
# The recipe: this script, the course's requirements and the trusted evaluator (grader/).
recipe=$(cat "$self" "$requirements" grader/otter_trusted/*.py | sha256sum | cut -c1-16)

ensure_system_packages debootstrap docker
if [ "$requirements" != /dev/null ]; then
  become_root "$self" --requirements "$requirements" "$@"
else
  become_root "$self" "$@"
fi
mirror=$(debian_mirror)
docker info >/dev/null 2>&1 || { echo "no Docker engine answers: run scripts/start-docker.sh" >&2; exit 1; }
if [ "$(docker image inspect -f '{{index .Config.Labels "otter-service.recipe"}}' "$image" 2>/dev/null)" = "$recipe" ]; then
  echo "grader image $image is up to date (recipe $recipe)"
  exit 0
fi

root=$(mktemp -d /var/tmp/otter-grader-rootfs.XXXXXX)
cleanup() {
  for m in dev proc; do
    if mountpoint -q "$root/$m"; then umount "$root/$m" || umount -l "$root/$m"; fi
  done
  # --one-file-system: never follow a mount that is still there into the host.
  rm -rf --one-file-system "$root"
}
trap cleanup EXIT

say "[1/4] debootstrap bookworm (minbase, python3) from $mirror"
with_progress "debootstrap" debootstrap --variant=minbase \
  --include=python3,python3-venv,ca-certificates bookworm "$root" "$mirror"

say "[2/4] otter-grader $OTTER_VERSION and ipykernel into /opt/otter"
# pip inside the chroot trusts the host's CA bundle (this machine may intercept TLS).
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/host-ca.crt"
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp "$requirements" "$root/tmp/course-requirements.txt"
with_progress "pip install otter-grader in the chroot" \
  chroot "$root" env -i PATH=/usr/bin:/bin HOME=/root LANG=C.UTF-8 \
  SSL_CERT_FILE=/etc/ssl/certs/host-ca.crt REQUESTS_CA_BUNDLE=/etc/ssl/certs/host-ca.crt \
  PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_DEFAULT_TIMEOUT=180 \
  sh -euc "
    python3 -m venv /opt/otter
    /opt/otter/bin/pip install --progress-bar off 'otter-grader==$OTTER_VERSION' ipykernel \
      -r /tmp/course-requirements.txt
    rm -f /tmp/course-requirements.txt
    /opt/otter/bin/python -m ipykernel install --prefix /opt/otter --name python3
    # Compile now: the root filesystem is read-only when grading.
    /opt/otter/bin/python -m compileall -q /opt/otter >/dev/null || true
    /opt/otter/bin/python -c 'import otter'
    # minbase has no useradd: the non-root user that runs notebooks, by hand.
    echo 'grader:x:1000:1000:otter grader:/home/grader:/bin/sh' >> /etc/passwd
    echo 'grader:x:1000:' >> /etc/group
    mkdir -p /home/grader && chown 1000:1000 /home/grader
    mkdir -p /autograder && chown 1000:1000 /autograder
  "
umount "$root/proc" "$root/dev"

# The trusted evaluator (docker.evaluator = "trusted"), compiled now: the root filesystem
# is read-only when grading.
mkdir -p "$root/opt/otter-trusted"
cp -r grader/otter_trusted "$root/opt/otter-trusted/"
rm -rf "$root/opt/otter-trusted/otter_trusted/__pycache__"
chroot "$root" /opt/otter/bin/python -m compileall -q /opt/otter-trusted >/dev/null

say "[3/4] trimming"
rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
  "$root"/usr/share/man/* "$root"/usr/share/locale/* "$root"/etc/ssl/certs/host-ca.crt \
  "$root"/root/.cache
: > "$root/etc/resolv.conf"

say "[4/4] docker import $image"
previous=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
tar -C "$root" -c . | docker import \
  -c 'ENV PATH=/opt/otter/bin:/usr/local/bin:/usr/bin:/bin' \
  -c 'ENV LANG=C.UTF-8' \
  -c 'ENV HOME=/home/grader' \
  -c 'USER grader' \
  -c 'WORKDIR /autograder' \
  -c "LABEL otter-service.recipe=$recipe otter-service.otter-version=$OTTER_VERSION otter-service.evaluator=otter_trusted" \
  - "$image" >/dev/null
docker image inspect -f '{{.Size}}' "$image" | awk -v i="$image" '{printf "built %s (%.0f MB)\n", i, $1/1e6}'
# The image this one replaced would stay behind untagged (651 MB each rebuild); a container
# that still uses it (a warm one) keeps it, and the engine removes nothing in use.
if [ -n "$previous" ] && [ "$previous" != "$(docker image inspect -f '{{.Id}}' "$image")" ]; then
  docker image rm "$previous" >/dev/null 2>&1 && echo "removed the image it replaced" || true
fi
