"""Tokens of the DicomEdit 6 subset (see docs: dicom.md §1.4 lexical rules).

A newline ends a statement, so NEWLINE is a token. Tag literals ``(gggg,eeee)`` are
single tokens; an opening parenthesis that does not start a tag is ``(``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ScriptError
from .nodes import TagPattern

HEXW = "0-9A-Fa-fXx@#"
_TAG_RE = re.compile(rf"\(([{HEXW}]{{4}}),(?:([{HEXW}]{{4}})|\{{([^{{}}\n]*)\}}([{HEXW}]{{2}}))\)")
# Something that starts like a tag but is malformed: report it as such, not as "(".
_TAG_START_RE = re.compile(rf"\([{HEXW}]{{1,4}}\s*,")
_CREATOR_RE = re.compile(r"[A-Za-z][A-Za-z0-9 \-_.:]*")
_NUMBER_RE = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")
_ID_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WS_RE = re.compile(r"[ \t]+")

KEYWORDS = frozenset(
    {
        "version",
        "removeAllPrivateTags",
        "echo",
        "describe",
        "hidden",
        "export",
        "if",
        "elseif",
        "else",
    }
)

# Longest first, so ":=" wins over ":" and "!~" over "!".
_PUNCT = (
    (":=", "ASSIGN"),
    ("?=", "ASSIGN_IF"),
    ("!=", "NE"),
    ("!~", "NMATCH"),
    ("?", "QUESTION"),
    (":", "COLON"),
    ("=", "EQ"),
    ("~", "MATCH"),
    ("-", "MINUS"),
    ("(", "LPAREN"),
    (")", "RPAREN"),
    ("[", "LBRACK"),
    ("]", "RBRACK"),
    ("{", "LBRACE"),
    ("}", "RBRACE"),
    (",", "COMMA"),
    ("/", "SLASH"),
    ("*", "STAR"),
    ("+", "PLUS"),
    (".", "DOT"),
    ("%", "PERCENT"),
)


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str
    line: int
    column: int
    # Decoded string value, or the parsed tag pattern for TAG tokens.
    value: str = ""
    tag: TagPattern | None = None


def _nibble_pattern(ch: str) -> tuple[int, int]:
    """(mask, value) of one wildcard-capable hex digit."""
    if ch in "Xx":
        return 0x0, 0x0
    if ch == "@":  # even digit
        return 0x1, 0x0
    if ch == "#":  # odd digit
        return 0x1, 0x1
    return 0xF, int(ch, 16)


def _digits_pattern(text: str) -> tuple[int, int]:
    mask = value = 0
    for ch in text:
        m, v = _nibble_pattern(ch)
        mask = (mask << 4) | m
        value = (value << 4) | v
    return mask, value


def parse_tag(
    text: str, group: str, element: str | None, creator: str | None, low: str | None
) -> TagPattern:
    gmask, gvalue = _digits_pattern(group)
    if creator is None:
        assert element is not None
        emask, evalue = _digits_pattern(element)
        return TagPattern(text, (gmask << 16) | emask, (gvalue << 16) | evalue)
    assert low is not None
    lmask, lvalue = _digits_pattern(low)
    return TagPattern(text, (gmask << 16) | lmask, (gvalue << 16) | lvalue, creator)


def _decode_string(raw: str, script: str, line: int, column: int) -> str:
    """Body of a STRING literal, unescaped as DicomEdit's visitor does.

    Only ``""`` -> ``"`` and ``\\\\`` -> ``\\`` are unescaped; the other allowed escapes
    (``\\n``, ``\\(``...) stay as written, which is what regexes expect.
    """
    out: list[str] = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\\":
            nxt = raw[i + 1] if i + 1 < len(raw) else ""
            if nxt == "\\":
                out.append("\\")
                i += 2
                continue
            if nxt and nxt in "nrtbf()":
                out.append(ch + nxt)
                i += 2
                continue
            raise ScriptError(
                f"invalid escape '\\{nxt}' in string (write a backslash as '\\\\')",
                script=script,
                line=line,
                column=column + 1 + i,
            )
        if ch == '"':  # only reachable as the first of a doubled quote
            out.append('"')
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _scan_string(text: str, start: int, script: str, line: int, column: int) -> int:
    """Index just past the closing quote of the string starting at ``start``."""
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\n" or ch == "\r":
            break
        if ch == "\\":
            i += 2
            continue
        if ch == '"':
            if i + 1 < len(text) and text[i + 1] == '"':
                i += 2
                continue
            return i + 1
        i += 1
    raise ScriptError("unterminated string", script=script, line=line, column=column)


def _line_end(text: str, start: int) -> int:
    ends = [e for e in (text.find("\n", start), text.find("\r", start)) if e >= 0]
    return min(ends) if ends else len(text)


def tokenize(text: str, script: str = "") -> list[Token]:
    tokens: list[Token] = []
    line = 1
    line_start = 0
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        col = i - line_start + 1
        if ch == "\n" or ch == "\r":
            tokens.append(Token("NEWLINE", "\n", line, col))
            i += 2 if text.startswith("\r\n", i) else 1
            line += 1
            line_start = i
            continue
        if ch == " " or ch == "\t":
            m = _WS_RE.match(text, i)
            assert m is not None
            i = m.end()
            continue
        if text.startswith("//", i):
            while i < n and text[i] not in "\r\n":
                i += 1
            continue
        if ch == '"':
            end = _scan_string(text, i, script, line, col)
            raw = text[i:end]
            value = _decode_string(raw[1:-1], script, line, col)
            tokens.append(Token("STRING", raw, line, col, value=value))
            i = end
            continue
        if ch == "(":
            m = _TAG_RE.match(text, i)
            if m:
                group, element, creator, low = m.group(1), m.group(2), m.group(3), m.group(4)
                if creator is not None:
                    creator = creator.strip()
                    if not _CREATOR_RE.fullmatch(creator):
                        raise ScriptError(
                            f"invalid private creator {{{creator}}} in {m.group(0)}",
                            script=script,
                            line=line,
                            column=col,
                        )
                    last = group[-1]
                    if last not in "Xx#" and (last in "@" or int(last, 16) % 2 == 0):
                        raise ScriptError(
                            f"private creator in even group {m.group(0)}: private groups are odd",
                            script=script,
                            line=line,
                            column=col,
                        )
                tag = parse_tag(m.group(0), group, element, creator, low)
                tokens.append(Token("TAG", m.group(0), line, col, tag=tag))
                i = m.end()
                continue
            if _TAG_START_RE.match(text, i):
                eol = _line_end(text, i)
                close = text.find(")", i, eol)
                shown = text[i : close + 1] if close >= 0 else text[i:eol]
                raise ScriptError(
                    f"malformed tag {shown.strip()!s}: expected (gggg,eeee) or "
                    "(gggg,{Creator}ee) with hex digits or X x @ #",
                    script=script,
                    line=line,
                    column=col,
                )
        if ch == "-" and i + 1 < n and "0" <= text[i + 1] <= "9":
            m = _NUMBER_RE.match(text, i)
            if m:
                tokens.append(Token("NUMBER", m.group(0), line, col, value=m.group(0)))
                i = m.end()
                continue
        if "0" <= ch <= "9":
            m = _NUMBER_RE.match(text, i)
            if m is None or (m.end() < n and (text[m.end()].isalnum() or text[m.end()] == "_")):
                raise ScriptError("malformed number", script=script, line=line, column=col)
            tokens.append(Token("NUMBER", m.group(0), line, col, value=m.group(0)))
            i = m.end()
            continue
        if ch.isascii() and (ch.isalpha() or ch == "_"):
            m = _ID_RE.match(text, i)
            assert m is not None
            word = m.group(0)
            kind = "KEYWORD" if word in KEYWORDS else "ID"
            tokens.append(Token(kind, word, line, col, value=word))
            i = m.end()
            continue
        for punct, kind in _PUNCT:
            if text.startswith(punct, i):
                tokens.append(Token(kind, punct, line, col))
                i += len(punct)
                break
        else:
            raise ScriptError(f"unexpected character {ch!r}", script=script, line=line, column=col)
    tokens.append(Token("EOF", "", line, i - line_start + 1))
    return tokens
