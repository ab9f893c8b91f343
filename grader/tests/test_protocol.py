"""The results channel: HMAC over the exact JSON, exit codes, nothing else on stdout."""
import base64
import secrets
from pathlib import Path

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


def _inputs(autograder, notebook):
    import io
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, path in (("autograder.zip", autograder), ("submission.ipynb", notebook)):
            data = Path(path).read_bytes()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _serve(stdin_bytes):
    import subprocess
    from conftest import GRADER, PYTHON
    return subprocess.run([PYTHON, "-m", "otter_trusted", "--inputs-from-stdin"],
                          input=stdin_bytes, capture_output=True, cwd=GRADER, timeout=300)


def test_inputs_from_stdin_grade_as_the_file_form():
    """The grading container's form: kernel first, then `<n>\\n`, the tar and the key."""
    from conftest import DEMO_ZIP, NOTEBOOKS
    key = secrets.token_bytes(32)
    tar = _inputs(DEMO_ZIP, NOTEBOOKS / "partial.ipynb")
    proc = _serve(f"{len(tar)}\n".encode() + tar + key.hex().encode() + b"\n")
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    doc = verify_line(proc.stdout.decode(), key)
    file_form = run_trusted(NOTEBOOKS / "partial.ipynb")
    assert {q["name"]: q["score"] for q in doc["questions"]} == file_form.scores()


def test_inputs_from_stdin_refuse_a_short_or_bad_input():
    key = secrets.token_bytes(32).hex().encode() + b"\n"
    for bad in (b"not-a-size\n" + key, b"100\n" + b"x" * 10, b"5\nhello" + key):
        proc = _serve(bad)
        assert proc.returncode == 2, (bad[:20], proc.stderr.decode()[-500:])
        assert proc.stdout == b""


def test_a_cell_printing_without_end_still_times_out(tmp_path):
    """The outputs are drained while the reply is awaited, never past the cell's deadline."""
    import json
    loop = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
            "source": "while True:\n    print('x' * 1000)"}
    answer = dict(loop, source="answer = 55")
    nb = tmp_path / "flood.ipynb"
    nb.write_text(json.dumps({"cells": [loop, answer], "metadata": {}, "nbformat": 4,
                              "nbformat_minor": 5}))
    run = run_trusted(nb, extra=["--cell-timeout", "5"])
    assert run.rc == 0
    assert [e["error"] for e in run.doc["cell_errors"]] == ["timeout"]
    assert run.scores()["q1"] == 1.0
