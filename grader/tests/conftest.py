"""Helpers: run the trusted evaluator and a bare `otter run` as subprocesses.

Run with the otter venv's python (it has otter-grader, ipykernel and pytest):
    cd grader && ~/.cache/otter-service/otter-venv/bin/python -m pytest tests -q
"""
import json
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

GRADER = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(GRADER))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from otter_trusted.protocol import verify_line  # noqa: E402

REPO = GRADER.parent
DEMO_ZIP = REPO / "course_config/materials/demo/demo1-autograder.zip"
NOTEBOOKS = REPO / "tests/notebooks"
HOSTILE = GRADER / "tests/hostile"
PYTHON = sys.executable
OTTER = str(Path(PYTHON).parent / "otter")


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str
    key: bytes
    doc: dict = None

    def scores(self):
        return {q["name"]: q["score"] for q in self.doc["questions"]}


def run_trusted(notebook, autograder=DEMO_ZIP, extra=(), key=None, timeout=300):
    key = key or secrets.token_bytes(32)
    proc = subprocess.run(
        [PYTHON, "-m", "otter_trusted", "--autograder", str(autograder),
         "--notebook", str(notebook), "--key-from-stdin", *extra],
        input=key.hex() + "\n", capture_output=True, text=True, cwd=GRADER, timeout=timeout)
    run = Run(proc.returncode, proc.stdout, proc.stderr, key)
    if proc.returncode == 0:
        run.doc = verify_line(proc.stdout, key)
    return run


def run_bare_otter(notebook, autograder, out_dir):
    """Per-question scores from a bare `otter run` (what the service runs today)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run([OTTER, "run", "-a", str(autograder), "-o", str(out_dir), str(notebook)],
                   capture_output=True, timeout=300, check=True)
    results = json.loads((out_dir / "results.json").read_text())
    return {t["name"]: t["score"] for t in results["tests"] if "score" in t}


def hidden_texts(autograder=DEMO_ZIP):
    """Code of every hidden case in an autograder (must never appear in results)."""
    from otter_trusted import autograder as ag
    loaded = ag.load(Path(autograder).read_bytes())
    return [tc.body.strip().lstrip(">").strip() for tf in loaded.tests.values()
            for tc in tf.test_cases if tc.hidden]


@pytest.fixture
def private_zip(tmp_path):
    """A copy of the demo autograder that the evaluator deletes once it is in memory."""
    path = tmp_path / "private" / "demo1-autograder.zip"
    path.parent.mkdir()
    path.write_bytes(DEMO_ZIP.read_bytes())
    return path
