"""Small text formatters shared by the panes.

Byte counts use ``xnat_tui.units.human_bytes`` (decimal units), the same as the command line.
External text is shown through ``plain`` (``xnat_tui.text.safe`` in a Rich ``Text``).
"""

from __future__ import annotations

from rich.highlighter import Highlighter
from rich.style import Style
from rich.text import Text
from textual.content import Content

from xnat_tui.text import safe
from xnat_tui.units import human_rate


def rate(bps: float) -> str:
    """Bytes per second as "1.5 MB/s" (decimal units, as on the command line); "—" when idle."""
    return human_rate(bps) if bps > 0 else "—"


def eta(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "—"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def date(dicom_date: str) -> str:
    if len(dicom_date) == 8 and dicom_date.isdigit():
        return f"{dicom_date[:4]}-{dicom_date[4:6]}-{dicom_date[6:]}"
    return dicom_date


def check(on: bool) -> str:
    return "☑" if on else "☐"


def plain(
    value: object, style: str | Style = "", *, lines: bool = False, limit: int | None = None
) -> Text:
    """External text (DICOM values, file names, server labels and messages) as a Rich
    ``Text``: made safe by ``xnat_tui.text.safe`` and never parsed as markup."""
    return Text(safe(value, lines=lines, limit=limit), style=style, end="")


def assemble(*parts: object | tuple[object, str], lines: bool = True) -> Content:
    """Words and external values side by side, each part plain text (through
    ``xnat_tui.text.safe``) with an optional style — ``(value, "$error b")``; theme
    variables work — and nothing parsed as markup."""
    pieces: list[tuple[str, str]] = []
    for part in parts:
        value, style = part if isinstance(part, tuple) else (part, "")
        pieces.append((safe(value, lines=lines), style))
    return Content.assemble(*pieces)


class VisibleControls(Highlighter):
    """For an ``Input`` holding external text (a label from DICOM or the server): its
    control characters are drawn as symbols, one for one, so the cursor stays right;
    the value itself is unchanged (the validators report what is wrong with it)."""

    def highlight(self, text: Text) -> None:
        shown = safe(text.plain, same_length=True)
        if shown != text.plain:
            text.plain = shown
