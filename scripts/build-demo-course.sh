#!/usr/bin/env bash
# Build the demo course's materials from the master notebook kept in the repo:
#   course_config/demo/make_master.py  -> master notebook -> `otter assign`
#   -> course_config/materials/demo/demo1-autograder.zip  (what the service grades with)
#   -> course_config/materials/demo/demo1.ipynb           (the student notebook, with the
#                                                           otter_service metadata)
#   -> tests/notebooks/*.ipynb                            (sample submissions)
# The outputs are committed, so the service runs without this; CI rebuilds them and the
# tests grade the rebuilt ones.
#
# usage: scripts/build-demo-course.sh   (uses $OTTER_VENV or ~/.cache/otter-service/otter-venv)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${OTTER_VENV:-$HOME/.cache/otter-service/otter-venv}
[ -x "$venv/bin/otter" ] || bash scripts/setup-python.sh "$venv"
py=$venv/bin/python

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$py" course_config/demo/make_master.py "$work/demo1.ipynb"
(cd "$work" && "$venv/bin/otter" assign demo1.ipynb dist >"$work/assign.log" 2>&1) \
  || { cat "$work/assign.log" >&2; exit 1; }

out=course_config/materials/demo
mkdir -p "$out"
cp "$work"/dist/autograder/demo1-autograder_*.zip "$out/demo1-autograder.zip"
# The student notebook says which course/section/assignment it belongs to.
"$py" - "$work/dist/student/demo1.ipynb" "$out/demo1.ipynb" <<'PY'
import json, sys
nb = json.load(open(sys.argv[1]))
nb["metadata"]["otter_service"] = {"course": "demo", "section": "1", "assignment": "demo1"}
json.dump(nb, open(sys.argv[2], "w"), indent=1)
PY
"$py" tests/notebooks/make_samples.py "$out/demo1.ipynb" tests/notebooks
echo "built $out/demo1-autograder.zip and $out/demo1.ipynb"
