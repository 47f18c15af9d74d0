"""Exceptions for configuration problems.

A failing *item* is data (an ``ItemResult`` with ``error`` set); a failing
*configuration* is one of these exceptions, which the CLI prints without a
traceback and turns into exit code 2.
"""

from __future__ import annotations


class OpenbenchError(Exception):
    """A user-facing error: printed as one message, exit code 2."""

    exit_code = 2


class SuiteError(OpenbenchError):
    """The suite file (or something it points at) is invalid."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None, field: str | None = None):
        self.file, self.line, self.field = file, line, field
        where = file or ""
        if file and line:
            where = f"{file}:{line}"
        prefix = f"{where}: " if where else ""
        if field:
            prefix += f"{field}: "
        super().__init__(prefix + message)


class MissingDependency(OpenbenchError):
    def __init__(self, package: str, purpose: str, install: str | None = None):
        hint = install or f"pip install {package}"
        super().__init__(f"{purpose} needs the package '{package}', which is not installed. Install it with: {hint}")


class MissingKey(OpenbenchError):
    """A provider's API key variable is unset; the model is skipped, not the run."""

    def __init__(self, variable: str):
        self.variable = variable
        super().__init__(f"{variable} is not set")


class RunError(OpenbenchError):
    """A run or run directory cannot be used as asked (bad --resume, unknown run id...)."""


class EngineError(OpenbenchError):
    """A serving engine that openbench launched could not start (the message carries its log's tail)."""
