#!/usr/bin/env bash
# Install the Standard Webhooks reference library (PyPI standardwebhooks 1.1.0, by the spec's
# authors: https://www.standardwebhooks.com/) into a venv, as the verifier of the platform API's
# completion webhooks in the tests: tests/support/webhook_receiver.py checks every delivery
# with its `Webhook(secret).verify(body, headers)`; nothing of ours verifies a signature. The
# same venv has schemathesis 4.32.5, to run `schemathesis run` against the service's OpenAPI
# document.
# Idempotent: a stamp file records what was installed; a second run with the same versions
# does nothing.
#
# usage: scripts/setup-webhooks.sh [DIR]   (default: $WEBHOOKS_VENV or
#        ~/.cache/otter-service/webhooks-venv). Needs python3 >= 3.11 (with venv; schemathesis
#        4 needs 3.11) and access to PyPI.
# then:  DIR/bin/python tests/support/webhook_receiver.py --secret whsec_... [--log FILE]
#        DIR/bin/python tests/support/webhook_selftest.py   (proves the harness works)
#        DIR/bin/schemathesis run http://127.0.0.1:PORT/...openapi.json
#
# Why `--no-deps` and an explicit list: the list is the whole tree pip resolves for
# standardwebhooks 1.1.0 (which declares no dependencies) and schemathesis 4.32.5 on
# Python 3.11+, each pinned, so every install is the same. (On 3.10 pytest and anyio would
# also want exceptiongroup and tomli; schemathesis 4 does not install there at all.)
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

dir=${1:-${WEBHOOKS_VENV:-$HOME/.cache/otter-service/webhooks-venv}}
stamp="$dir/.otter-stamp"
packages=(
  # the Standard Webhooks reference verifier (no dependencies)
  standardwebhooks==1.1.0
  # schemathesis and what it declares
  schemathesis==4.32.5
  anyio==4.16.0 idna==3.20 typing_extensions==4.16.0 click==8.5.1 harfile==0.6.0
  hypothesis==6.170.17 sortedcontainers==2.4.0
  hypothesis-graphql==0.13.5 graphql-core==3.3.2
  jsonschema_rs==0.60.3 pyrate-limiter==4.5.1
  pytest==9.2.0 iniconfig==2.3.1 packaging==26.4 pluggy==1.7.0 Pygments==2.21.0
  PyYAML==6.0.4
  requests==2.34.2 certifi==2026.10.19.post1 charset-normalizer==3.5.3 urllib3==2.8.0
  rich==15.0.0 markdown-it-py==4.3.0 mdurl==0.1.2
  Werkzeug==3.1.9 MarkupSafe==3.0.4
)
want="${packages[*]}"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$dir/bin/python" ]; then
  echo "Standard Webhooks (standardwebhooks, schemathesis) already installed in $dir"
  exit 0
fi

if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "error: schemathesis 4 needs Python >= 3.11; python3 is $(python3 --version 2>&1)" >&2
  exit 1
fi
ensure_system_packages python3-venv
say "Installing standardwebhooks, schemathesis and ${#packages[@]} pinned packages into $dir"
start=$(date +%s)
python3 -m venv "$dir"
with_progress "pip install (--no-deps, pinned)" "$dir/bin/pip" install --disable-pip-version-check \
  --no-deps "${packages[@]}"

# What the receiver and `schemathesis run` import; pip check: the pinned list is the whole tree.
"$dir/bin/python" - <<'EOF'
import importlib.util, sys
mods = ["standardwebhooks", "schemathesis", "hypothesis", "jsonschema_rs", "pytest", "requests",
        "yaml", "werkzeug", "rich", "anyio"]
missing = [m for m in mods if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"missing after install: {missing}")
from standardwebhooks.webhooks import Webhook, WebhookVerificationError  # noqa: F401
import schemathesis  # noqa: F401
EOF
"$dir/bin/pip" check --disable-pip-version-check >/dev/null || {
  "$dir/bin/pip" check --disable-pip-version-check >&2; exit 1
}
echo "$want" > "$stamp"
say "Standard Webhooks (standardwebhooks 1.1.0, schemathesis 4.32.5) ready in $dir ($(( $(date +%s) - start )) s): $dir/bin/python tests/support/webhook_receiver.py"
