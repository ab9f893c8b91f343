"""The staff report of tests that rely on constructs that cannot cross as data."""
from assignments import POLICY_CELLS, POLICY_TESTS, write_assignment
from conftest import DEMO_ZIP
from otter_trusted.audit import audit


def test_audit_names_the_policy_constructs(tmp_path):
    zip_path, _ = write_assignment(tmp_path, "policy", POLICY_TESTS, POLICY_CELLS)
    report = audit(zip_path.read_bytes())
    assert set(report) == {"p_lambda case 1", "p_identity case 1", "p_class case 1",
                           "p_method case 1"}


def test_audit_of_demo_is_clean():
    assert audit(DEMO_ZIP.read_bytes()) == {}
