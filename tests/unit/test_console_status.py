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
