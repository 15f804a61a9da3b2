"""Writing a command's output: stdout for ``-``, else the file, with a one-line error on failure.

Every write error (no such directory, a directory, no permission, a full disk, a closed pipe) is
a :class:`UsageError` that names the output, never a traceback.
"""
from __future__ import annotations

import sys
from pathlib import Path

from .errors import UsageError

STDOUT_NAME = "standard output"


def _write_error(output: str, exc: OSError) -> UsageError:
    where = STDOUT_NAME if output == "-" else output
    return UsageError(f"{where}: cannot write: {exc.strerror or exc}")


def write_output(text: str, output: str) -> None:
    if output == "-":
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _write_error(output, exc) from None
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise _write_error(output, exc) from None


class OutputFile:
    """A text output written piece by piece (cohort NDJSON/CSV): stdout for ``-``, else the file,
    opened at once so that an unwritable path fails before any work is done."""

    def __init__(self, output: str):
        self.output = output
        if output == "-":
            self._f = sys.stdout
        else:
            try:
                self._f = open(output, "w", encoding="utf-8")
            except OSError as exc:
                raise _write_error(output, exc) from None

    def write(self, text: str) -> None:
        try:
            self._f.write(text)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _write_error(self.output, exc) from None

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def close(self) -> None:
        """Flush (stdout) or close (a file); a failure to write the last bytes is an error too."""
        try:
            if self._f is sys.stdout:
                self._f.flush()
            else:
                self._f.close()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _write_error(self.output, exc) from None

    def abandon(self) -> None:
        """Close after an error without raising a second one."""
        if self._f is sys.stdout:
            return
        try:
            self._f.close()
        except OSError:
            pass
