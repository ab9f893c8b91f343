"""Run the notebook in the kernel and check each question where otter would.

A question is checked right after the cell that calls `grader.check("q")` (unless that
cell raised, as otter's check would not have been reached), the last check wins, and
every question not checked by then is checked at the end.  The tests run here, on the
trusted side, with otter's own OKTestFile.run over a LazyGlobals namespace.
"""
import copy

from .kernel import BadReply, CellTimeout, KernelDied
from .namespace import Fetcher, LazyGlobals
from .notebook import assignment_name, code_cells
from .output import text_of
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
        if self._wrong_assignment(nb_json):
            return self.report
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
        self._judge_the_kernel()
        return self.report

    def _wrong_assignment(self, nb_json):
        """otter's check: a notebook that names another assignment is refused with otter's
        sentence (a notebook that names none is graded, unlike otter, which refuses it:
        the service already matched it to this assignment by its own metadata)."""
        want = self.ag.config.get("assignment_name")
        got = assignment_name(nb_json)
        if not want or got is None or got == want:
            return False
        self.report.refuse("wrong_assignment",
                           f"Received submission for assignment '{got[:100]}' (this is "
                           f"assignment '{want}'). Check that you submitted this "
                           f"assignment's notebook.")
        return True

    def _judge_the_kernel(self):
        """Flag a kernel that sent messages no honest kernel sends, and refuse a
        submission none of whose answers could be read: its kernel was made to answer
        the grader with garbage, which only the notebook's code can do."""
        forged = self.session.malformed_messages
        if forged:
            self.report.current = None
            self.report.flag(f"the kernel sent {forged} message(s) that were not "
                             "well-formed kernel messages")
        if self.report.replies["bad"] and not self.report.replies["ok"]:
            self.report.refuse(
                "kernel_unreadable",
                "The grader could not read any of your answers: code in your notebook "
                "changed how its kernel answers the grader (for example by replacing "
                "json.dumps or a part of Python the grader relies on), so it was not "
                "graded. Remove that code, restart the kernel, run all cells and submit "
                "again.")

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
        except BadReply as e:  # flagged with the kernel's other malformed messages
            self.report.cell_error(cell.index, "no reply", str(e))
            return False
        if reply.get("status") != "ok":
            self.report.cell_error(cell.index, text_of(reply.get("ename", "error"), 100),
                                   text_of(reply.get("evalue", ""), 300))
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
