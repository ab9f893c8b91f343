#!/usr/bin/env bash
# Set up everything and run otter-service on its defaults (SQLite, the demo course) as a
# JupyterHub *managed* service, on a fresh Debian 12 machine (as root, or with sudo for
# the system packages). Stop with Ctrl-C.
#
#   bash scripts/demo.sh
#
# Then open http://127.0.0.1:8000/services/otter_grade/ , log in with any user name and
# the password "demo", and upload course_config/materials/demo/demo1.ipynb; or submit it
# with curl (the script prints a ready command with a token).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
state=${OTTER_DEMO_DIR:-$repo/target/demo}
mkdir -p "$state"

need() { command -v "$1" >/dev/null 2>&1; }
if ! need npm || ! need cargo || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  echo "== installing system packages (npm, python3-venv)"
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
  $sudo_ apt-get update -qq && $sudo_ apt-get install -y -qq npm python3-venv >/dev/null
fi
need cargo || { echo "cargo is needed: install Rust from https://rustup.rs" >&2; exit 1; }

echo "== otter-grader environment";  bash scripts/setup-python.sh
echo "== JupyterHub";                bash scripts/setup-jupyterhub.sh
hub_venv=${OTTER_HUB_VENV:-$HOME/.cache/otter-service/hub-venv}
otter_venv=${OTTER_VENV:-$HOME/.cache/otter-service/otter-venv}
echo "== building otter-service";    cargo build --release --quiet
bin=$repo/target/release/otter-service

# A grader image and engine make the docker runner the default; without them the
# (development-only) local runner grades.
if docker info >/dev/null 2>&1; then runner=auto; else runner=local; fi

demo_token=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
cat > "$state/jupyterhub_config.py" <<PY
c = get_config()  # noqa
c.JupyterHub.bind_url = "http://127.0.0.1:8000"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:8081"
c.JupyterHub.db_url = "sqlite:///$state/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "$state/jupyterhub_cookie_secret"
c.ConfigurableHTTPProxy.command = ["$hub_venv/node_modules/.bin/configurable-http-proxy"]
c.ConfigurableHTTPProxy.pid_file = "$state/proxy.pid"
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = "demo"
c.Authenticator.allow_all = True
c.JupyterHub.default_url = "/services/otter_grade/"
c.JupyterHub.services = [
    {
        # A managed service: the Hub starts it and sets JUPYTERHUB_* for it.
        "name": "otter_grade",
        "url": "http://127.0.0.1:10101",
        "command": ["$bin", "serve"],
        "cwd": "$repo",
        "oauth_no_confirm": True,
        "environment": {
            "OTTER_DATABASE__PATH": "$state/otter-service.db",
            "OTTER_GRADING__RUNNER": "$runner",
            "OTTER_GRADING__PYTHON_ENV": "$otter_venv",
            "RUST_LOG": "info",
        },
    },
    # Lets this script make a token for the curl example.
    {"name": "demo-admin", "api_token": "$demo_token"},
]
c.JupyterHub.load_roles = [
    {"name": "user", "scopes": ["self", "access:services!service=otter_grade"]},
    {"name": "demo-admin", "scopes": ["admin:users", "tokens"], "services": ["demo-admin"]},
]
PY

echo "== starting JupyterHub on http://127.0.0.1:8000 (otter-service at /services/otter_grade/)"
PATH="$hub_venv/bin:$PATH" "$hub_venv/bin/jupyterhub" -f "$state/jupyterhub_config.py" &
hub_pid=$!
trap 'kill $hub_pid 2>/dev/null; wait $hub_pid 2>/dev/null' EXIT INT TERM
for _ in $(seq 120); do
  curl -sf http://127.0.0.1:8000/services/otter_grade/healthz >/dev/null 2>&1 && break
  sleep 0.5
done
api=http://127.0.0.1:8081/hub/api
curl -sf -X POST -H "Authorization: token $demo_token" "$api/users/student1" >/dev/null || true
token=$(curl -sf -X POST -H "Authorization: token $demo_token" -d '{"note":"demo"}' \
  "$api/users/student1/tokens" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
cat <<MSG

otter-service is running (grading runner: $runner).
  Browser: http://127.0.0.1:8000/services/otter_grade/  (any user name, password: demo)
  Submit the demo notebook as student1:
    curl -H "Authorization: token $token" -H "Content-Type: application/json" \\
      --data-binary @course_config/materials/demo/demo1.ipynb http://127.0.0.1:8000/services/otter_grade/
  Grades: $bin dump-grades   (with OTTER_DATABASE__PATH=$state/otter-service.db)
Ctrl-C stops JupyterHub and the service.
MSG
wait $hub_pid
