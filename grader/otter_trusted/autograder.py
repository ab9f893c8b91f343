"""Load an otter autograder zip into memory (trusted side only).

Tests are parsed with ast.literal_eval (no exec of the test files) and turned into
otter's own OKTestFile objects, so point splitting and result semantics stay otter's.
"""
import ast
import importlib.util
import io
import json
import posixpath
import sys
import types
import zipfile


def otter_test_files():
    """Import otter.test_files without otter/__init__ (which loads the whole CLI, ~1 s)."""
    if "otter" not in sys.modules:
        spec = importlib.util.find_spec("otter")
        pkg = types.ModuleType("otter")
        pkg.__path__ = list(spec.submodule_search_locations)
        sys.modules["otter"] = pkg
    from otter.test_files import ok_test
    return ok_test


class Autograder:
    def __init__(self, tests, config):
        self.tests = tests      # {question name: OKTestFile}, in file-name order
        self.config = config    # otter_config.json as a dict

    @property
    def seed(self):
        return self.config.get("seed")


def parse_ok_test(source, path):
    """The `test = {...}` assignment of an OK-format file, as a literal."""
    tree = ast.parse(source, path)
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and getattr(node.targets[0], "id", None) == "test"):
            return ast.literal_eval(node.value)
    raise ValueError(f"{path}: no `test = {{...}}` literal")


# Files of an otter autograder zip that are grading machinery, not student support files.
_NOT_SUPPORT = {"tests", "otter_config.json", "run_autograder", "run_otter.py", "setup.sh",
                "environment.yml", "requirements.txt", "requirements.r", "__MACOSX"}


def support_files(zip_bytes):
    """Data files the notebook may read (e.g. a lab's CSVs): everything except tests and
    machinery. These go into the kernel's directory; tests never do.

    `otter assign`/`otter generate` put support files under `files/` in the zip, and otter's
    runner copies the contents of `files/` next to the notebook; so `files/x.csv` becomes
    `x.csv` here too (and wins over a top-level `x.csv`)."""
    files, from_files_dir = {}, {}
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as zf:
        for info in zf.infolist():
            name = info.filename
            parts = name.split("/")
            if (info.is_dir() or name.startswith("/") or ".." in parts or "" in parts
                    or parts[0] in _NOT_SUPPORT):
                continue
            if parts[0] == "files" and len(parts) > 1:
                from_files_dir["/".join(parts[1:])] = zf.read(info)
            else:
                files[name] = zf.read(info)
    files.update(from_files_dir)
    return files


def load(zip_bytes):
    ok_test = otter_test_files()
    tests, config = {}, {}
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as zf:
        names = sorted(zf.namelist())
        if "otter_config.json" in names:
            config = json.loads(zf.read("otter_config.json"))
        for name in names:
            if posixpath.dirname(name) == "tests" and name.endswith(".py"):
                spec = parse_ok_test(zf.read(name).decode("utf-8"), name)
                test_file = ok_test.OKTestFile.from_spec(spec, path=name)
                tests[test_file.name] = test_file
    if not tests:
        raise ValueError("autograder has no OK-format tests under tests/")
    return Autograder(tests, config)
