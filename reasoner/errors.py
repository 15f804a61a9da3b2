"""Errors that reach the user as one line (file and place first), never as a traceback."""
from __future__ import annotations


class B12kgError(Exception):
    """Base class: the CLI prints ``str(error)`` on one line and exits with ``exit_code``."""

    exit_code = 2


class InputError(B12kgError):
    """Bad input: a file that cannot be read, parsed or used."""

    def __init__(self, source: str, message: str, line: int | None = None, column: int | None = None):
        self.source = source
        self.line = line
        self.column = column
        self.message = " ".join(str(message).split())
        place = source
        if line is not None:
            place += f":{line}"
            if column is not None:
                place += f":{column}"
        super().__init__(f"{place}: {self.message}")


class UsageError(B12kgError):
    """Bad command line (unknown format, bad date …)."""


class KnowledgeBaseError(B12kgError):
    """The encoding itself cannot be loaded (a broken ontology, shape or rule file)."""
