#!/usr/bin/env bash
# Install edX's own LTI 1.1 outcomes code into a venv, as the independent receiving end for
# tests/lti_verifier.rs (tests/support/edx_stand_in.py imports it from there at run time).
# Idempotent: a stamp file records what was installed; a second run with the same versions
# does nothing.
#
# usage: scripts/setup-edx-verifier.sh [DIR]   (default: $EDX_VENV or
#        ~/.cache/otter-service/edx-venv). Needs python3 (with venv) and access to PyPI.
#
# Why `--no-deps`: lti-consumer-xblock's full tree is an Open edX Django app (Django, XBlock,
# openedx-events, django-config-models, ...), and even with all of it installed, importing
# `lti_consumer` loads the XBlock class, which needs a configured Django app registry and an
# XBlock runtime. The two modules we verify with, `lti_consumer/lti_1p1/oauth.py` and
# `lti_consumer/outcomes.py`, only need oauthlib and lxml; the stand-in stubs the few
# Django/XBlock names they import (settings.DEBUG, ResourceLoader).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

LTI_CONSUMER_VERSION=11.4.4
OAUTHLIB_VERSION=3.2.2
LXML_VERSION=5.4.0
dir=${1:-${EDX_VENV:-$HOME/.cache/otter-service/edx-venv}}
stamp="$dir/.otter-stamp"
want="lti-consumer-xblock==$LTI_CONSUMER_VERSION oauthlib==$OAUTHLIB_VERSION lxml==$LXML_VERSION"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$dir/bin/python" ]; then
  echo "edX verifier already installed in $dir"
  exit 0
fi

ensure_system_packages python3-venv
say "Installing $want into $dir"
python3 -m venv "$dir"
with_progress "pip install oauthlib lxml" "$dir/bin/pip" install --disable-pip-version-check \
  "oauthlib==$OAUTHLIB_VERSION" "lxml==$LXML_VERSION"
with_progress "pip install lti-consumer-xblock" "$dir/bin/pip" install --disable-pip-version-check --no-deps \
  "lti-consumer-xblock==$LTI_CONSUMER_VERSION"

# Check that the two modules are where the stand-in looks for them.
"$dir/bin/python" - <<'EOF'
import importlib.util, os, sys
spec = importlib.util.find_spec("lti_consumer")
root = os.path.dirname(spec.origin)
for rel in ("outcomes.py", "lti_1p1/oauth.py", "templates/xml/outcome_service_response.xml"):
    if not os.path.isfile(os.path.join(root, rel)):
        sys.exit(f"missing {rel} in {root}")
EOF
echo "$want" > "$stamp"
echo "edX verifier ready: $dir/bin/python tests/support/edx_stand_in.py"
