"""Extra assignments for the tests: autograder zips built from OK-format test dicts, and
notebooks answering them.  `RICH` exercises semantics that must match bare otter;
`POLICY` exercises the constructs that cannot cross as data (see README "Policies")."""
import json
import pprint
import zipfile

DEMO_ZIP = "/work/main/course_config/materials/demo/demo1-autograder.zip"


def case(code, hidden=False):
    return {"code": code, "hidden": hidden, "locked": False}


def ok_test(name, points, cases):
    return {"name": name, "points": points, "suites": [{
        "cases": cases, "scored": True, "setup": "", "teardown": "", "type": "doctest"}]}


RICH_TESTS = [
    ok_test("r1", 2, [  # numpy values, reprs and the kernel's print options
        case(">>> arr\narray([1, 2, 3])\n"),
        case(">>> arr[0] == 1\nTrue\n>>> np.array_equal(arr * 2, np.array([2, 4, 6]))\nTrue\n",
             hidden=True)]),
    ok_test("r2", 2, [  # a student name shadowing a builtin, comprehensions, generator exprs
        case(">>> max == 6\nTrue\n"),
        case(">>> [x for x in range(10) if x < max] == list(range(6))\nTrue\n"
             ">>> all(square2(i) == i * i for i in range(5))\nTrue\n", hidden=True)]),
    ok_test("r3", [1, 1], [  # exceptions raised by student code, doctest tracebacks
        case(">>> safe_div(4, 2)\n2.0\n"),
        case(">>> safe_div(1, 0)\nTraceback (most recent call last):\n...\n"
             "ValueError: b is zero\n", hidden=True)]),
    ok_test("r4", 1, [  # pandas by columns
        case(">>> df.shape == (3, 2)\nTrue\n>>> list(df['b']) == ['x', 'y', 'z']\nTrue\n"),
        case(">>> float(df['a'].mean())\n2.0\n>>> df.loc[1, 'b']\n'y'\n", hidden=True)]),
    ok_test("r5", 1, [  # a seed set in a test reaches the student's function in the kernel
        case(">>> np.random.seed(42)\n>>> r = roll()\n>>> np.random.seed(42)\n"
             ">>> r == int(np.random.randint(1, 7))\nTrue\n", hidden=True)]),
    ok_test("r6", 1, [  # containers of plain data, None, floats
        case(">>> info == {'name': 'otter', 'tags': ('a', 'b'), 'ids': {1, 2}, "
             "'none': None, 'pi': 3.14}\nTrue\n"),
        case(">>> info['pi']\n3.14\n", hidden=True)]),
    ok_test("r7", 1, [  # checked at its check cell, not at the end (val changes later)
        case(">>> val\n10\n", hidden=True)]),
]

RICH_CELLS = [
    "import otter\ngrader = otter.Notebook('rich.ipynb')\nimport numpy as np\nimport pandas as pd",
    "np.set_printoptions(legacy='1.13')\narr = np.array([1, 2, 3])",
    "grader.check('r1')",
    "max = 6\ndef square2(x):\n    return x ** 2",
    "grader.check('r2')",
    "def safe_div(a, b):\n    if b == 0:\n        raise ValueError('b is zero')\n    return a / b",
    "grader.check('r3')",
    "df = pd.DataFrame({'a': [1, 2, 3], 'b': ['x', 'y', 'z']})",
    "def roll():\n    return int(np.random.randint(1, 7))",
    "info = {'name': 'otter', 'tags': ('a', 'b'), 'ids': {1, 2}, 'none': None, 'pi': 3.14}",
    "val = 10",
    "grader.check('r7')",
    "val = 0",
]

POLICY_TESTS = [
    ok_test("p_generator", 1, [case(">>> list(gen(3)) == [0, 1, 2]\nTrue\n")]),
    ok_test("p_lambda", 1, [case(">>> apply_fn(lambda x: x + 1, 2) == 3\nTrue\n")]),
    ok_test("p_identity", 1, [case(">>> f is abs\nTrue\n>>> g(-3)\n3\n")]),
    ok_test("p_class", 1, [case(">>> isinstance(p, Point)\nTrue\n")]),
    ok_test("p_method", 1, [case(">>> p.norm() == 5.0\nTrue\n")]),
    ok_test("p_loop", 1, [case(">>> spin(1) is None\nTrue\n")]),
]

POLICY_CELLS = [
    "def gen(n):\n    yield from range(n)",
    "def apply_fn(fn, x):\n    return fn(x)",
    "f = abs\nimport math\ng = math.fabs\ng = abs",
    "class Point:\n    def __init__(self, x, y):\n        self.x, self.y = x, y\n"
    "    def norm(self):\n        return (self.x ** 2 + self.y ** 2) ** 0.5\np = Point(3, 4)",
    "def spin(n):\n    while True:\n        pass",
]


def notebook(cells):
    return {"cells": [{"cell_type": "code", "metadata": {}, "source": c, "outputs": [],
                       "execution_count": None} for c in cells],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                        "language": "python"},
                         "otter": {"assignment_name": "demo1"}},  # the machinery is demo1's
            "nbformat": 4, "nbformat_minor": 5}


def write_assignment(tmp_path, name, tests, cells):
    """Writes NAME-autograder.zip (demo's machinery + these tests) and NAME.ipynb."""
    zip_path, nb_path = tmp_path / f"{name}-autograder.zip", tmp_path / f"{name}.ipynb"
    with zipfile.ZipFile(DEMO_ZIP) as src, zipfile.ZipFile(zip_path, "w") as dst:
        for info in src.infolist():
            if not info.filename.startswith("tests/"):
                dst.writestr(info, src.read(info))
        for t in tests:
            dst.writestr(f"tests/{t['name']}.py",
                         "OK_FORMAT = True\n\ntest = " + pprint.pformat(t, indent=4) + "\n")
    nb_path.write_text(json.dumps(notebook(cells)))
    return zip_path, nb_path
