"""Regressions found measuring parity on Berkeley Data 8 labs (docs/data8-parity.md),
rebuilt on synthetic material: no Data 8 files and no `datascience` needed."""
import io
import json
import pprint
import zipfile

from assignments import DEMO_ZIP, case, notebook, ok_test
from conftest import run_bare_otter, run_trusted
import pytest

from otter_trusted.autograder import support_files
from otter_trusted.namespace import _library_function, _library_object
from test_parity import assert_same_scores

TESTS = [
    # a data file shipped under files/ (as otter assign/generate do) is read by the notebook
    ok_test("d_file", 1, [case(">>> rows\n3\n"), case(">>> header\n'a,b'\n", hidden=True)]),
    # a student function that prints: the doctest sees its output (lab04 q14)
    ok_test("d_print", 1, [case(">>> show(4)\nYear number 4 was: 2009\n"),
                           case(">>> show(1)\nYear number 1 was: 2009\n", hidden=True)]),
    # an object array of functions (lab04 q31: make_array(max, np.average, are.equal_to));
    # np.mean is numpy 2's _ArrayFunctionDispatcher, not a plain function: it is a proxy too
    ok_test("d_objarray", 1, [case(">>> len(fns)\n3\n>>> callable(fns[0]) and callable(fns[2])"
                                   "\nTrue\n"),
                              case(">>> bool(fns[1](np.array([1, 3])) == 2.0)\nTrue\n"
                                   ">>> fns[2](5)\n5\n", hidden=True)]),
    # a library function passed by a test into a student function crosses by name
    ok_test("d_libfn_arg", 1, [case(">>> float(call_with(np.mean, np.array([1, 3])))\n2.0\n")]),
    # an unanswered question (`...`): fails as in otter, and is no evidence to flag
    ok_test("d_blank", 1, [case(">>> answer == 42\nTrue\n")]),
]

CELLS = [
    "import otter\ngrader = otter.Notebook('data8.ipynb')\nimport numpy as np",
    "lines = open('tiny.csv').read().splitlines()\nheader, rows = lines[0], len(lines) - 1",
    "grader.check('d_file')",
    "def show(k):\n    print('Year number', k, 'was:', 2009)",
    "grader.check('d_print')",
    "def third(x):\n    return x\nfns = np.array([max, np.mean, third], dtype=object)",
    "def call_with(f, x):\n    return f(x)",
    "answer = ...\nanswer",
    "grader.check('d_blank')",
]


def write_zip(path):
    with zipfile.ZipFile(DEMO_ZIP) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            if not info.filename.startswith("tests/"):
                dst.writestr(info, src.read(info))
        for t in TESTS:
            dst.writestr(f"tests/{t['name']}.py",
                         "OK_FORMAT = True\n\ntest = " + pprint.pformat(t, indent=4) + "\n")
        dst.writestr("files/tiny.csv", "a,b\n1,2\n3,4\n5,6\n")


def test_support_files_under_files_dir_go_next_to_the_notebook():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("files/data.csv", "new")
        zf.writestr("files/sub/x.txt", "x")
        zf.writestr("data.csv", "old")
        zf.writestr("extra.txt", "e")
        zf.writestr("tests/q1.py", "test = {}")
        zf.writestr("otter_config.json", "{}")
    assert support_files(buf.getvalue()) == {
        "data.csv": b"new", "sub/x.txt": b"x", "extra.txt": b"e"}


def test_data8_constructs_match_bare_otter(tmp_path):
    zip_path, nb_path = tmp_path / "data8-autograder.zip", tmp_path / "data8.ipynb"
    write_zip(zip_path)
    nb_path.write_text(json.dumps(notebook(CELLS)))
    run = run_trusted(nb_path, zip_path)
    assert run.rc == 0, run.stderr
    bare = run_bare_otter(nb_path, zip_path, tmp_path / "otter")
    assert_same_scores(run.scores(), bare)
    assert run.scores() == {"d_file": 1, "d_print": 1, "d_objarray": 1,
                            "d_libfn_arg": 1, "d_blank": 0}
    assert run.doc["flagged"] == [] and run.doc["cell_errors"] == []


def test_library_functions_resolve_to_the_trusted_import_only_when_allowed():
    import numpy as np
    assert _library_function(["numpy", "mean"]) is np.mean
    for lib in (["os", "system"], ["numpy", "_core"], ["numpy", "ndarray"], ["numpy", "<lambda>"],
                ["numpy", "no_such_fn"], "numpy.mean", ["numpy"]):
        assert _library_function(lib) is None


def test_matplotlib_pyplot_is_an_allowed_module():
    """lab05 q31 calls plt.close() in the test; `plt` must become the trusted import."""
    pytest.importorskip("matplotlib", reason="matplotlib is not installed here")
    plt = _library_object({"t": "module", "name": "matplotlib.pyplot"})
    assert plt.__name__ == "matplotlib.pyplot"
    plt.close()
