"""The results document.

Student-visible: each question's `score`, `max_score`, `passed` and `feedback`.  Feedback is
built only from PUBLIC test cases (otter's own public summary: the case's code and the
doctest failure output), plus one count line for hidden cases ("Hidden tests: 1 of 2
passed.").  Nothing of a hidden case -- code, case name, expected or actual output, or
the flag reasons it triggered -- goes into `feedback`.
`student_fault` ({"kind", "message"}), when present, means the whole submission is refused
with that sentence for the student (the service stores no score): `wrong_assignment` (otter's
assignment-name check) or `kernel_unreadable` (no answer of the kernel could be read).
Staff-only: `flagged`, `test_warnings`, `cell_errors`, `kernel_died`, and `audit` (added
by __main__: which test cases use constructs that cannot cross as data; it may name hidden
cases).
"""


class Report:
    def __init__(self):
        self.results = {}        # question -> (OKTestFile after run, where checked)
        self.flags = []
        self.warnings = []
        self.cell_errors = []
        self.kernel_died = False
        self.current = None      # question being checked, for flag context
        self.replies = {"ok": 0, "bad": 0}  # the kernel helper's answers while checking
        self.student_fault = None  # {"kind", "message"}: the whole submission is refused

    def reply_ok(self):
        self.replies["ok"] += 1

    def reply_bad(self):
        self.replies["bad"] += 1

    def refuse(self, kind, message):
        """The whole submission is the student's fault: no grade, this sentence."""
        self.student_fault = {"kind": kind, "message": message}

    def flag(self, reason):
        entry = {"question": self.current, "reason": reason}
        if entry not in self.flags:
            self.flags.append(entry)

    def warn(self, reason):
        entry = {"question": self.current, "reason": reason}
        if entry not in self.warnings:
            self.warnings.append(entry)

    def cell_error(self, index, kind, detail):
        self.cell_errors.append({"cell": index, "error": kind, "detail": detail})

    def record(self, question, test_file, where):
        self.results[question] = (test_file, where)

    def document(self, order, marker_imitated=False):
        flags = list(self.flags)
        if marker_imitated:
            flags.append({"question": None,
                          "reason": "the kernel printed text imitating the results marker"})
        questions = [_question(q, *self.results[q]) for q in order if q in self.results]
        doc = {
            "version": 1,
            "questions": questions,
            "score": round(sum(q["score"] for q in questions), 5),
            "max_score": round(sum(q["max_score"] for q in questions), 5),
            "flagged": flags,
            "test_warnings": self.warnings,
            "cell_errors": self.cell_errors,
            "kernel_died": self.kernel_died,
        }
        if self.student_fault is not None:
            doc["student_fault"] = self.student_fault
        return doc


def _question(name, test_file, where):
    results = test_file.test_case_results
    hidden = [r for r in results if r.test_case.hidden]
    return {
        "name": name,
        "score": round(test_file.score, 5),      # as otter's results.json rounds them
        "max_score": round(test_file.possible, 5),
        "passed": test_file.passed_all,
        "checked_at": where,
        "feedback": public_feedback(test_file, hidden),
    }


def public_feedback(test_file, hidden):
    if all(r.test_case.hidden for r in test_file.test_case_results):
        text = f"{test_file.name}: no public tests."
    else:
        # otter's own public-only summary: it filters out hidden cases itself.
        text = test_file.summary(public_only=True)
    if hidden:
        passed = sum(1 for r in hidden if r.passed)
        text += f"\nHidden tests: {passed} of {len(hidden)} passed."
    return text
