#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine: install docker.io if needed and start
# dockerd in the background (its PID in /run/otter-dockerd.pid, its log in
# /var/log/otter-dockerd.log; OTTER_DOCKERD_PIDFILE and OTTER_DOCKERD_LOG change them),
# then wait up to 60 s until it answers. Does nothing if an engine already answers. Runs
# as root or as a user with sudo.
#
# Stop it with: kill "$(cat /run/otter-dockerd.pid)"   (as root)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

pidfile=${OTTER_DOCKERD_PIDFILE:-/run/otter-dockerd.pid}
log=${OTTER_DOCKERD_LOG:-/var/log/otter-dockerd.log}

answers() { as_root docker info >/dev/null 2>&1; }

ensure_system_packages docker
if answers; then
  echo "Docker engine already running"
  exit 0
fi
say "starting dockerd (log: $log)"
# setsid: the engine outlives this script; the PID written is dockerd's own (not sudo's).
# shellcheck disable=SC2016 # $1, $2 and $! are the inner shell's
as_root sh -c 'setsid dockerd >>"$1" 2>&1 </dev/null & echo $! >"$2"' sh "$log" "$pidfile"
pid=$(cat "$pidfile")
for _ in $(seq 120); do
  if answers; then
    say "Docker engine ready (pid $pid)"
    if [ "$(id -u)" != 0 ] && ! docker info >/dev/null 2>&1; then
      echo "note: $(id -un) cannot use the engine's socket; add it to the docker group" \
           "(sudo usermod -aG docker $(id -un), then log in again) or use sudo" >&2
    fi
    exit 0
  fi
  if ! as_root kill -0 "$pid" 2>/dev/null; then
    echo "dockerd exited; last lines of $log:" >&2
    as_root tail -n 20 "$log" >&2
    exit 1
  fi
  sleep 0.5
done
echo "dockerd did not answer within 60 s; see $log" >&2
exit 1
