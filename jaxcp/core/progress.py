"""Progress of a long job (a search, a training run): a `rich` progress bar on a terminal, plain lines
otherwise.

Commands create one `ProgressLog` and hand its methods to the library loops as callbacks; nothing in the
library prints progress itself.
"""

from __future__ import annotations

import sys
from typing import TextIO


class ProgressLog:
    """A bar of `total` steps on `stream` when it is a terminal (and not `quiet`), else plain lines.

    `update(done, text, notable=...)` moves the bar to `done` steps with `text` beside it; without a bar
    the text is printed as a line on `plain` (default: `stream`) when `notable`. `line(text)` prints a line
    that stays, above the bar. `close()` ends the bar.
    """

    def __init__(self, total: int, *, quiet: bool = False, stream: TextIO | None = None,
                 plain: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.plain = plain or self.stream
        self.bar = None
        if not quiet and self.stream.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            console = Console(file=self.stream)
            self.bar = Progress(BarColumn(bar_width=24), MofNCompleteColumn(), TextColumn("{task.description}"),
                                console=console)
            self.task = self.bar.add_task("", total=max(total, 1))
            self.bar.start()

    def update(self, done: int, text: str, *, notable: bool = True) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=done, description=text)
        elif notable:
            print(text, file=self.plain, flush=True)

    def line(self, text: str) -> None:
        if self.bar is not None:
            self.bar.console.print(text, markup=False, highlight=False)
        else:
            print(text, flush=True)

    def warn(self, text: str) -> None:
        self.line(f"warning: {text}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
