"""Staff report: which tests of an autograder use constructs that cannot cross as data.

    python -m otter_trusted.audit AUTOGRADER.zip      (prints JSON; exit 0)

Every result document carries it too (`audit`), and the service keeps the first one per
autograder for staff (`otter-service status`).

A static scan of each case's doctest source (it never runs them).  It is a heuristic for
staff to review when an assignment is installed, not a verdict; see README "Policies".
"""
import ast
import doctest
import json
import sys
from pathlib import Path

from . import autograder

_BUILTIN_TYPES = {"int", "float", "str", "bool", "list", "tuple", "dict", "set", "frozenset",
                  "complex", "bytes", "type", "object", "range"}
_GENERATOR_HINTS = {"next", "iter"}
_MODULE_ALIASES = {"np", "numpy", "pd", "pandas", "math", "random", "re", "stats", "scipy",
                   "plt", "ds", "datascience", "string", "collections", "itertools",
                   "functools", "statistics", "operator", "datetime"}


def _findings(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Lambda):
            yield "defines a lambda (passing it into a student function is not supported)"
        elif isinstance(node, ast.Compare) and any(isinstance(op, (ast.Is, ast.IsNot))
                                                   for op in node.ops):
            # `x is None` is fine for data; `f is abs` compares two objects' identity.
            if not any(isinstance(o, ast.Constant) for o in [node.left, *node.comparators]):
                yield "identity check (`is`): only plain data and allow-listed builtins match"
        elif isinstance(node, ast.Call):
            yield from _call_findings(node)


def _is_name(node):
    return isinstance(node, ast.Name)


def _call_findings(node):
    func = node.func
    name = func.id if _is_name(func) else getattr(func, "attr", None)
    if name == "isinstance" and len(node.args) == 2:
        classes = node.args[1].elts if isinstance(node.args[1], ast.Tuple) else [node.args[1]]
        if any(not (_is_name(c) and c.id in _BUILTIN_TYPES) for c in classes):
            yield "isinstance with a non-builtin class (a student class cannot cross)"
    elif name == "seed":
        yield "seeds a random generator (forwarded to the kernel's random and numpy)"
    elif name in _GENERATOR_HINTS:
        yield "uses next()/iter() (generators from student code cannot cross)"
    elif (isinstance(func, ast.Attribute) and _is_name(func.value)
          and func.value.id not in _MODULE_ALIASES):
        yield (f"calls method .{func.attr}() on `{func.value.id}` (fine for plain data and "
               "library objects; a student object cannot cross)")


def audit(zip_bytes):
    return audit_tests(autograder.load(zip_bytes).tests)


def audit_tests(tests):
    """The report for loaded test files ({question: OKTestFile})."""
    report = {}
    for name, test_file in tests.items():
        for i, case in enumerate(test_file.test_cases):
            source = "\n".join(e.source for e in doctest.DocTestParser().get_examples(case.body))
            try:
                found = sorted(set(_findings(ast.parse(source))))
            except SyntaxError:
                found = ["doctest source does not parse"]
            if found:
                key = f"{name} case {i + 1}" + (" (hidden)" if case.hidden else "")
                report[key] = found
    return report


if __name__ == "__main__":
    print(json.dumps(audit(Path(sys.argv[1]).read_bytes()), indent=1))
