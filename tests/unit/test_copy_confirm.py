"""The commands' one y/N prompt (``commands._console.confirm``), used by upload, copy
and move: only an explicit yes typed on a terminal goes ahead."""

from __future__ import annotations

import io

import pytest

from xnat_tui.commands import _console


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("typed", "expected"),
    [("y\n", True), ("YES\n", True), (" yes \n", True), ("\n", False), ("n\n", False),
     ("yep\n", False), ("", False)],
)  # fmt: skip
def test_only_an_explicit_yes_confirms(
    monkeypatch: pytest.MonkeyPatch, typed: str, expected: bool
) -> None:
    monkeypatch.setattr("sys.stdin", _Tty(typed))
    assert _console.confirm("Copy 2 session(s)?") is expected


def test_no_terminal_is_no(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))  # a pipe: nobody to ask
    assert _console.confirm("Move 1 session(s)?") is False
