"""Hostile notebooks (tests/hostile/, written by make_hostile.py): each must score no more
than its honest part, and no hidden test text may appear in the results."""
import json
import os
import sys
from pathlib import Path

import pytest

from conftest import DEMO_ZIP, HOSTILE, hidden_texts, run_bare_otter, run_trusted

sys.path.insert(0, str(HOSTILE))
import make_hostile  # noqa: E402

# Honest part of every hostile notebook: q1 right (1), q2 wrong (0), q3 `return 0`
# passes only vowels('') == 0 (2/3, which otter's results.json rounds to 5 places).
# Attack overrides can only lower it.
HONEST = {"q1": 1.0, "q2": 0.0, "q3": 0.66667}
EXPECTED = {
    "patch_runner": HONEST, "unhide": HONEST, "fake_marker": HONEST, "read_tests": HONEST,
    "always_eq": {"q1": 1.0, "q2": 0.0, "q3": 0.0},
    "int_subclass": {"q1": 1.0, "q2": 0.0, "q3": 0.0},
    "reduce": {"q1": 1.0, "q2": 0.0, "q3": 0.0},
    "numpy_subclass": {"q1": 1.0, "q2": 0.0, "q3": 0.0},
    "monkeypatch": {"q1": 0.0, "q2": 0.0, "q3": 0.66667},  # q1 answered with the str '55'
}
FLAGGED = {"always_eq", "int_subclass", "numpy_subclass", "reduce", "fake_marker"}
# make_hostile.CONTAINER_ONLY (signals, results files, other processes' stdout) run only
# in the grading container: tests/api/trusted.rs, through the service.
PWNED = Path("/tmp/otter-trusted-reduce-pwned")


def test_every_local_hostile_notebook_is_tested():
    assert set(EXPECTED) == set(make_hostile.ATTACKS)


def test_honest_twin_scores_what_we_assume(tmp_path):
    """The honest part, measured with bare otter on the notebook minus its attack."""
    twin = tmp_path / "twin.ipynb"
    twin.write_text(json.dumps(make_hostile.notebook("pass", {})))
    assert run_bare_otter(twin, DEMO_ZIP, tmp_path / "otter") == pytest.approx(HONEST)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hostile_notebook(name, private_zip):
    PWNED.unlink(missing_ok=True)
    run = run_trusted(HOSTILE / f"{name}.ipynb", private_zip,
                      extra=["--remove-autograder", "--cell-timeout", "30"])
    assert run.rc == 0, run.stderr
    assert run.scores() == pytest.approx(EXPECTED[name])
    assert run.doc["score"] <= sum(HONEST.values()) + 1e-9
    assert bool(run.doc["flagged"]) == (name in FLAGGED), run.doc["flagged"]
    # exactly one line on stdout, and it is ours
    assert run.stdout.count("\n") == 1 and run.stdout.startswith("OTTER-TRUSTED ")
    everything = json.dumps(run.doc)
    for text in hidden_texts():
        assert text not in everything and text not in run.stdout
    assert run.key.hex() not in run.stderr   # the kernel printed its environment
    assert not private_zip.exists()          # in memory only, deleted before the kernel ran
    assert not PWNED.exists()                # nothing was unpickled


def test_read_tests_finds_nothing(private_zip):
    run = run_trusted(HOSTILE / "read_tests.ipynb", private_zip, extra=["--remove-autograder"])
    assert "FOUND []" in run.stderr


def test_fake_marker_is_flagged_and_does_not_verify(private_zip):
    run = run_trusted(HOSTILE / "fake_marker.ipynb", private_zip)
    reasons = [f["reason"] for f in run.doc["flagged"]]
    assert any("imitating the results marker" in r for r in reasons)


@pytest.mark.parametrize("name", ["patch_runner", "always_eq"])
def test_attacks_are_real_against_bare_otter(name, tmp_path):
    """Sanity check of the test set: bare otter gives these notebooks more than honest."""
    bare = run_bare_otter(HOSTILE / f"{name}.ipynb", DEMO_ZIP, tmp_path / "otter")
    assert sum(bare.values()) > sum(HONEST.values()) + 1e-9


def test_unhide_leaks_with_bare_otter(tmp_path):
    run_bare_otter(HOSTILE / "unhide.ipynb", DEMO_ZIP, tmp_path / "otter")
    results = json.loads((tmp_path / "otter/results.json").read_text())
    public = results["tests"][0]["output"]
    assert any(text in public for text in hidden_texts())


@pytest.mark.skipif(os.geteuid() != 0 or not os.environ.get("OTTER_TRUSTED_KERNEL_PYTHON"),
                    reason="needs root and a kernel python readable by uid 65534 "
                           "(OTTER_TRUSTED_KERNEL_PYTHON)")
def test_kernel_runs_as_other_uid_without_capabilities(tmp_path):
    nb = tmp_path / "whoami.ipynb"
    src = ("import os\nprint('STATUS', open('/proc/self/status').read())\n"
           "try:\n    os.kill(os.getppid(), 0); print('SIGNAL-OK')\n"
           "except OSError: print('SIGNAL-DENIED')\nanswer = 55")
    nb.write_text(json.dumps({"cells": [{"cell_type": "code", "metadata": {}, "outputs": [],
                                         "execution_count": None, "source": src}],
                              "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    run = run_trusted(nb, extra=["--kernel-user", "65534:65534", "--kernel-python",
                                 os.environ["OTTER_TRUSTED_KERNEL_PYTHON"]])
    assert run.rc == 0, run.stderr
    assert "Uid:\t65534\t65534\t65534\t65534" in run.stderr
    assert "CapEff:\t0000000000000000" in run.stderr and "NoNewPrivs:\t1" in run.stderr
    assert "SIGNAL-DENIED" in run.stderr and run.scores()["q1"] == 1.0
