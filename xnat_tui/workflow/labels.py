"""Label rules, once for the TUI and the command line.

XNAT itself does not character-check subject/session labels on PUT, but every XNAT UI,
the Desktop Client and the DICOM importer restrict them to ``[A-Za-z0-9_-]``
(xnat-api.md §9), and the database column is varchar(255). The uploader enforces the
same so a label never breaks a URL or the archive layout.
"""

from __future__ import annotations

import re
import unicodedata

MAX_LABEL_LENGTH = 255
_INVALID_RUN = re.compile(r"[^A-Za-z0-9_-]+")
_ALLOWED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def invalid_characters(label: str) -> list[str]:
    """Each offending character once, in order of first appearance."""
    seen: list[str] = []
    for ch in label:
        if ch not in _ALLOWED and ch not in seen:
            seen.append(ch)
    return seen


def describe_char(ch: str) -> str:
    """A character as a user can recognise it, even when it is invisible."""
    names = {" ": "space", "\t": "tab", "\n": "newline", "\r": "carriage return"}
    if ch in names:
        return names[ch]
    if not ch.isprintable() or unicodedata.category(ch).startswith(("Z", "C")):
        return f"U+{ord(ch):04X}"
    return repr(ch)


def label_problem(label: str, what: str = "label") -> str | None:
    """None when valid, else one sentence saying exactly what is wrong."""
    if not label:
        return f"The {what} is empty."
    bad = invalid_characters(label)
    problems: list[str] = []
    if bad:
        listed = ", ".join(describe_char(c) for c in bad)
        noun = "character" if len(bad) == 1 else "characters"
        problems.append(f"contains the invalid {noun} {listed}")
    if len(label) > MAX_LABEL_LENGTH:
        problems.append(f"is {len(label)} characters long (at most {MAX_LABEL_LENGTH})")
    if not problems:
        return None
    return (
        f"The {what} {label!r} "
        + " and ".join(problems)
        + ". Use only letters A-Z a-z, digits, '-' and '_'."
    )


# Letters that Unicode does not decompose into an ASCII letter and a mark.
_LETTERS = str.maketrans(
    {"ß": "ss", "Æ": "AE", "æ": "ae", "Ø": "O", "ø": "o", "Œ": "OE", "œ": "oe",
     "Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "Þ": "Th", "þ": "th", "ı": "i"}
)  # fmt: skip


def transliterate(value: str) -> str:
    """Latin letters with accents become their ASCII letters (``Ümlaut`` → ``Umlaut``)."""
    decomposed = unicodedata.normalize("NFKD", value.translate(_LETTERS))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def clean_label(value: str) -> str:
    """Turn any text into label characters, as templates and routing values are applied.

    Accented letters are transliterated (``Müller`` → ``Muller``, never dropped),
    surrounding white space goes, each run of other characters becomes one ``_`` (the
    Desktop Client's ``/[^A-Z0-9_-]+/gi`` → ``_``), leading and trailing ``_`` go, and the
    result is cut to 255 characters. All-invalid text gives ``""``, which the rules above
    then report as an empty label. The plan shows every label this changed.
    """
    return _INVALID_RUN.sub("_", transliterate(value).strip()).strip("_")[:MAX_LABEL_LENGTH]
