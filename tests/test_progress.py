"""Progress of long jobs: a rich bar on a terminal, plain lines elsewhere."""

from __future__ import annotations

import io

from jaxcp.core.progress import ProgressLog


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_without_a_terminal(capsys):
    stream = io.StringIO()
    log = ProgressLog(3, stream=stream)
    log.update(1, "step one", notable=False)
    log.update(2, "step two")
    log.line("a line that stays")
    log.close()
    assert stream.getvalue().splitlines() == ["step two"]  # only notable updates, on the stream
    assert capsys.readouterr().out.splitlines() == ["a line that stays"]


def test_a_bar_on_a_terminal_and_quiet_turns_it_off():
    terminal = Terminal()
    log = ProgressLog(4, stream=terminal)
    log.update(2, "half way there")
    log.line("kept line")
    log.close()
    text = terminal.getvalue()
    assert "half way there" in text and "2/4" in text and "kept line" in text
    quiet = Terminal()
    log = ProgressLog(4, quiet=True, stream=quiet)
    log.update(2, "half way there")
    log.close()
    assert quiet.getvalue() == "half way there\n"
