#!/usr/bin/env bash
# CI check of the install path itself, so that a green CI does not depend on what this
# machine happens to have installed. In a temp dir: a clean Debian bookworm root
# (debootstrap --variant=minbase, plus sudo), with none of the tools the scripts install;
# then, inside a chroot, the repository's own scripts install the system packages they
# need (npm, python3-venv, docker.io, debootstrap, chromium, curl, iproute2), once as root and once as
# a non-root user with passwordless sudo.
#
# apt runs for real (apt-get update downloads the package lists) but the installs are
# simulated (OTTER_APT_SIMULATE=1: `apt-get install -s`, see scripts/lib.sh), to keep this
# fast: the very command lines the scripts run are executed by a real shell against a real
# apt, as root and through sudo, and any broken line fails the check.
#
# usage: scripts/check-install.sh   (needs root or sudo; a few minutes; always removes the
#        temp root; debootstrap's downloads are kept in ~/.cache/otter-service/debootstrap-debs)
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$self")/.."
. scripts/lib.sh
t0=$(date +%s)

ensure_system_packages debootstrap
become_root "$self" "$@"
mirror=$(debian_mirror)
cache=${OTTER_DEBOOTSTRAP_CACHE:-$HOME/.cache/otter-service/debootstrap-debs}
mkdir -p "$cache"

root=$(mktemp -d /var/tmp/otter-check-install.XXXXXX)
chmod 0755 "$root"   # mktemp makes it 0700: the non-root user must reach /
mounts=()
cleanup() {
  local rc=$? i
  for (( i = ${#mounts[@]} - 1; i >= 0; i-- )); do
    if mountpoint -q "${mounts[i]}"; then umount "${mounts[i]}" || umount -l "${mounts[i]}"; fi
  done
  if grep -qF " $root/" /proc/mounts; then
    echo "error: something is still mounted under $root; not removing it" >&2
    rc=1
  else
    # --one-file-system: even so, never follow a mount into the host.
    rm -rf --one-file-system "$root"
  fi
  if [ "$rc" = 0 ]; then
    say "check-install passed in $(( $(date +%s) - t0 )) s (temp root removed)"
  else
    echo "check-install FAILED after $(( $(date +%s) - t0 )) s" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mount_in() {  # mount_in MOUNT-ARGS... TARGET (the last argument)
  mount "$@"
  mounts+=("${*: -1}")
}

say "[1/5] debootstrap --variant=minbase bookworm (+ sudo) from $mirror into $root"
with_progress "debootstrap" debootstrap --variant=minbase --include=sudo --cache-dir="$cache" \
  bookworm "$root" "$mirror"

say "[2/5] preparing the chroot: apt sources as on this machine, a user with sudo, scripts/"
# The same Debian sources as this machine (bookworm, -updates, -security), if it has them.
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  cp /etc/apt/sources.list.d/debian.sources "$root/etc/apt/sources.list.d/debian.sources"
  : >"$root/etc/apt/sources.list"
fi
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp /etc/hosts "$root/etc/hosts"
mount_in -t proc proc "$root/proc"
mount_in --bind /dev "$root/dev"
mkdir -p "$root/opt/otter-service"
cp -r scripts "$root/opt/otter-service/scripts"
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }
in_root useradd --create-home --shell /bin/bash student
echo 'student ALL=(ALL) NOPASSWD: ALL' >"$root/etc/sudoers.d/student"
chmod 0440 "$root/etc/sudoers.d/student"
as_student() { chroot --userspec=student:student "$root" env -i PATH=/usr/bin:/bin LANG=C.UTF-8 \
  HOME=/home/student USER=student "$@"; }
as_student sudo -n true || { echo "error: passwordless sudo does not work in the chroot" >&2; exit 1; }

say "[3/5] the clean root has none of the tools"
# shellcheck disable=SC2016 # expanded by the chroot's shell
present=$(in_root sh -c 'for c in npm python3 dockerd docker debootstrap chromium curl; do
  command -v "$c" >/dev/null 2>&1 && echo "$c"; done; true')
[ -z "$present" ] || { echo "error: the clean root already has: $present" >&2; exit 1; }
echo "none of npm, python3, dockerd, docker, debootstrap, chromium, curl"

# Each entry is run by bash in /opt/otter-service, with OTTER_APT_SIMULATE=1.
checks=(
  "bash scripts/test.sh --system-packages"
  "bash scripts/demo.sh --system-packages"
  "OTTER_DEMO_RUNNER=local bash scripts/demo.sh --system-packages"
  ". scripts/lib.sh; for n in npm python3-venv docker debootstrap chromium curl iproute2; do ensure_system_packages \$n; done"
  ". scripts/lib.sh; as_root DEBIAN_FRONTEND=noninteractive sh -c 'test \"\$(id -u)\" = 0 && test \"\$DEBIAN_FRONTEND\" = noninteractive'"
)
run_checks() {  # run_checks WHO RUNNER...
  local who=$1 c; shift
  for c in "${checks[@]}"; do
    say "  $who: $c"
    if ! "$@" OTTER_APT_SIMULATE=1 bash -euo pipefail -c "cd /opt/otter-service; $c" 2>&1 | sed 's/^/    | /'; then
      echo "error: failed as $who: $c" >&2
      exit 1
    fi
  done
}
say "[4/5] install steps as root"
run_checks root in_root HOME=/root USER=root
say "[5/5] install steps as a user with sudo"
run_checks student as_student
say "all install steps passed, as root and through sudo"
