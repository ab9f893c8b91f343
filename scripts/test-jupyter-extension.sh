#!/usr/bin/env bash
# Unit tests of the JupyterLab / Notebook 7 Submit button (clients/jupyter): the
# TypeScript tests of src/format.ts (node --test) and the server extension's pytest tests
# (against a fake grading service). Offline and fast; nothing lands in the work tree
# outside gitignored build folders.
#
# usage: scripts/test-jupyter-extension.sh   (uses the venv at $OTTER_LAB_VENV or
#        ~/.cache/otter-service/lab-venv; make it with scripts/setup-lab.sh)
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

repo=$(cd "$(dirname "$0")/.." && pwd)
ext="$repo/clients/jupyter"
venv=${OTTER_LAB_VENV:-$HOME/.cache/otter-service/lab-venv}
if [ ! -x "$venv/bin/pytest" ] || [ ! -x "$venv/bin/jlpm" ]; then
  echo "error: no lab venv at $venv: run scripts/setup-lab.sh first (or set OTTER_LAB_VENV)" >&2
  exit 1
fi
export PATH="$venv/bin:$PATH"
export YARN_CACHE_FOLDER=${YARN_CACHE_FOLDER:-$HOME/.cache/otter-service/yarn-cache}
export PYTHONDONTWRITEBYTECODE=1

cd "$ext"
if [ ! -d node_modules/typescript ]; then
  say "jlpm install --immutable"
  jlpm install --immutable
fi
say "TypeScript unit tests (src/format.ts)"
jlpm test
say "Server extension tests (pytest)"
# The sources under test, not the copy pip installed into the venv.
PYTHONPATH="$ext${PYTHONPATH:+:$PYTHONPATH}" pytest -p no:cacheprovider -q tests
say "all Jupyter extension tests passed"
