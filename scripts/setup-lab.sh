#!/usr/bin/env bash
# Create the Python environment for the JupyterLab / Notebook 7 Submit button
# (clients/jupyter): jupyterlab, notebook, jupyterhub (for jupyterhub-singleuser), pytest
# and pytest-jupyter, plus the extension itself built from source. Used by
# scripts/test-jupyter-extension.sh and by tests that spawn real single-user servers.
# Idempotent: a stamp file records the versions and a hash of the extension's sources,
# and a second run with the same ones does nothing.
#
# usage: scripts/setup-lab.sh [DIR]   (default: $OTTER_LAB_VENV or
#        ~/.cache/otter-service/lab-venv). Needs python3 (with venv) and npm (Node >= 20).
# The venv is made from Debian's /usr/bin/python3: single-user servers spawned as system
# users cannot read a venv made from a Python under /root (pyenv).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

JUPYTERHUB_VERSION=6.1.1
JUPYTERLAB_VERSION=4.6.6
NOTEBOOK_VERSION=7.6.5
PYTEST_VERSION=9.2.0
PYTEST_JUPYTER_VERSION=0.11.0
PYTHON=/usr/bin/python3

repo=$(cd "$(dirname "$0")/.." && pwd)
ext="$repo/clients/jupyter"
dir=${1:-${OTTER_LAB_VENV:-$HOME/.cache/otter-service/lab-venv}}
stamp="$dir/.otter-stamp"
# jlpm (yarn 3) keeps its downloads here; a missing or empty cache only costs downloads.
export YARN_CACHE_FOLDER=${YARN_CACHE_FOLDER:-$HOME/.cache/otter-service/yarn-cache}

# The extension's sources: every file git tracks or would track (committed or not),
# so an edit anywhere in clients/jupyter triggers a rebuild.
sources_hash() {
  if ! git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    echo "no-git-$(date +%s)"
    return
  fi
  (
    cd "$repo"
    git ls-files -z --cached --others --exclude-standard -- clients/jupyter \
      | while IFS= read -r -d '' f; do
          if [ -f "$f" ]; then
            printf '%s  %s\n' "$(sha256sum < "$f" | cut -d' ' -f1)" "$f"
          fi
        done
  ) | sort | sha256sum | cut -d' ' -f1
}

pins=(
  "jupyterhub==$JUPYTERHUB_VERSION"
  "jupyterlab==$JUPYTERLAB_VERSION"
  "notebook==$NOTEBOOK_VERSION"
  "pytest==$PYTEST_VERSION"
  "pytest-jupyter[server]==$PYTEST_JUPYTER_VERSION"
)
want="${pins[*]} otter-service-submit:$(sources_hash)"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$dir/bin/jupyter-lab" ] \
   && [ -x "$dir/bin/jupyterhub-singleuser" ] \
   && "$dir/bin/python" -c 'import otter_service_submit' 2>/dev/null; then
  echo "JupyterLab $JUPYTERLAB_VERSION with otter-service-submit already installed in $dir"
  exit 0
fi

ensure_system_packages npm python3-venv
start=$(date +%s)
if [ ! -x "$dir/bin/python" ]; then
  say "Creating a venv at $dir from $PYTHON"
  "$PYTHON" -m venv "$dir"
fi
rm -f "$stamp"
say "Installing ${pins[*]} into $dir"
with_progress "pip install jupyterlab" "$dir/bin/pip" install "${pins[@]}"

# Install the npm dependencies from the committed lock file (fails if yarn.lock is not
# up to date with package.json), so the build below resolves exactly that tree.
say "jlpm install --immutable (clients/jupyter, cache $YARN_CACHE_FOLDER)"
with_progress "jlpm install" in_dir "$ext" "$dir/bin/jlpm" install --immutable

say "Building and installing clients/jupyter (pip install from source)"
with_progress "pip install ./clients/jupyter" \
  "$dir/bin/pip" install --no-deps --force-reinstall "$ext"

# Both halves must be enabled with no manual step (grep reads saved output: with pipefail,
# `cmd | grep -q` can fail when grep exits before cmd has written everything).
labext=$("$dir/bin/jupyter" labextension list 2>&1)
if ! grep -q 'otter-service-submit.*enabled.*OK' <<<"$labext"; then
  printf 'error: the labextension otter-service-submit is not enabled in %s:\n%s\n' "$dir" "$labext" >&2
  exit 1
fi
serverext=$("$dir/bin/jupyter" server extension list 2>&1)
if ! grep -q 'otter_service_submit.*enabled' <<<"$serverext"; then
  printf 'error: the server extension otter_service_submit is not enabled in %s:\n%s\n' "$dir" "$serverext" >&2
  exit 1
fi
echo "$want" > "$stamp"
say "done in $(( $(date +%s) - start )) s"
echo "JupyterLab ready: $dir (jupyter-lab, jupyterhub-singleuser, pytest; extension otter-service-submit)"
