"""The results channel: HMAC over the exact JSON, exit codes, nothing else on stdout."""
import base64
import secrets

import pytest

from conftest import NOTEBOOKS, run_trusted
from otter_trusted.protocol import ProtocolError, encode_line, verify_line


@pytest.fixture(scope="module")
def correct_run():
    return run_trusted(NOTEBOOKS / "correct.ipynb")


def test_hmac_verifies_with_the_key_only(correct_run):
    assert correct_run.rc == 0
    assert verify_line(correct_run.stdout, correct_run.key)["score"] == 5
    with pytest.raises(ProtocolError):
        verify_line(correct_run.stdout, secrets.token_bytes(32))


def test_tampered_payload_fails(correct_run):
    marker, mac, payload = correct_run.stdout.split()
    doc = base64.b64decode(payload).replace(b'"score":5.0', b'"score":9.0')
    forged = f"{marker} {mac} {base64.b64encode(doc).decode()}"
    with pytest.raises(ProtocolError):
        verify_line(forged, correct_run.key)


def test_roundtrip_and_other_key():
    key = secrets.token_bytes(32)
    line = encode_line({"score": 1}, key)
    assert verify_line(line, key) == {"score": 1}
    with pytest.raises(ProtocolError):
        verify_line(line, key[::-1])


def test_bad_key_is_exit_2_with_empty_stdout(tmp_path):
    import subprocess
    import sys
    from conftest import DEMO_ZIP, GRADER
    proc = subprocess.run([sys.executable, "-m", "otter_trusted", "--autograder", str(DEMO_ZIP),
                           "--notebook", str(NOTEBOOKS / "correct.ipynb"), "--key-from-stdin"],
                          input="not-hex\n", capture_output=True, text=True, cwd=GRADER)
    assert proc.returncode == 2 and proc.stdout == ""


def test_kernel_start_failure_is_exit_3():
    run = run_trusted(NOTEBOOKS / "correct.ipynb", extra=["--kernel-python", "/nonexistent"])
    assert run.rc == 3 and run.stdout == ""


def test_cell_timeout_and_later_cells_still_graded():
    run = run_trusted(NOTEBOOKS / "infinite_loop.ipynb", extra=["--cell-timeout", "3"])
    assert run.rc == 0
    assert [e["error"] for e in run.doc["cell_errors"]] == ["timeout"]
    assert run.doc["score"] == 5
