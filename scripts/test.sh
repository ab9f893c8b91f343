#!/usr/bin/env bash
# Install what the tests need (idempotent, cached under ~/.cache/otter-service and in the
# Docker engine's image store), then run every test. Runs as root or as a user with sudo
# (only the system packages and the Docker engine need root). Leaves the work tree as it
# found it: the demo course is rebuilt byte for byte (--check fails if it differs).
#
#   bash scripts/test.sh [extra cargo test args]
#   bash scripts/test.sh --system-packages   only install the system packages (used by
#                                            scripts/check-install.sh), then stop
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

step() { printf '\n== [%s] %s\n' "$(date +%T)" "$*"; }

step "system packages (npm, python3-venv, docker.io, debootstrap, chromium, curl, iproute2)"
ensure_system_packages npm python3-venv docker debootstrap chromium curl iproute2
[ "${1:-}" = --system-packages ] && exit 0

step "otter-grader environment (local runner)"; bash scripts/setup-python.sh
step "demo course: rebuild and compare with the committed files"
bash scripts/build-demo-course.sh --check
step "JupyterHub";                               bash scripts/setup-jupyterhub.sh
step "edX LTI verifier";                         bash scripts/setup-edx-verifier.sh
step "LTI 1.3 platforms (edX, lti1p3platform)";  bash scripts/setup-lti13-platform.sh
step "edX's XQueue (edx-submissions)";           bash scripts/setup-xqueue.sh
step "webhook verifier (standardwebhooks) and schemathesis"; bash scripts/setup-webhooks.sh
step "browser (Chromium + playwright-core)";     bash scripts/setup-browser.sh
step "JupyterLab 4 + Notebook 7 with the Submit extension built from clients/jupyter"
bash scripts/setup-lab.sh
step "Submit extension: TypeScript and Python unit tests"
bash scripts/test-jupyter-extension.sh
step "Docker engine";                            bash scripts/start-docker.sh
step "grader image";                             bash scripts/build-grader-image.sh
step "service image (Dockerfile)";               bash scripts/build-service-image.sh

step "trusted evaluator (grader/): pytest with real kernels and the demo autograder"
kernel_python=$(bash scripts/setup-grader-tests.sh | tail -n 1)
otter_venv=${OTTER_VENV:-$HOME/.cache/otter-service/otter-venv}
# No bytecode or pytest cache in the work tree: the tests leave it as they found it.
(cd grader && env PYTHONDONTWRITEBYTECODE=1 OTTER_TRUSTED_KERNEL_PYTHON="$kernel_python" \
  "$otter_venv/bin/python" -m pytest -q -p no:cacheprovider tests)

step "cargo test"
cargo test "$@"
