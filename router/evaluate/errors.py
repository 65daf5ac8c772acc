"""Errors of ``router eval``: bad input files, reported as ``file:line: message`` lines."""

from __future__ import annotations


class EvalInputError(Exception):
    """An outcome file, a model map or a policy cannot be used; ``problems`` has one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
