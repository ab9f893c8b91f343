"""Wall time of the trusted evaluator vs a bare `otter run` on one notebook.

    ~/.cache/otter-service/otter-venv/bin/python tests/bench_timing.py [NOTEBOOK] [RUNS]

Runs alternate (trusted, bare, trusted, ...) so machine noise hits both alike; prints
each time and the medians.  Not a pytest test (one grading process at a time).
"""
import statistics
import sys
import tempfile
import time
from pathlib import Path

from conftest import DEMO_ZIP, NOTEBOOKS, run_bare_otter, run_trusted


def main():
    notebook = Path(sys.argv[1]) if len(sys.argv) > 1 else NOTEBOOKS / "correct.ipynb"
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    trusted, bare = [], []
    for i in range(runs):
        t0 = time.monotonic()
        run = run_trusted(notebook)
        trusted.append(time.monotonic() - t0)
        assert run.rc == 0, run.stderr
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.monotonic()
            run_bare_otter(notebook, DEMO_ZIP, Path(tmp) / "out")
            bare.append(time.monotonic() - t0)
        print(f"run {i + 1}: trusted {trusted[-1]:.2f} s, bare otter {bare[-1]:.2f} s")
    mt, mb = statistics.median(trusted), statistics.median(bare)
    print(f"median: trusted {mt:.2f} s, bare otter {mb:.2f} s, ratio {mt / mb:.2f}")


if __name__ == "__main__":
    main()
