#!/usr/bin/env bash
# What the trusted evaluator's tests (grader/tests, pytest) need, idempotent:
#   - pytest in the otter-grader venv (scripts/setup-python.sh makes it);
#   - as root: a Python with ipykernel that another user (uid 65534) can run, so the test
#     that starts the student's kernel as that user with no capabilities runs too. A venv
#     under /root cannot be read by other users, so it lives in /opt/otter-service.
# Prints the kernel Python's path as its last line (empty when not root).
#
# usage: scripts/setup-grader-tests.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

PYTEST_VERSION=9.2.0
# The trusted side decodes datascience Tables and runs matplotlib calls of tests; their
# tests run when these are importable.
EXTRAS="datascience==0.18.1 matplotlib==3.11.2"
IPYKERNEL_VERSION=7.4.0
otter_venv=${OTTER_VENV:-$HOME/.cache/otter-service/otter-venv}
[ -x "$otter_venv/bin/otter" ] || bash scripts/setup-python.sh "$otter_venv" >&2
if [ "$(cat "$otter_venv/.pytest-stamp" 2>/dev/null)" != "$PYTEST_VERSION $EXTRAS" ]; then
  say "pytest $PYTEST_VERSION, $EXTRAS into $otter_venv" >&2
  # shellcheck disable=SC2086 # EXTRAS is a list of requirements
  with_progress "pip install pytest and the course packages" \
    "$otter_venv/bin/pip" install --disable-pip-version-check "pytest==$PYTEST_VERSION" $EXTRAS >&2
  echo "$PYTEST_VERSION $EXTRAS" > "$otter_venv/.pytest-stamp"
fi

if [ "$(id -u)" != 0 ]; then
  echo ""
  exit 0
fi
kernel_venv=/opt/otter-service/kernel-venv
if [ "$(cat "$kernel_venv/.otter-stamp" 2>/dev/null)" != "ipykernel==$IPYKERNEL_VERSION" ]; then
  say "a kernel venv other users can run: $kernel_venv (Debian's python3, ipykernel)" >&2
  rm -rf "$kernel_venv"
  mkdir -p "$(dirname "$kernel_venv")"
  /usr/bin/python3 -m venv "$kernel_venv"
  with_progress "pip install ipykernel" \
    "$kernel_venv/bin/pip" install --disable-pip-version-check "ipykernel==$IPYKERNEL_VERSION" >&2
  chmod -R a+rX "$kernel_venv"
  echo "ipykernel==$IPYKERNEL_VERSION" > "$kernel_venv/.otter-stamp"
fi
echo "$kernel_venv/bin/python"
