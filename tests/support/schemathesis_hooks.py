"""Loaded by Schemathesis (SCHEMATHESIS_HOOKS) in tests/api/openapi.rs.

Works around a CPython 3.11 bug, not one of ours or of Schemathesis's logic: Hypothesis
describes each filter's lambda by parsing the source file it is in, and on this Python
`ast.parse` of Schemathesis's large coverage module can raise
`SystemError: AST constructor recursion depth mismatch` (CPython gh-106905). The
description is only a label for reports; when it cannot be made, the lambda is labelled
`lambda` and the run goes on. No generated request or check changes.
"""

import hypothesis.internal.lambda_sources as _sources

_describe = _sources._lambda_description


def _lambda_description(f, *args, **kwargs):
    try:
        return _describe(f, *args, **kwargs)
    except SystemError:
        return "lambda: <source not parsed>"


_sources._lambda_description = _lambda_description
