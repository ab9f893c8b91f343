"""Write demo1.ipynb, the otter-assign master notebook of the demo assignment.

Kept as a script so the master notebook is reviewable text; scripts/build-demo-course.sh
runs it, then `otter assign`. Three small pure-Python questions, each with public and
hidden tests (q1: 1 point, q2: 2 points, q3: 2 points).
"""
import json
import sys


def raw(text):
    return {"cell_type": "raw", "metadata": {}, "source": text}


def md(text):
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def code(text):
    return {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": text}


HIDDEN = '""" # BEGIN TEST CONFIG\nhidden: true\n""" # END TEST CONFIG\n'


def question(name, points, prompt, solution, public, hidden):
    cells = [
        raw(f"# BEGIN QUESTION\nname: {name}\npoints: {points}"),
        md(prompt),
        raw("# BEGIN SOLUTION"),
        code(solution),
        raw("# END SOLUTION"),
        raw("# BEGIN TESTS"),
    ]
    cells += [code(t) for t in public]
    cells += [code(HIDDEN + t) for t in hidden]
    cells += [raw("# END TESTS"), raw("# END QUESTION")]
    return cells


cells = [
    raw("# ASSIGNMENT CONFIG\nname: demo1\nexport_cell: false\ncheck_all_cell: false\n"
        "init_cell: true\nrequirements: null\nenvironment: null\n"),
    md("# Demo assignment 1\n\nA small assignment for trying otter-service. "
       "Answer each question, run the cell below it, then press **Submit**."),
]
cells += question(
    "q1", 1, "**Question 1.** Set `answer` to the sum of the integers from 1 to 10.",
    "answer = sum(range(1, 11)) # SOLUTION",
    ["assert isinstance(answer, int)"],
    ["assert answer == 55"],
)
cells += question(
    "q2", 2, "**Question 2.** Write `square(x)` that returns `x` squared.",
    "def square(x):\n    # BEGIN SOLUTION\n    return x * x\n    # END SOLUTION",
    ["assert square(3) == 9"],
    ["assert square(-4) == 16", "assert square(0) == 0"],
)
cells += question(
    "q3", 2, "**Question 3.** Write `vowels(s)` that returns how many vowels (a, e, i, o, u) `s` has.",
    "def vowels(s):\n    # BEGIN SOLUTION\n    return sum(c in 'aeiou' for c in s.lower())\n    # END SOLUTION",
    ["assert vowels('otter') == 2"],
    ["assert vowels('AEIOU xyz') == 5", "assert vowels('') == 0"],
)
for i, cell in enumerate(cells):
    cell["id"] = f"cell{i:02d}"
nb = {
    "cells": cells,
    "metadata": {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    },
    "nbformat": 4,
    "nbformat_minor": 5,
}
json.dump(nb, open(sys.argv[1], "w"), indent=1)
