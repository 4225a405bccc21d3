"""The one exception type for bad user input, and how command-line tools report it."""

from __future__ import annotations

import sys


class InputError(ValueError):
    """Bad user input (a data file, a config, a layout, an argument).

    The message is one line that names the file (or key) and the problem; command-line tools print it
    and exit with status 2.
    """


def exit_with(error: Exception, code: int = 2) -> None:
    """Print `error` as one line on stderr and exit with `code`."""
    message = " ".join(str(error).split())
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)
