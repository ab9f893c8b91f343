#!/usr/bin/env bash
# Build the demo course's materials from the master notebook kept in the repo:
#   course_config/demo/make_master.py  -> master notebook -> `otter assign`
#   -> course_config/materials/demo/demo1-autograder.zip  what the service grades with
#   -> course_config/materials/demo/demo1.ipynb           the blank student notebook (with
#                                                          the otter_service metadata)
#   -> tests/notebooks/*.ipynb                            sample submissions (make_samples.py)
#   -> course_config/materials/demo/demo1-solved.ipynb    = tests/notebooks/correct.ipynb
#   -> course_config/materials/demo/demo1-partial.ipynb   = tests/notebooks/partial.ipynb
#
# The outputs are committed, so the service runs without this. The build is reproducible:
# otter's random cell ids are replaced by fixed ones, and the zip is rewritten with fixed
# entry order, timestamps and permissions; a rebuild with the same otter version gives the
# same bytes.
#
# usage: scripts/build-demo-course.sh           rebuild and write the files above
#        scripts/build-demo-course.sh --check   rebuild in a temp dir, fail if any file differs
#                                               from the work tree (writes nothing), and grade
#                                               the blank, partial, error and solved notebooks
#                                               with `otter run` (0, 3, 4, 5 of 5)
# Uses $OTTER_VENV or ~/.cache/otter-service/otter-venv (made by scripts/setup-python.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
check=no
case ${1:-} in
  --check) check=yes ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac
venv=${OTTER_VENV:-$HOME/.cache/otter-service/otter-venv}
bash scripts/setup-python.sh "$venv"   # no-op when its stamp is current
py=$venv/bin/python

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
say "otter assign (master notebook from course_config/demo/make_master.py)"
"$py" course_config/demo/make_master.py "$work/demo1.ipynb"
(cd "$work" && "$venv/bin/otter" assign demo1.ipynb dist >"$work/assign.log" 2>&1) \
  || { cat "$work/assign.log" >&2; exit 1; }

out=$work/out
mkdir -p "$out/course_config/materials/demo" "$out/tests/notebooks"
mat=$out/course_config/materials/demo
"$py" - "$work"/dist/autograder/demo1-autograder_*.zip "$mat/demo1-autograder.zip" \
  "$work/dist/student/demo1.ipynb" "$mat/demo1.ipynb" <<'PY'
import json, re, sys, zipfile
zip_in, zip_out, nb_in, nb_out = sys.argv[1:5]
# The zip, stored (no compression: no dependence on the zlib version), sorted, fixed dates.
with zipfile.ZipFile(zip_in) as zin, zipfile.ZipFile(zip_out, "w", zipfile.ZIP_STORED) as zout:
    for name in sorted(zin.namelist()):
        info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
        info.create_system = 3
        info.external_attr = zin.getinfo(name).external_attr
        info.compress_type = zipfile.ZIP_STORED
        zout.writestr(info, zin.read(name))
nb = json.load(open(nb_in))
# make_master.py names its cells cellNN; otter gives the cells it adds random ids.
for i, cell in enumerate(nb["cells"]):
    if not re.fullmatch(r"cell\d\d", cell.get("id", "")):
        cell["id"] = f"otter-{i:02d}"
# Which course/section/assignment the notebook belongs to.
nb["metadata"]["otter_service"] = {"course": "demo", "section": "1", "assignment": "demo1"}
with open(nb_out, "w") as f:
    json.dump(nb, f, indent=1)
    f.write("\n")
PY
"$py" tests/notebooks/make_samples.py "$mat/demo1.ipynb" "$out/tests/notebooks" >/dev/null
cp "$out/tests/notebooks/correct.ipynb" "$mat/demo1-solved.ipynb"
cp "$out/tests/notebooks/partial.ipynb" "$mat/demo1-partial.ipynb"
files=$(cd "$out" && find . -type f | sed 's|^\./||' | sort)

if [ "$check" = no ]; then
  for f in $files; do cp "$out/$f" "$f"; done
  say "built $(echo "$files" | wc -l) files: course_config/materials/demo/*, tests/notebooks/*.ipynb"
  exit 0
fi

differ=0
for f in $files; do
  if ! cmp -s "$out/$f" "$f"; then echo "differs from a fresh build: $f" >&2; differ=1; fi
done
if [ "$differ" = 1 ]; then
  echo "The demo course files are not what scripts/build-demo-course.sh builds: run it" >&2
  echo "(without --check) and commit the result, or undo the edits above." >&2
  exit 1
fi
say "the $(echo "$files" | wc -l) demo course files match a fresh build"

# Grade the committed notebooks with the committed zip: the scores the README states.
zip=$PWD/course_config/materials/demo/demo1-autograder.zip
for want in course_config/materials/demo/demo1.ipynb:0 course_config/materials/demo/demo1-partial.ipynb:3 \
            tests/notebooks/error.ipynb:4 course_config/materials/demo/demo1-solved.ipynb:5; do
  nb=${want%%:*}; dir=$work/grade-$(basename "$nb" .ipynb)
  mkdir -p "$dir"
  (cd "$dir" && "$venv/bin/otter" run -a "$zip" -o . "$OLDPWD/$nb" >run.log 2>&1) \
    || { cat "$dir/run.log" >&2; exit 1; }
  got=$("$py" -c 'import json, sys
t = json.load(open(sys.argv[1]))["tests"]
print("%g/%g" % (sum(x.get("score") or 0 for x in t), sum(x.get("max_score") or 0 for x in t)))' \
    "$dir/results.json")
  if [ "$got" != "${want#*:}/5" ]; then echo "grading $nb: got $got, want ${want#*:}/5" >&2; exit 1; fi
  say "otter run $nb: $got"
done
