"""Reading the submission: which code cells run, and where otter would check questions.

Mirrors otter.execute.preprocessor: cells tagged `otter_ignore` (or otter metadata
`ignore`) are skipped, a cell with otter metadata `tests` is followed by checks of those
questions, and `seed` / `seed_variable` in otter_config.json prefix every code cell.
Check points are found statically (`<anything>.check("q")` with a literal name), so the
kernel cannot move or invent them.
"""
import ast
import json
import re
from dataclasses import dataclass, field

_MAGIC = re.compile(r"^\s*[%!]")


@dataclass
class Cell:
    index: int              # position among all cells of the notebook (for messages)
    source: str
    checks: list = field(default_factory=list)   # question names checked by this cell


def _source(cell):
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def _ignored(cell):
    meta = cell.get("metadata", {})
    return "otter_ignore" in meta.get("tags", []) or meta.get("otter", {}).get("ignore", False)


def check_calls(source):
    """Question names passed as a literal to a `.check(...)` call in this cell."""
    # IPython magics and shell escapes are not Python; blank them out before parsing.
    py = "\n".join("" if _MAGIC.match(line) else line for line in source.splitlines())
    if py.lstrip().startswith("%%"):
        return []
    try:
        tree = ast.parse(py)
    except SyntaxError:
        return []
    names = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "check" and len(node.args) >= 1
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)):
            names.append(node.args[0].value)
    return names


def _seed_prefix(config):
    seed = config.get("seed")
    if seed is None:
        return ""
    if config.get("seed_variable"):
        return f"{config['seed_variable']} = {int(seed)}\n"
    return (f"import numpy as _otter_np, random as _otter_random\n"
            f"_otter_np.random.seed({int(seed)})\n_otter_random.seed({int(seed)})\n")


def code_cells(nb_json, config, questions):
    """The cells to run, in order, each with the questions checked right after it."""
    nb = json.loads(nb_json)
    prefix = _seed_prefix(config)
    cells = []
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code" or _ignored(cell):
            continue
        src = _source(cell)
        run = src if (not prefix or src.startswith("%%")) else prefix + src
        checks = [q for q in check_calls(src) if q in questions]
        checks += [q for q in cell.get("metadata", {}).get("otter", {}).get("tests", [])
                   if q in questions]
        cells.append(Cell(i, run, checks))
    return cells


def assignment_name(nb_json):
    """The notebook's otter assignment name (metadata.otter.assignment_name), or None when
    it carries none (as otter's NBMetadataConfig reads it)."""
    try:
        meta = json.loads(nb_json).get("metadata", {})
        name = meta.get("otter", {}).get("assignment_name")
    except (ValueError, AttributeError):
        return None
    return name if type(name) is str else None
