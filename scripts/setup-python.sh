#!/usr/bin/env bash
# Create the Python environment with otter-grader and an ipykernel, for the local runner,
# the demo course build and the tests. Idempotent: a stamp file records the versions.
#
# usage: scripts/setup-python.sh [DIR]   (default: $OTTER_VENV or ~/.cache/otter-service/otter-venv)
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

OTTER_VERSION=7.0.0
dir=${1:-${OTTER_VENV:-$HOME/.cache/otter-service/otter-venv}}
stamp="$dir/.otter-stamp"
want="otter-grader==$OTTER_VERSION ipykernel"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$dir/bin/otter" ]; then
  echo "otter-grader $OTTER_VERSION already installed in $dir"
  exit 0
fi
ensure_system_packages python3-venv
say "Installing otter-grader $OTTER_VERSION into $dir"
python3 -m venv "$dir"
with_progress "pip install otter-grader" "$dir/bin/pip" install "otter-grader==$OTTER_VERSION" ipykernel
# The kernel otter runs notebooks with must be this environment's python.
"$dir/bin/python" -m ipykernel install --prefix "$dir" --name python3 >/dev/null
"$dir/bin/otter" --version
echo "$want" > "$stamp"
