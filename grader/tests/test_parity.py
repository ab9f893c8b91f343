"""Honest submissions: per-question scores equal a bare `otter run` of the same notebook."""
import pytest

from assignments import POLICY_CELLS, POLICY_TESTS, RICH_CELLS, RICH_TESTS, write_assignment
from conftest import DEMO_ZIP, NOTEBOOKS, run_bare_otter, run_trusted


def assert_same_scores(trusted, bare):
    assert set(trusted) == set(bare)
    for name, score in bare.items():
        assert trusted[name] == pytest.approx(score), name


@pytest.mark.parametrize("name,total", [("correct", 5), ("partial", 3), ("error", 4)])
def test_demo_notebooks_match_bare_otter(name, total, tmp_path):
    notebook = NOTEBOOKS / f"{name}.ipynb"
    run = run_trusted(notebook)
    assert run.rc == 0, run.stderr
    assert_same_scores(run.scores(), run_bare_otter(notebook, DEMO_ZIP, tmp_path / "otter"))
    assert run.doc["score"] == pytest.approx(total)
    assert run.doc["flagged"] == []
    assert run.doc["audit"] == {}


def test_rich_semantics_match_bare_otter(tmp_path):
    """numpy print options, shadowed builtins, comprehensions, exceptions, pandas, seeds,
    containers, and check-at-check-cell."""
    zip_path, nb_path = write_assignment(tmp_path, "rich", RICH_TESTS, RICH_CELLS)
    run = run_trusted(nb_path, zip_path)
    assert run.rc == 0, run.stderr
    bare = run_bare_otter(nb_path, zip_path, tmp_path / "otter")
    assert_same_scores(run.scores(), bare)
    assert run.doc["score"] == pytest.approx(10)
    assert {q["name"]: q["checked_at"] for q in run.doc["questions"]}["r7"] != "end"


def test_policy_constructs(tmp_path):
    """What cannot cross as data fails that case (README "Policies")."""
    zip_path, nb_path = write_assignment(tmp_path, "policy", POLICY_TESTS, POLICY_CELLS)
    run = run_trusted(nb_path, zip_path, extra=["--cell-timeout", "3"])
    assert run.rc == 0, run.stderr
    assert run.scores() == {"p_generator": 0, "p_lambda": 0, "p_identity": 1.0,
                            "p_class": 0, "p_method": 0, "p_loop": 0}
    flagged = {f["question"] for f in run.doc["flagged"]}
    assert flagged == {"p_generator", "p_class", "p_method"}
    assert [w["question"] for w in run.doc["test_warnings"]] == ["p_lambda"]
    # Every result carries the staff audit of the autograder's tests.
    assert set(run.doc["audit"]) == {"p_lambda case 1", "p_identity case 1", "p_class case 1",
                                     "p_method case 1"}
