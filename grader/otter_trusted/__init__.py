"""Trusted evaluator for otter-grader OK-format tests; see grader/README.md."""
