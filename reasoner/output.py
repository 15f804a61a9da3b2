"""Writing a command's output: stdout for ``-``, else the file, with a one-line error on failure."""
from __future__ import annotations

import sys
from pathlib import Path

from .errors import UsageError


def write_output(text: str, output: str) -> None:
    if output == "-":
        sys.stdout.write(text)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{output}: cannot write: {exc.strerror or exc}") from None
