"""The functions of the DicomEdit subset, with Java semantics where scripts can tell.

``hash_uid`` is bit-exact with DicomEdit's ``hashUID`` (dicom.md §1.5); ``java_format``
reproduces ``java.text.MessageFormat`` for plain ``{n}`` arguments, including its
quoting rules.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from functools import lru_cache

# name -> (min args, max args; -1 = unbounded)
ARITY: dict[str, tuple[int, int]] = {
    "hashUID": (1, 2),  # the optional second argument (algorithm name) is ignored, as in DE6
    "uppercase": (1, 1),
    "lowercase": (1, 1),
    "substring": (2, 3),
    "replace": (3, 3),
    "format": (1, -1),
    "concatenate": (1, -1),
    "newUID": (0, 0),
    "match": (3, 3),
    "lookup": (2, 2),
}

UNSUPPORTED_HINTS = {
    "shiftDateByIncrement": "date shifting is not reproduced client-side",
    "shiftDateTimeByIncrement": "date shifting is not reproduced client-side",
    "alterPixels": "pixel editing is not supported",
    "hashUIDList": "list functions are not supported",
    "retainPrivateTags": "use removeAllPrivateTags or explicit deletions",
    "mapReferencedUIDs": "UID mapping is not supported",
    "reject": "rejecting files from a script is not supported",
    "getURL": "scripts may not fetch URLs here",
}


class FunctionError(Exception):
    """A function failed on its arguments; the evaluator adds script and line."""


def hash_uid(value: str) -> str:
    """DicomEdit's hashUID: UUIDv5-style SHA-1 of the UTF-8 value, no namespace, as 2.25 UID."""
    b = bytearray(hashlib.sha1(value.encode("utf-8")).digest()[:16])
    b[6] = (b[6] & 0x0F) | 0x50  # version 5
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    return "2.25." + str(int.from_bytes(b, "big"))


# ---- java.text.MessageFormat ------------------------------------------------------


def _parse_message_format(pattern: str) -> list[str | int]:
    """Literal strings and argument indexes, or ValueError as Java's applyPattern raises.

    Mirrors MessageFormat.applyPattern: outside braces ``'`` toggles quoting and ``''`` is
    a literal quote; ``{`` opens an argument unless quoted. Only plain ``{n}`` arguments
    are supported: with string arguments a ``{n,number}`` would throw in Java as well.
    """
    parts: list[str | int] = []
    literal: list[str] = []
    in_quote = False
    i = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "'":
            if i + 1 < n and pattern[i + 1] == "'":
                literal.append("'")
                i += 2
                continue
            in_quote = not in_quote
            i += 1
            continue
        if ch == "{" and not in_quote:
            close = pattern.find("}", i + 1)
            if close < 0:
                raise ValueError("Unmatched braces in the pattern")
            body = pattern[i + 1 : close]
            if "{" in body or "'" in body:
                raise ValueError(f"unsupported argument {{{body}}}")
            if "," in body:
                raise ValueError(
                    f"argument formats like {{{body}}} are not supported (arguments are text)"
                )
            if not body or not body.isascii() or not body.isdigit():
                raise ValueError(f"can't parse argument number: {body!r}")
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(int(body))
            i = close + 1
            continue
        literal.append(ch)
        i += 1
    if literal:
        parts.append("".join(literal))
    return parts


@lru_cache(maxsize=256)
def _compiled_format(pattern: str) -> tuple[str | int, ...]:
    return tuple(_parse_message_format(pattern))


def check_format_pattern(pattern: str) -> str:
    """An error message for a pattern Java would reject (or we do not support), else ''."""
    try:
        _compiled_format(pattern)
    except ValueError as exc:
        return str(exc)
    return ""


def java_format(pattern: str, args: Sequence[str | None]) -> str:
    try:
        parts = _compiled_format(pattern)
    except ValueError as exc:
        raise FunctionError(f"Error evaluating format: {exc}") from None
    out: list[str] = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
        elif part < len(args):
            arg = args[part]
            out.append("null" if arg is None else arg)
        else:
            out.append("{" + str(part) + "}")  # Java prints unknown arguments as-is
    return "".join(out)


# ---- the others -------------------------------------------------------------------


@lru_cache(maxsize=512)
def compiled_regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise FunctionError(f"invalid regular expression {pattern!r}: {exc}") from None


def _need(name: str, value: str | None) -> str:
    if value is None:
        raise FunctionError(f"Error evaluating {name}: argument is null (absent attribute?)")
    return value


def _int_arg(name: str, value: str | None) -> int:
    try:
        return int(_need(name, value))
    except ValueError:
        raise FunctionError(f"Error evaluating {name}: {value!r} is not an integer") from None


def _substring(args: Sequence[str | None]) -> str | None:
    text = _need("substring", args[0])
    begin = _int_arg("substring", args[1])
    end = _int_arg("substring", args[2]) if len(args) > 2 else len(text)
    if begin < 0 or end > len(text) or begin > end:
        raise FunctionError(
            f"Error evaluating substring: range [{begin},{end}) outside {text!r} "
            f"(length {len(text)})"
        )
    return text[begin:end]


def _match(args: Sequence[str | None]) -> str | None:
    # DicomEdit's MatchFunction: Matcher.find() (not a full match), then group(index).
    text = _need("match", args[0])
    regex = compiled_regex(_need("match", args[1]))
    group = _int_arg("match", args[2])
    m = regex.search(text)
    if m is None:
        return None
    if group < 0 or group > (regex.groups or 0):
        raise FunctionError(f"Error evaluating match: no group {group} in {regex.pattern!r}")
    return m.group(group)


def _replace(args: Sequence[str | None]) -> str | None:
    return _need("replace", args[0]).replace(_need("replace", args[1]), _need("replace", args[2]))


PURE_FUNCTIONS: dict[str, Callable[[Sequence[str | None]], str | None]] = {
    "hashUID": lambda a: None if a[0] is None else hash_uid(a[0]),
    "uppercase": lambda a: _need("uppercase", a[0]).upper(),
    "lowercase": lambda a: _need("lowercase", a[0]).lower(),
    "substring": _substring,
    "replace": _replace,
    "format": lambda a: java_format(_need("format", a[0]), a[1:]),
    # Guava's Joiner, as DicomEdit uses it, throws on a null part.
    "concatenate": lambda a: "".join(_need("concatenate", v) for v in a),
    "match": _match,
}


def parse_lookup_table(text: str) -> dict[str, dict[str, str]]:
    """DicomEdit lookup file: lines ``key/value = replacement`` (``#`` or ``//`` comments)."""
    table: dict[str, dict[str, str]] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#") or line.startswith("//"):
            continue
        left, sep, replacement = line.partition("=")
        key, slash, value = left.strip().partition("/")
        if not sep or not slash or not key:
            raise ValueError(f"lookup table line {number}: expected 'key/value = replacement'")
        table.setdefault(key.strip(), {})[value.strip()] = replacement.strip()
    return table
