#!/usr/bin/env bash
# Install the code of two real LTI 1.3 Advantage platforms into a venv, as the receiving end of
# the service's AGS score posts in the tests: edX's lti-consumer-xblock (its Django plugin
# views: token endpoint, key set, AGS scores) and lti1p3platform (a stricter peer: the client
# assertion needs `kid`). tests/support/lti13_platform.py imports both from there at run time.
# Idempotent: a stamp file records what was installed; a second run with the same versions
# does nothing.
#
# usage: scripts/setup-lti13-platform.sh [DIR]   (default: $LTI13_VENV or
#        ~/.cache/otter-service/lti13-venv). Needs python3 (with venv) and access to PyPI.
# then:  DIR/bin/python tests/support/lti13_platform.py --db FILE --tool-keyset-url URL
#        DIR/bin/python tests/support/lti13_platform_selftest.py   (proves the harness works)
#
# Why `--no-deps` and an explicit list: lti-consumer-xblock's full tree is an Open edX XBlock
# (XBlock, web-fragments, mako, lxml, bleach, ... 56 packages), and its package __init__ only
# imports the XBlock class for an XBlock runtime. The platform loads edX's Django app without
# that __init__ (the views, models and migrations are submodules), so the list below is what
# those submodules import, each pinned; lti1p3platform's own dependencies are all declared.
# Two are used but not declared by lti-consumer-xblock: djangorestframework and cryptography
# (without cryptography PyJWT has no RS256). pymongo is here for `bson` (edx-opaque-keys).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

dir=${1:-${LTI13_VENV:-$HOME/.cache/otter-service/lti13-venv}}
stamp="$dir/.otter-stamp"
packages=(
  # the two platforms
  lti-consumer-xblock==11.4.4
  lti1p3platform==0.1.8
  # edX's Django app and what its platform submodules import
  Django==5.2.19 asgiref==3.13.0 sqlparse==0.6.1
  djangorestframework==3.18.3 django-filter==26.2
  django-config-models==3.0.0 django-crum==0.7.9 django-waffle==5.0.0
  edx-django-utils==8.1.0 psutil==7.2.2 PyNaCl==1.6.2 click==8.5.1 stevedore==5.10.0
  edx-opaque-keys==4.0.0 edx-ccx-keys==2.0.2 pymongo==4.20.1
  openedx-events==10.5.0 openedx-filters==3.16.0 attrs==26.1.0
  jsonfield==3.2.0 pycryptodomex==3.24.2 oauthlib==4.0.1
  # JWTs (both platforms) and lti1p3platform's key set fetch
  PyJWT==2.15.1 cryptography==50.0.2 cffi==2.1.1 pycparser==3.12
  jwcrypto==1.6.1 typing_extensions==4.16.0
  requests==2.34.2 certifi==2026.10.19.post1 charset-normalizer==3.5.3 idna==3.20 urllib3==2.8.0
)
want="${packages[*]}"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$dir/bin/python" ]; then
  echo "LTI 1.3 platforms already installed in $dir"
  exit 0
fi

ensure_system_packages python3-venv
say "Installing lti-consumer-xblock, lti1p3platform and ${#packages[@]} pinned packages into $dir"
start=$(date +%s)
python3 -m venv "$dir"
with_progress "pip install (--no-deps, pinned)" "$dir/bin/pip" install --disable-pip-version-check \
  --no-deps "${packages[@]}"

# The modules the platform imports, and RS256 (cryptography behind PyJWT).
"$dir/bin/python" - <<'EOF'
import importlib.util, sys
mods = ["lti_consumer.plugin.views", "lti_consumer.models", "lti1p3platform.service_connector",
        "lti1p3platform.ltiplatform", "lti1p3platform.framework.django.request", "django",
        "rest_framework", "django_filters", "config_models", "edx_django_utils", "opaque_keys",
        "ccx_keys", "bson", "openedx_events", "openedx_filters", "jsonfield", "Cryptodome",
        "oauthlib", "jwcrypto", "requests"]
missing = [m for m in mods if importlib.util.find_spec(m.split(".")[0]) is None]
if missing:
    sys.exit(f"missing after install: {missing}")
import jwt
jwt.get_algorithm_by_name("RS256")
EOF
echo "$want" > "$stamp"
say "LTI 1.3 platforms ready in $dir ($(( $(date +%s) - start )) s): $dir/bin/python tests/support/lti13_platform.py"
