"""External text made safe to show: the one function every renderer uses.

DICOM values, file names and anything a server returns (labels, error messages,
prearchive logs) are data. Before they reach a terminal — a CLI line, a TUI cell,
a toast, a log pane, a receipt — they go through :func:`safe`:

- control characters are shown, never obeyed: C0 controls and DEL as their Unicode
  control pictures (ESC → ``␛``, BEL → ``␇``; one cell each), C1 controls as
  ``\\x9b``, format characters (bidi overrides, zero-width joiners, the BOM) and line
  or paragraph separators as ``\\u202e``; so ``ESC ] 0 ; title BEL`` cannot retitle
  the terminal, and what is drawn is as wide as the widths computed for it;
- lone surrogates (file names that are not valid UTF-8, read with
  ``surrogateescape``) show as the byte they stand for, ``\\xff``;
- nothing here knows markup: the result is plain text. The TUI wraps it in a Rich
  ``Text`` (``ui/widgets/format.plain``), never in a markup string.

:func:`safe_streams` makes standard output and error replace what their encoding
cannot write (``PYTHONIOENCODING=ascii``) instead of raising.

No Textual or Rich import here: the headless commands use it too.
"""

from __future__ import annotations

import sys
import unicodedata
from functools import lru_cache
from typing import TextIO

ELLIPSIS = "…"

_SEPARATORS = {"\u2028", "\u2029", "\x85"}


@lru_cache(maxsize=4096)
def _visible(ch: str) -> str:
    """The replacement for one character that is not shown as itself ("" keeps it)."""
    code = ord(ch)
    if code < 0x20:
        return chr(0x2400 + code)  # ␀ … ␟, ␛ for ESC
    if code == 0x7F:
        return "\u2421"  # ␡
    if 0x80 <= code < 0xA0:
        return f"\\x{code:02x}"
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if 0xD800 <= code <= 0xDFFF:
        return f"\\u{code:04x}"
    if ch in _SEPARATORS or unicodedata.category(ch) == "Cf":
        return f"\\u{code:04x}"
    return ""


def safe(
    value: object, *, lines: bool = False, limit: int | None = None, same_length: bool = False
) -> str:
    """``value`` as text that is safe to print and to wrap in a Rich ``Text``.

    ``lines``: keep line breaks (``\\n``; ``\\r\\n`` and ``\\r`` become ``\\n``) and
    expand tabs, for messages and logs shown over several lines; otherwise every
    control character, line breaks included, is shown as a symbol, for one-line
    cells and labels. ``limit``: at most this many terminal cells, cut with "…"
    (a column that would otherwise grow with a 200-character description).
    ``None`` is "", bytes are decoded as UTF-8 (undecodable bytes shown as ``\\xNN``).
    ``same_length``: one visible character for each (C0 controls as their pictures, the
    rest as "�"), for an editable field whose cursor counts characters.
    """
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray):
        text = bytes(value).decode("utf-8", "surrogateescape")
    else:
        text = value if isinstance(value, str) else str(value)
    if lines:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        if "\t" in text:
            text = text.expandtabs(4)
    if not text.isascii() or not text.isprintable():
        keep = "\n" if lines else ""
        if same_length:
            text = "".join(
                ch if ch in keep or not _visible(ch) else _visible(ch)[:1].replace("\\", "\ufffd")
                for ch in text
            )
        else:
            text = "".join(ch if ch in keep else _visible(ch) or ch for ch in text)
    if limit is not None:
        text = fit(text, limit)
    return text


def char_cells(ch: str) -> int:
    """Terminal cells of one character: 0 for combining marks, 2 for wide ones."""
    if ch.isascii():
        return 1 if ch.isprintable() else 0
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def cells(text: str) -> int:
    """Terminal cells ``text`` takes (ASCII fast path)."""
    if text.isascii():
        return len(text)
    return sum(char_cells(ch) for ch in text)


def fit(text: str, width: int) -> str:
    """``text`` cut to at most ``width`` cells, the cut marked with "…"."""
    if width <= 0:
        return ""
    if cells(text) <= width:
        return text
    out: list[str] = []
    used = 0
    for ch in text:
        w = char_cells(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + ELLIPSIS


def pad(text: str, width: int, *, right: bool = False) -> str:
    """``text`` fitted to ``width`` cells and padded with spaces (left-aligned, or
    right-aligned with ``right``): ``f"{x:<32}"`` counts characters, not cells."""
    text = fit(text, width)
    gap = " " * (width - cells(text))
    return gap + text if right else text + gap


def safe_streams(*streams: TextIO) -> None:
    """Make the streams (default: stdout and stderr) replace what their encoding
    cannot write (``\\xe9`` for é on an ASCII terminal) instead of raising."""
    for stream in streams or (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is None:
            continue
        try:
            reconfigure(errors="backslashreplace")
        except (ValueError, OSError):  # closed, or a stream that cannot change now
            pass
