#!/usr/bin/env bash
# Install edX's XQueue API into a venv, as the peer of the service's XQueue puller in the
# tests: edx-submissions 4.0.2, whose `submissions.views.xqueue.XQueueViewSet` is what edX's
# LMS serves at /xqueue/ (login, logout, get_submission, put_result, status) now that the
# separate xqueue server is being retired. tests/support/xqueue_server.py imports it from there
# at run time; nothing of edX's is copied into this repository.
# Idempotent: a stamp file records what was installed; a second run with the same versions
# does nothing.
#
# usage: scripts/setup-xqueue.sh [DIR]   (default: $XQUEUE_VENV or
#        ~/.cache/otter-service/xqueue-venv). Needs python3 (with venv) and access to PyPI.
# then:  DIR/bin/python tests/support/xqueue_server.py --db FILE --users grader:secret
#        DIR/bin/python tests/support/xqueue_selftest.py   (proves the harness works)
#
# Why `--no-deps` and an explicit list: the list is the whole tree pip resolves for
# edx-submissions 4.0.2 plus openedx-events, each pinned, so every install is the same.
# openedx-events is imported by submissions/views/xqueue.py (the score event of put_result)
# but not declared by edx-submissions: without it the view module does not import. requests
# (and its four dependencies) is for the self-test's pull client.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

dir=${1:-${XQUEUE_VENV:-$HOME/.cache/otter-service/xqueue-venv}}
stamp="$dir/.otter-stamp"
packages=(
  # edX's XQueue API and what it declares
  edx-submissions==4.0.2
  Django==5.2.19 asgiref==3.13.0 sqlparse==0.6.1
  djangorestframework==3.18.3 django-model-utils==5.0.0 jsonfield==3.2.0 pytz==2026.6
  edx-django-release-util==1.5.0 PyYAML==6.0.4 six==1.17.0
  # imported by the view, not declared: openedx-events and its tree
  openedx-events==10.5.0 attrs==26.1.0 fastavro==1.13.1
  edx-opaque-keys==4.0.0 edx-ccx-keys==2.0.2 pymongo==4.20.1 dnspython==2.9.2
  edx-django-utils==8.1.0 django-crum==0.7.9 django-waffle==5.0.0 psutil==7.2.2
  PyNaCl==1.6.2 cffi==2.1.1 pycparser==3.12 click==8.5.1 stevedore==5.10.0
  typing_extensions==4.16.0
  # the self-test's pull client
  requests==2.34.2 certifi==2026.10.19.post1 charset-normalizer==3.5.3 idna==3.20 urllib3==2.8.0
)
want="${packages[*]}"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$dir/bin/python" ]; then
  echo "XQueue (edx-submissions) already installed in $dir"
  exit 0
fi

ensure_system_packages python3-venv
say "Installing edx-submissions and ${#packages[@]} pinned packages into $dir"
start=$(date +%s)
python3 -m venv "$dir"
with_progress "pip install (--no-deps, pinned)" "$dir/bin/pip" install --disable-pip-version-check \
  --no-deps "${packages[@]}"

# What the server imports (the view module pulls in openedx-events).
"$dir/bin/python" - <<'EOF'
import importlib.util, sys
mods = ["submissions", "django", "rest_framework", "model_utils", "jsonfield", "pytz",
        "release_util", "openedx_events", "edx_django_utils", "opaque_keys", "bson", "fastavro",
        "requests"]
missing = [m for m in mods if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"missing after install: {missing}")
EOF
echo "$want" > "$stamp"
say "XQueue (edx-submissions 4.0.2) ready in $dir ($(( $(date +%s) - start )) s): $dir/bin/python tests/support/xqueue_server.py"
