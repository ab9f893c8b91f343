"""Run the notebook in the kernel and check each question where otter would.

A question is checked right after the cell that calls `grader.check("q")` (unless that
cell raised, as otter's check would not have been reached), the last check wins, and
every question not checked by then is checked at the end.  The tests run here, on the
trusted side, with otter's own OKTestFile.run over a LazyGlobals namespace.
"""
import copy

from .kernel import CellTimeout, KernelDied
from .namespace import Fetcher, LazyGlobals
from .notebook import code_cells
from .policy import PURE_BUILTINS, forwarded_seeds, kernel_printoptions
from .results import Report

# Runs in the kernel before the student's cells.  `otter` there is a stand-in whose
# Notebook does nothing (the real one would look for test files, which the kernel must
# not have, and turn every check cell into an erroring cell); its __path__ is the real
# package's, so `otter.<submodule>` imports still work.  It also saves the ~1 s of
# `import otter`.  Cosmetic only: nothing the kernel's otter does reaches the result.
KERNEL_PRELUDE = """
import importlib.util as _u, sys as _s, types as _t
_spec = _u.find_spec("otter")
if _spec is not None and "otter" not in _s.modules:
    class Notebook:
        def __init__(self, *args, **kwargs):
            pass
        def __getattr__(self, name):
            return lambda *args, **kwargs: None
    _m = _t.ModuleType("otter")
    _m.__path__ = list(_spec.submodule_search_locations)
    _m.Notebook = Notebook
    _s.modules["otter"] = _m
    del Notebook, _m
del _u, _s, _t, _spec
"""


class Evaluator:
    def __init__(self, autograder, session, cell_timeout=None):
        self.ag, self.session, self.cell_timeout = autograder, session, cell_timeout
        self.report = Report()

    def run(self, nb_json):
        cells = code_cells(nb_json, self.ag.config, set(self.ag.tests))
        self.session.execute(KERNEL_PRELUDE, timeout=60, silent=True)
        self.session.request({"op": "setup", "pure_builtins": sorted(PURE_BUILTINS)},
                             timeout=60)
        for cell in cells:
            if self.session.dead:
                self.report.kernel_died = True
                break
            ok = self._run_cell(cell)
            if ok:
                for q in cell.checks:
                    self._check(q, f"cell {cell.index}")
        for q in self.ag.tests:
            if q not in self.report.results:
                self._check(q, "end")
        self.report.kernel_died = self.report.kernel_died or self.session.dead
        return self.report

    def _run_cell(self, cell):
        """True if the cell ran without error; errors are recorded, never fatal."""
        try:
            reply = self.session.execute(cell.source, timeout=self.cell_timeout)
        except CellTimeout:
            self.report.cell_error(cell.index, "timeout", f"no result in {self.cell_timeout} s")
            return False
        except KernelDied as e:
            self.report.cell_error(cell.index, "kernel died", str(e))
            self.report.kernel_died = True
            return False
        if reply.get("status") != "ok":
            self.report.cell_error(cell.index, str(reply.get("ename", "error"))[:100],
                                   str(reply.get("evalue", ""))[:300])
            return False
        return True

    def _check(self, question, where):
        test_file = copy.copy(self.ag.tests[question])
        fetcher = Fetcher(self.session, self.report, timeout=self.cell_timeout)
        self.report.current = question
        with kernel_printoptions(fetcher), forwarded_seeds(fetcher):
            test_file.run(LazyGlobals(fetcher))
        self.report.current = None
        self.report.record(question, test_file, where)
