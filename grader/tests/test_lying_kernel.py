"""A lying kernel (issue 19): the notebook replaces what the kernel-side helper answers
(tests/hostile/lie_*.ipynb, written by make_hostile.py). Whatever it sends is data about
the student: the evaluator always ends with a result line, the cases that asked fail and
the grade is flagged, a kernel that answers nothing readable is refused as the student's
fault, and no name the kernel sends is ever imported on the trusted side."""
import json
import subprocess
import sys

import pytest

from conftest import DEMO_ZIP, HOSTILE, OTTER, hidden_texts, run_trusted
from otter_trusted import kernel, namespace, policy
from otter_trusted.codec import Refused

sys.path.insert(0, str(HOSTILE))
import make_hostile  # noqa: E402

HONEST = {"q1": 1.0, "q2": 0.0, "q3": 0.66667}
ZERO = {"q1": 0.0, "q2": 0.0, "q3": 0.0}
# What each lying notebook earns: lies that replace the student's values fail every case
# that reads one; lie_forged answers honestly around its forged messages.
EXPECTED = {"lie_module": ZERO, "lie_true": ZERO, "lie_garbage": ZERO, "lie_raise": ZERO,
            "lie_nested": ZERO, "lie_types": ZERO, "lie_oversized": ZERO,
            "lie_forged": HONEST}
# No answer of these could be read at all: the whole submission is the student's fault.
UNREADABLE = {"lie_garbage", "lie_raise", "lie_nested"}


def test_every_lying_notebook_is_tested():
    assert set(EXPECTED) == set(make_hostile.LYING)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_lying_kernel_is_graded_and_flagged(name, private_zip):
    run = run_trusted(HOSTILE / f"{name}.ipynb", private_zip,
                      extra=["--remove-autograder", "--cell-timeout", "30"])
    assert run.rc == 0, run.stderr[-2000:]
    assert run.stdout.count("\n") == 1 and run.stdout.startswith("OTTER-TRUSTED ")
    assert run.scores() == pytest.approx(EXPECTED[name])
    assert run.doc["score"] <= sum(HONEST.values()) + 1e-9
    assert run.doc["flagged"], "a lying kernel is flagged for staff"
    fault = run.doc.get("student_fault")
    if name in UNREADABLE:
        assert fault["kind"] == "kernel_unreadable"
        assert "could not read any of your answers" in fault["message"]
    else:
        assert fault is None, fault
    everything = json.dumps(run.doc)
    for text in hidden_texts():
        assert text not in everything
    assert len(run.stdout) < 64 << 10, "oversized answers are capped, not passed on"


def test_a_kernel_named_module_is_never_imported_here():
    before = set(sys.modules)
    for o in ({"t": "module", "name": "numpy.f2py.__main__"},
              {"t": "class", "module": "numpy", "qualname": "f2py"},
              {"t": "class", "module": "numpy.f2py", "qualname": "main"},
              {"t": "module", "name": "numpy.distutils"}):
        with pytest.raises(Refused):
            namespace._library_object(o)
    assert not [m for m in set(sys.modules) - before if "f2py" in m or "distutils" in m]
    # The other direction: a test's own function passes by name only if already loaded.
    assert namespace._library_function(["numpy.f2py.__main__", "main"]) is None
    assert "numpy.f2py.__main__" not in sys.modules
    import numpy
    assert namespace._library_object({"t": "class", "module": "numpy",
                                      "qualname": "ndarray"}) is numpy.ndarray
    assert namespace._library_function(["numpy", "mean"]) is numpy.mean
    with pytest.raises(namespace.NotAllowed):
        namespace._library_object({"t": "module", "name": "os"})


def test_only_reviewed_modules_are_imported_on_demand():
    assert all(m.split(".")[0] in policy.ALLOWED_MODULES for m in policy.IMPORTABLE_MODULES)
    assert not [m for m in policy.IMPORTABLE_MODULES if "f2py" in m or "__main__" in m]
    # A submodule is reached only through its reviewed package's own import.
    assert namespace._importable_package("numpy.f2py.__main__") == "numpy"
    assert namespace._importable_package("datascience.tables") == "datascience"
    assert namespace._importable_package("os.path") is None


def test_print_options_keep_only_numpy_values():
    wanted, refused = policy.checked_printoptions(
        {"precision": 4, "legacy": "1.13", "formatter": None, "threshold": -1,
         "linewidth": [1], "sign": {"x": 1}, "override_repr": None, "evil": 1})
    assert wanted == {"precision": 4, "legacy": "1.13"}
    assert sorted(refused) == ["evil", "linewidth", "sign", "threshold"]
    assert policy.checked_printoptions(True) == ({}, ["<not a dict>"])
    # A value whose comparison raises (an array's truth value) is refused, not an error.
    import numpy
    assert policy.checked_printoptions({"sign": numpy.array([1, 2]),
                                        "legacy": numpy.array([1])}) == ({}, ["sign", "legacy"])


@pytest.mark.parametrize("reply", [
    {}, {"user_expressions": []}, {"user_expressions": {"r": {"status": "error"}}},
    {"user_expressions": {"r": {"status": "ok", "data": {"text/plain": 5}}}},
    {"user_expressions": {"r": {"status": "ok", "data": {"text/plain": "__import__('os')"}}}},
    {"user_expressions": {"r": {"status": "ok", "data": {"text/plain": "'[1]'"}}}},
    {"user_expressions": {"r": {"status": "ok", "data": {"text/plain": "'{\"ok\": 1}'"}}}},
])
def test_malformed_helper_replies_are_bad_replies(reply):
    with pytest.raises(kernel.BadReply):
        kernel._helper_reply(reply)


def test_wrong_assignment_is_refused_with_otters_sentence(tmp_path):
    nb = tmp_path / "lab99.ipynb"
    nb.write_text(json.dumps(make_hostile.wrong_assignment()))
    run = run_trusted(nb)
    assert run.rc == 0, run.stderr
    fault = run.doc["student_fault"]
    sentence = "Received submission for assignment 'lab99' (this is assignment 'demo1')"
    assert fault["kind"] == "wrong_assignment" and sentence in fault["message"]
    assert run.doc["questions"] == []
    # bare otter refuses it with the same sentence (and no results)
    (tmp_path / "out").mkdir()
    bare = subprocess.run([OTTER, "run", "-a", str(DEMO_ZIP), "-o", str(tmp_path / "out"),
                           str(nb)], capture_output=True, text=True, timeout=300)
    assert bare.returncode != 0 and sentence in bare.stdout + bare.stderr
    assert not (tmp_path / "out/results.json").exists()


def test_a_notebook_without_an_assignment_name_is_graded(tmp_path):
    nb = make_hostile.wrong_assignment()
    del nb["metadata"]["otter"]
    path = tmp_path / "nameless.ipynb"
    path.write_text(json.dumps(nb))
    run = run_trusted(path)
    assert run.rc == 0 and "student_fault" not in run.doc
    assert run.doc["score"] == 5
