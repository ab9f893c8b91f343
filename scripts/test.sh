#!/usr/bin/env bash
# Install what the tests need (idempotent, cached under ~/.cache/otter-service and in the
# Docker engine's image store), then run every test. Needs root (or sudo) for the Docker
# engine on a fresh Debian 12 machine.
#
#   bash scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
missing=()
command -v npm >/dev/null || missing+=(npm)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  step "installing system packages: ${missing[*]}"
  $sudo_ apt-get update -qq
  $sudo_ DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

step "otter-grader environment (local runner)"; bash scripts/setup-python.sh
step "demo course (otter assign from the master notebook)"; bash scripts/build-demo-course.sh
step "JupyterHub";                               bash scripts/setup-jupyterhub.sh
step "edX LTI verifier";                         bash scripts/setup-edx-verifier.sh
step "browser (Chromium + playwright-core)";   bash scripts/setup-browser.sh
step "Docker engine";                            bash scripts/start-docker.sh
step "grader image";                             bash scripts/build-grader-image.sh
step "service image (Dockerfile)";              bash scripts/build-service-image.sh

step "cargo test"
cargo test "$@"
