#!/usr/bin/env bash
# Set up everything and run otter-service on its defaults (SQLite, the demo course) as a
# JupyterHub *managed* service, on a fresh Debian 12 machine with Rust (as root, or as a
# user with sudo for the system packages and the Docker engine). Stop with Ctrl-C.
#
#   bash scripts/demo.sh                            grade in Docker containers (the sandbox)
#   OTTER_DEMO_RUNNER=local bash scripts/demo.sh    grade in a local subprocess: NOT a sandbox
#   bash scripts/demo.sh --system-packages          only install the system packages, then stop
#
# Grading uses the docker runner: the script starts a Docker engine if none answers
# (scripts/start-docker.sh) and builds the grader image (scripts/build-grader-image.sh,
# about two minutes the first time). If that is impossible it stops, rather than quietly
# running students' code unsandboxed; the local runner only runs when asked for.
#
# Then open http://127.0.0.1:8000/hub/spawn , log in with any user name and the password
# "demo": JupyterLab opens with the demo notebooks and a Submit button (blank demo1.ipynb:
# 0/5, demo1-partial: 3/5, demo1-solved: 5/5). Or upload a notebook at
# http://127.0.0.1:8000/services/otter_grade/ , or submit with curl (the script prints a
# ready command).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
repo=$(pwd)
state=${OTTER_DEMO_DIR:-$repo/target/demo}
want_runner=${OTTER_DEMO_RUNNER:-docker}
case $want_runner in
  docker|local) ;;
  *) echo "OTTER_DEMO_RUNNER must be docker (the default) or local, not '$want_runner'" >&2; exit 2 ;;
esac

echo "== system packages"
if [ "$want_runner" = docker ]; then
  ensure_system_packages npm python3-venv curl docker debootstrap
else
  ensure_system_packages npm python3-venv curl
fi
[ "${1:-}" = --system-packages ] && exit 0
command -v cargo >/dev/null 2>&1 || { echo "cargo is needed: install Rust from https://rustup.rs" >&2; exit 1; }
mkdir -p "$state"

refuse() {
  cat >&2 <<MSG

error: $*
The demo grades in Docker containers (network off, memory/CPU/process limits, read-only
root): the sandbox for students' code. Fix the problem above, or, on a machine where only
you submit notebooks, run the development-only local runner, which is NOT a sandbox:

    OTTER_DEMO_RUNNER=local bash scripts/demo.sh
MSG
  exit 1
}

if [ "$want_runner" = docker ]; then
  echo "== Docker engine"
  bash scripts/start-docker.sh || refuse "no Docker engine could be started (scripts/start-docker.sh failed)"
  docker info >/dev/null 2>&1 \
    || refuse "the Docker engine runs, but $(id -un) cannot use its socket (sudo usermod -aG docker $(id -un), then log in again)"
  echo "== grader image"
  bash scripts/build-grader-image.sh || refuse "the grader image could not be built (scripts/build-grader-image.sh failed)"
  runner=docker
  why="a Docker engine answers and the grader image otter-grader:7.0.0 is built"
else
  runner=local
  why="asked for with OTTER_DEMO_RUNNER=local; a subprocess on this machine, NOT a sandbox"
fi
echo "== grading runner: $runner ($why)"

echo "== otter-grader environment";  bash scripts/setup-python.sh
echo "== JupyterHub";                bash scripts/setup-jupyterhub.sh
echo "== JupyterLab 4 + Notebook 7 with the Submit button (clients/jupyter)"
bash scripts/setup-lab.sh
lab_venv=${OTTER_LAB_VENV:-$HOME/.cache/otter-service/lab-venv}
hub_venv=${OTTER_HUB_VENV:-$HOME/.cache/otter-service/hub-venv}
otter_venv=${OTTER_VENV:-$HOME/.cache/otter-service/otter-venv}
echo "== building otter-service (cargo build --release; a few minutes the first time)"
cargo build --release
bin=$repo/target/release/otter-service

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
# The staff dashboard (/services/otter_grade/staff) is for Hub admins and the course's
# staff group (demo-staff): log in as "staff" to see it.
c.Authenticator.admin_users = {"staff"}
# After login: the user's own JupyterLab, as in a course's Hub.
# Each user's JupyterLab (with the Submit button) runs as this user, in a demo home that
# starts with the three demo notebooks.
import os, shutil
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = "$state/homes/{username}"
c.Spawner.cmd = ["$lab_venv/bin/jupyterhub-singleuser"]
c.Spawner.args = ["--allow-root"]
c.Spawner.default_url = "/lab/tree/demo1.ipynb"
c.Spawner.environment = {"OTTER_SERVICE_URL": "http://127.0.0.1:8000/services/otter_grade/"}
def copy_demo_notebooks(spawner):
    home = "$state/homes/" + spawner.user.name
    os.makedirs(home, exist_ok=True)
    for name in ["demo1.ipynb", "demo1-partial.ipynb", "demo1-solved.ipynb"]:
        if not os.path.exists(os.path.join(home, name)):
            shutil.copy("$repo/course_config/materials/demo/" + name, home)
c.Spawner.pre_spawn_hook = copy_demo_notebooks
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
            # The grader hosts' door, on loopback (see the message at the end).
            "OTTER_HOSTS__BIND": "127.0.0.1:10102",
            "RUST_LOG": "info",
        },
    },
    # Lets this script make a token for the curl example.
    {"name": "demo-admin", "api_token": "$demo_token"},
]
c.JupyterHub.load_roles = [
    {"name": "user", "scopes": ["self", "access:services!service=otter_grade"]},
    # The Submit button's server extension submits with the server's own token.
    {"name": "server", "scopes": ["users:activity!user", "access:servers!server",
                                 "access:services!service=otter_grade"]},
    {"name": "demo-admin", "scopes": ["admin:users", "tokens"], "services": ["demo-admin"]},
    # Staff pages: the service reads users' admin flag and groups.
    {"name": "otter-reads-users", "scopes": ["read:users"], "services": ["otter_grade"]},
]
PY

echo "== starting JupyterHub on http://127.0.0.1:8000 (otter-service at /services/otter_grade/)"
PATH="$hub_venv/bin:$PATH" "$hub_venv/bin/jupyterhub" -f "$state/jupyterhub_config.py" &
hub_pid=$!
trap 'kill $hub_pid 2>/dev/null; wait $hub_pid 2>/dev/null' EXIT INT TERM
up=no
for _ in $(seq 120); do
  if curl -sf http://127.0.0.1:8000/services/otter_grade/healthz >/dev/null 2>&1; then up=yes; break; fi
  sleep 0.5
done
[ "$up" = yes ] || { echo "otter-service did not answer within 60 s: see JupyterHub's log above" >&2; exit 1; }
api=http://127.0.0.1:8081/hub/api
curl -sf -X POST -H "Authorization: token $demo_token" "$api/users/student1" >/dev/null || true
token=$(curl -sf -X POST -H "Authorization: token $demo_token" -d '{"note":"demo"}' \
  "$api/users/student1/tokens" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
cat <<MSG

otter-service is running (grading runner: $runner: $why).
  JupyterLab with the Submit button: http://127.0.0.1:8000/hub/spawn (any user name,
  password: demo); your home has demo1.ipynb (the blank student notebook: 0/5),
  demo1-partial.ipynb (3/5) and demo1-solved.ipynb (5/5): open one, press Submit.
  Notebook 7: the same server at http://127.0.0.1:8000/user/<name>/tree
  Your submissions: http://127.0.0.1:8000/services/otter_grade/  (upload form too)
  Staff dashboard: log in as "staff" (a Hub admin), then
    http://127.0.0.1:8000/services/otter_grade/staff
  Submit the solved notebook as student1:
    curl -H "Authorization: token $token" -H "Content-Type: application/json" \\
      --data-binary @course_config/materials/demo/demo1-solved.ipynb http://127.0.0.1:8000/services/otter_grade/
  Grades: $bin dump-grades   (with OTTER_DATABASE__PATH=$state/otter-service.db)
  Attach a grader host (docs/grader-hosts.md; here on this machine's engine), in another
  terminal: register it, then run it with the token that prints:
    OTTER_DATABASE__PATH=$state/otter-service.db $bin hosts add my-host
    OTTER_GRADER_SERVICE_URL=http://127.0.0.1:10102/ OTTER_GRADER_TOKEN=<the token> $bin grader
  It grades beside the service's own workers; \`hosts list\` shows what it graded.
Ctrl-C stops JupyterHub and the service.
MSG
wait $hub_pid
