#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine: install docker.io if needed and start
# dockerd in the background (its PID in /run/otter-dockerd.pid, its log in
# /var/log/otter-dockerd.log), then wait until it answers. Does nothing if an engine
# already answers. Needs root on a fresh Debian 12 machine.
set -euo pipefail

pidfile=/run/otter-dockerd.pid
log=/var/log/otter-dockerd.log

if docker info >/dev/null 2>&1; then
  echo "Docker engine already running"
  exit 0
fi
if ! command -v dockerd >/dev/null; then
  echo "Installing docker.io"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi
echo "Starting dockerd (log: $log)"
# setsid: the engine outlives this script; callers stop it by the PID in $pidfile.
setsid dockerd >"$log" 2>&1 < /dev/null &
echo $! > "$pidfile"
for _ in $(seq 120); do
  if docker info >/dev/null 2>&1; then
    echo "Docker engine ready (pid $(cat "$pidfile"))"
    exit 0
  fi
  if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "dockerd exited; last lines of $log:" >&2
    tail -20 "$log" >&2
    exit 1
  fi
  sleep 0.5
done
echo "dockerd did not answer within 60 s; see $log" >&2
exit 1
