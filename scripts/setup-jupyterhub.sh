#!/usr/bin/env bash
# Install a real JupyterHub (PyPI) and configurable-http-proxy (npm) into one folder, for
# the integration tests, the benchmarks and the local demo, with JupyterHub's LTI 1.3
# authenticator (PyPI jupyterhub-ltiauthenticator: tests/support/lti13_chain_selftest.sh logs
# in through it). Idempotent: a stamp file records what was installed, and a second run
# with the same versions does nothing.
#
# usage: scripts/setup-jupyterhub.sh [DIR]   (default: $OTTER_HUB_VENV or
#        ~/.cache/otter-service/hub-venv). Needs python3 (with venv) and npm.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

JUPYTERHUB_VERSION=6.1.1
CHP_VERSION=5.3.0
# Adds PyJWT, cachetools and escapism; leaves jupyterhub as pinned (installed in one pip run).
LTIAUTH_VERSION=1.6.3
dir=${1:-${OTTER_HUB_VENV:-$HOME/.cache/otter-service/hub-venv}}
stamp="$dir/.otter-stamp"
want="jupyterhub==$JUPYTERHUB_VERSION jupyterhub-ltiauthenticator==$LTIAUTH_VERSION configurable-http-proxy@$CHP_VERSION"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
   && [ -x "$dir/bin/jupyterhub" ] && [ -x "$dir/node_modules/.bin/configurable-http-proxy" ]; then
  echo "JupyterHub $JUPYTERHUB_VERSION already installed in $dir"
  exit 0
fi

ensure_system_packages npm python3-venv
say "Installing JupyterHub $JUPYTERHUB_VERSION, jupyterhub-ltiauthenticator $LTIAUTH_VERSION and configurable-http-proxy $CHP_VERSION into $dir"
python3 -m venv "$dir"
with_progress "pip install jupyterhub" "$dir/bin/pip" install "jupyterhub==$JUPYTERHUB_VERSION" \
  "jupyterhub-ltiauthenticator==$LTIAUTH_VERSION"
# npm installs into $dir/node_modules; --no-save keeps no package.json around.
say "npm install configurable-http-proxy@$CHP_VERSION"
with_progress "npm install configurable-http-proxy" \
  in_dir "$dir" npm install --no-audit --no-fund --no-save "configurable-http-proxy@$CHP_VERSION"
"$dir/bin/jupyterhub" --version >/dev/null
"$dir/bin/python" -c "import ltiauthenticator.lti13.auth"
echo "$want" > "$stamp"
echo "JupyterHub ready: $dir/bin/jupyterhub, proxy: $dir/node_modules/.bin/configurable-http-proxy"
