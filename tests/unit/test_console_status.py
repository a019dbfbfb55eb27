"""The command line's live status line on a terminal."""

from __future__ import annotations

import io

import pytest

from xnat_tui.commands._console import Reporter
from xnat_tui.transfer.events import JobProgress, ProgressTick
from xnat_tui.transfer.types import JobState


def tick() -> ProgressTick:
    job = JobProgress("j1", "P/S/E", JobState.SENDING, 5_000_000, 10_000_000, 5, 10, 0, 1)
    return ProgressTick((job,), 5_000_000, 10_000_000, 1_000_000.0, 5.0)


def test_the_status_line_fits_a_narrow_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrapped line is not overwritten by the next carriage return: each tick would
    leave a new line behind on a 50-column terminal."""
    monkeypatch.setenv("COLUMNS", "50")
    out = io.StringIO()
    reporter = Reporter("tty", out)
    reporter.handle(tick())
    reporter.handle(tick())
    lines = out.getvalue().split("\r")[1:]
    assert lines and all(0 < len(line.rstrip()) <= 49 for line in lines), lines
    assert lines[0].startswith(" 50.0%")


def test_the_width_is_the_status_streams_terminal_not_stdouts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``download ... > file`` on a 50-column terminal: stdout is a file, the status
    line goes to stderr, a terminal 50 columns wide."""
    import fcntl
    import os
    import struct
    import termios

    monkeypatch.delenv("COLUMNS", raising=False)
    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 50, 0, 0))
    with os.fdopen(follower, "w") as terminal, os.fdopen(leader, "rb", buffering=0) as screen:
        Reporter("tty", terminal).handle(tick())
        written = screen.read(4096).decode()
    assert 0 < len(written.strip("\r").rstrip()) <= 49, written


def test_the_final_summary_reads_a_download_in_its_own_words() -> None:
    from xnat_tui.commands._console import summary_line

    job = {
        "id": "ab12cd34", "kind": "download", "state": "sending", "message": "",
        "project": "P", "subject": "S", "session": "E",
    }  # fmt: skip
    assert summary_line(job).split()[:2] == ["ab12cd34", "receiving"]
    assert summary_line({**job, "kind": "upload"}).split()[1] == "sending"
