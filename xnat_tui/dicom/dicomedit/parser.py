"""Recursive-descent parser for the DicomEdit 6 subset of dicom.md §1.5.

Fail closed: anything outside the subset (DicomEdit 4 scripts, other versions, other
functions, ``export``, list literals, ambiguous assignment targets) raises
:class:`ScriptError` naming the line and column, before any file is touched.
"""

from __future__ import annotations

import re

from pydicom.datadict import dictionary_VR, private_dictionary_VR

from .errors import ScriptError
from .functions import ARITY, UNSUPPORTED_HINTS, check_format_pattern
from .lexer import Token, tokenize
from .nodes import (
    ANY_ITEM,
    Action,
    Assign,
    Call,
    CompareOp,
    Condition,
    Conditional,
    Delete,
    Describe,
    IfBlock,
    Num,
    PathValue,
    RemoveAllPrivate,
    SetVar,
    Statement,
    Step,
    StepKind,
    Str,
    TagPath,
    TagPattern,
    Value,
    Var,
    Version,
)

SUPPORTED_VERSIONS = frozenset(f"6.{minor}" for minor in range(8))
# XNAT's AbstractMizer picks the dialect with this (multiline) regex: the version line
# must stand alone, or XNAT would read the script as DicomEdit 4.
_VERSION_LINE_RE = re.compile(r'version "(\d[\d.]+)"')
_COMPARE_OPS: dict[str, CompareOp] = {"EQ": "=", "NE": "!=", "MATCH": "~", "NMATCH": "!~"}
_PATH_START = frozenset({"TAG", "STAR", "PLUS", "DOT"})
_LEVEL_WILDCARDS: dict[str, StepKind] = {"STAR": "star", "PLUS": "plus", "DOT": "dot"}


class _Parser:
    def __init__(self, text: str, script: str) -> None:
        self.text = text
        # The lexer's notion of a line (str.splitlines also splits on \x0c, \x85...).
        self.lines = re.split(r"\r\n|\r|\n", text)
        self.script = script
        self.tokens = tokenize(text, script)
        self.pos = 0

    # ---- helpers ------------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.tokens[self.pos]

    def peek(self, offset: int = 1) -> Token:
        return self.tokens[min(self.pos + offset, len(self.tokens) - 1)]

    def advance(self) -> Token:
        tok = self.tokens[self.pos]
        if tok.kind != "EOF":
            self.pos += 1
        return tok

    def error(self, message: str, tok: Token | None = None) -> ScriptError:
        tok = tok or self.tok
        return ScriptError(message, script=self.script, line=tok.line, column=tok.column)

    def describe(self, tok: Token) -> str:
        if tok.kind == "EOF":
            return "end of script"
        if tok.kind == "NEWLINE":
            return "end of line"
        return repr(tok.text)

    def expect(self, kind: str, what: str) -> Token:
        if self.tok.kind != kind:
            raise self.error(f"expected {what}, found {self.describe(self.tok)}")
        return self.advance()

    def skip_newlines(self) -> None:
        while self.tok.kind == "NEWLINE":
            self.advance()

    # ---- script -------------------------------------------------------------------

    def script_(self) -> tuple[str, tuple[Statement, ...]]:
        self.skip_newlines()
        first = self.tok
        if not (first.kind == "KEYWORD" and first.text == "version"):
            line = first.line if first.kind != "EOF" else 1
            raise ScriptError(
                "no version line: this is a DicomEdit 4 script, which this client does not "
                'run (DicomEdit 6 scripts start with version "6.x")',
                script=self.script,
                line=line,
                column=first.column if first.kind != "EOF" else 1,
            )
        version = self.version_statement()
        statements: list[Statement] = [version]
        statements.extend(self.statements(in_block=False))
        return version.version, tuple(statements)

    def version_statement(self) -> Version:
        tok = self.advance()
        value = self.expect("STRING", 'a version string such as "6.1"')
        raw_line = self.lines[tok.line - 1] if tok.line <= len(self.lines) else ""
        if not _VERSION_LINE_RE.fullmatch(raw_line):
            raise self.error('the version line must be exactly version "6.x" on its own line', tok)
        if value.value not in SUPPORTED_VERSIONS:
            raise self.error(
                f"Unsupported version {value.value!r}: this client runs DicomEdit 6.0-6.7",
                value,
            )
        self.end_of_statement(in_block=False)
        return Version(tok.line, value.value)

    def statements(self, in_block: bool) -> list[Statement]:
        out: list[Statement] = []
        while True:
            self.skip_newlines()
            if self.tok.kind == "EOF":
                if in_block:
                    raise self.error("missing '}' before end of script")
                return out
            if self.tok.kind == "RBRACE":
                if in_block:
                    return out
                raise self.error("unexpected '}'")
            out.append(self.statement(in_block))

    def end_of_statement(self, in_block: bool) -> None:
        kind = self.tok.kind
        if kind in ("NEWLINE", "EOF") or (in_block and kind == "RBRACE"):
            return
        raise self.error(f"unexpected {self.describe(self.tok)} after the statement")

    def statement(self, in_block: bool) -> Statement:
        tok = self.tok
        stmt: Statement
        if tok.kind == "KEYWORD":
            word = tok.text
            if word == "version":
                raise self.error("a second version line is not allowed")
            if word == "removeAllPrivateTags":
                self.advance()
                if self.tok.kind == "LBRACK":
                    raise self.error("removeAllPrivateTags takes no arguments")
                stmt = RemoveAllPrivate(tok.line)
            elif word == "describe":
                stmt = self.describe_statement()
            elif word == "if":
                stmt = self.if_block()
            elif word == "export":
                raise self.error("'export' is not supported by this client (outside the subset)")
            elif word == "echo":
                raise self.error("'echo' is not supported by this client (outside the subset)")
            else:
                raise self.error(f"unexpected keyword {word!r}")
        else:
            stmt = self.action_or_conditional()
        self.end_of_statement(in_block)
        return stmt

    def describe_statement(self) -> Describe:
        tok = self.advance()
        name = self.expect("ID", "a variable name after describe")
        if self.tok.kind == "STRING":
            return Describe(tok.line, name.text, self.advance().value, hidden=False)
        if self.tok.kind == "KEYWORD" and self.tok.text == "hidden":
            self.advance()
            return Describe(tok.line, name.text, "", hidden=True)
        raise self.error(f"expected a description string or 'hidden' after describe {name.text}")

    def if_block(self) -> IfBlock:
        first = self.advance()
        branches: list[tuple[Condition, tuple[Statement, ...]]] = []
        cond = self.paren_condition()
        branches.append((cond, self.block()))
        otherwise: tuple[Statement, ...] | None = None
        while True:
            save = self.pos
            self.skip_newlines()
            if self.tok.kind == "KEYWORD" and self.tok.text == "elseif":
                self.advance()
                cond = self.paren_condition()
                branches.append((cond, self.block()))
                continue
            if self.tok.kind == "KEYWORD" and self.tok.text == "else":
                self.advance()
                otherwise = self.block()
                break
            self.pos = save
            break
        return IfBlock(first.line, tuple(branches), otherwise)

    def paren_condition(self) -> Condition:
        self.expect("LPAREN", "'(' before the condition")
        cond = self.condition()
        self.expect("RPAREN", "')' after the condition")
        return cond

    def block(self) -> tuple[Statement, ...]:
        self.skip_newlines()
        self.expect("LBRACE", "'{'")
        body = self.statements(in_block=True)
        self.expect("RBRACE", "'}'")
        return tuple(body)

    # ---- actions and conditions -----------------------------------------------------

    def action_or_conditional(self) -> Statement:
        tok = self.tok
        if tok.kind == "MINUS":
            return self.action()
        if tok.kind == "ID" and self.peek().kind == "ASSIGN":
            return self.action()
        if tok.kind in _PATH_START:
            # A tag path starts either an assignment or a condition; look past it.
            save = self.pos
            self.tag_path()
            nxt = self.tok.kind
            self.pos = save
            if nxt in ("ASSIGN", "ASSIGN_IF"):
                return self.action()
        if tok.kind in ("ID", "STRING", "NUMBER", "TAG", "STAR", "PLUS", "DOT"):
            cond = self.condition()
            self.expect("QUESTION", "'?' after the condition")
            then = self.action()
            otherwise: Action | None = None
            if self.tok.kind == "COLON":
                self.advance()
                otherwise = self.action()
            return Conditional(tok.line, cond, then, otherwise)
        if tok.kind == "LBRACE":
            raise self.error("list literals {...} are not supported by this client")
        raise self.error(f"unexpected {self.describe(tok)}: expected a statement")

    def action(self) -> Action:
        tok = self.tok
        if tok.kind == "MINUS":
            self.advance()
            if self.tok.kind not in _PATH_START:
                raise self.error("expected a tag path after '-'")
            return Delete(tok.line, self.tag_path())
        if tok.kind == "ID":
            if self.peek().kind != "ASSIGN":
                if self.peek().kind == "LBRACK":
                    self.check_function_name(tok)
                raise self.error(f"expected ':=' after variable {tok.text}")
            self.advance()
            self.advance()
            return SetVar(tok.line, tok.text, self.value())
        if tok.kind in _PATH_START:
            path = self.tag_path()
            op = self.tok
            if op.kind not in ("ASSIGN", "ASSIGN_IF"):
                raise self.error(f"expected ':=' or '?=' after {path.text}")
            self.advance()
            self.check_target(path, tok, create=op.kind == "ASSIGN")
            return Assign(tok.line, path, self.value(), if_exists=op.kind == "ASSIGN_IF")
        raise self.error(f"unexpected {self.describe(tok)}: expected an assignment or deletion")

    def check_target(self, path: TagPath, tok: Token, create: bool) -> None:
        # ?= visits every matching element in mizer (AssignIfExistsDicomObjectVisitor);
        # := resolves one element and throws otherwise, so it must be singular.
        if create and not path.singular:
            raise self.error(
                f"assignment target {path.text} must name one element: no digit wildcards, "
                "no * + . levels, and an item index [n] on every sequence level",
                tok,
            )
        if not create:
            return
        final = path.final
        if final.creator is not None:
            group = final.value >> 16
            tag = (group << 16) | 0x1000 | (final.value & 0xFF)
            try:
                private_dictionary_VR(tag, final.creator)
            except KeyError:
                raise self.error(
                    f"{path.text} := would create a private element this client does not "
                    "know the VR of; use ?= (assign only if present)",
                    tok,
                ) from None
            return
        try:
            dictionary_VR(final.value)
        except KeyError:
            raise self.error(
                f"{path.text} is not in the DICOM dictionary, so := cannot create it; "
                "use ?= (assign only if present)",
                tok,
            ) from None

    def condition(self) -> Condition:
        left = self.value()
        kind = self.tok.kind
        if kind not in _COMPARE_OPS:
            raise self.error(f"expected a comparison (= != ~ !~), found {self.describe(self.tok)}")
        op = _COMPARE_OPS[kind]
        self.advance()
        right_tok = self.tok
        right = self.value()
        if op in ("~", "!~") and isinstance(right, Str):
            self.check_regex(right.value, right_tok)
        return Condition(left, op, right)

    def check_regex(self, pattern: str, tok: Token) -> None:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise self.error(f"invalid regular expression {pattern!r}: {exc}", tok) from None

    def check_function_name(self, tok: Token) -> None:
        name = tok.text
        if name in ARITY:
            return
        hint = UNSUPPORTED_HINTS.get(name, "")
        raise self.error(
            f"function {name}[] is not supported by this client (outside the DicomEdit subset)"
            + (f": {hint}" if hint else ""),
            tok,
        )

    def value(self) -> Value:
        tok = self.tok
        if tok.kind == "STRING":
            self.advance()
            return Str(tok.value)
        if tok.kind == "NUMBER":
            self.advance()
            return Num(tok.value)
        if tok.kind in _PATH_START:
            path = self.tag_path()
            if not path.singular:
                # DicomEdit refuses such a term on every file; refuse the script up front.
                raise self.error(
                    f"Path matching multiple tags not allowed as term: {path.text} (a value "
                    "path needs no wildcards and an item index [n] on every sequence level)",
                    tok,
                )
            return PathValue(path)
        if tok.kind == "ID":
            if self.peek().kind == "LBRACK":
                return self.call()
            self.advance()
            return Var(tok.text, tok.line, tok.column)
        if tok.kind == "LBRACE":
            raise self.error("list literals {...} are not supported by this client")
        if tok.kind == "KEYWORD":
            raise self.error(f"keyword {tok.text!r} cannot be used as a value")
        raise self.error(f"expected a value, found {self.describe(tok)}")

    def call(self) -> Call:
        name_tok = self.advance()
        self.check_function_name(name_tok)
        self.expect("LBRACK", "'['")
        args: list[Value] = []
        arg_toks: list[Token] = []
        if self.tok.kind != "RBRACK":
            while True:
                arg_toks.append(self.tok)
                args.append(self.value())
                if self.tok.kind == "COMMA":
                    self.advance()
                    continue
                break
        self.expect("RBRACK", f"',' or ']' in {name_tok.text}[...]")
        low, high = ARITY[name_tok.text]
        if not (low <= len(args) <= (high if high >= 0 else len(args))):
            expected = f"{low}" if low == high else (f"{low}-{high}" if high >= 0 else f">={low}")
            raise self.error(
                f"{name_tok.text}[] takes {expected} argument(s), got {len(args)}", name_tok
            )
        name = name_tok.text
        if name == "format" and isinstance(args[0], Str):
            problem = check_format_pattern(args[0].value)
            if problem:
                raise self.error(f"format pattern {args[0].value!r}: {problem}", arg_toks[0])
        if name == "match" and isinstance(args[1], Str):
            self.check_regex(args[1].value, arg_toks[1])
        return Call(name, tuple(args), name_tok.line, name_tok.column)

    # ---- tag paths ------------------------------------------------------------------

    def tag_path(self) -> TagPath:
        steps: list[Step] = []
        parts: list[str] = []
        while True:
            tok = self.tok
            if tok.kind in _LEVEL_WILDCARDS:
                self.advance()
                steps.append(Step(_LEVEL_WILDCARDS[tok.kind]))
                parts.append(tok.text)
                self.expect_path_slash(tok)
                continue
            if tok.kind != "TAG":
                raise self.error(f"expected a tag (gggg,eeee), found {self.describe(tok)}")
            self.advance()
            assert tok.tag is not None
            pattern: TagPattern = tok.tag
            if self.tok.kind == "LBRACK":
                item = self.item_selector()
                parts.append(tok.text + ("[%]" if item == ANY_ITEM else f"[{item}]"))
                steps.append(Step("tag", pattern, item))
                self.expect_path_slash(tok)
                continue
            if self.tok.kind == "SLASH":
                self.advance()
                steps.append(Step("tag", pattern, None))
                parts.append(tok.text)
                continue
            parts.append(tok.text)
            return TagPath("/".join(parts), tuple(steps), pattern)

    def expect_path_slash(self, after: Token) -> None:
        if self.tok.kind != "SLASH":
            raise self.error(f"expected '/' and a tag after {after.text!r} in a tag path")
        self.advance()

    def item_selector(self) -> int:
        self.advance()  # [
        tok = self.tok
        if tok.kind == "PERCENT":
            self.advance()
            item = ANY_ITEM
        elif tok.kind == "NUMBER" and tok.text.isdigit():
            self.advance()
            item = int(tok.text)
        else:
            raise self.error("expected an item index [n] or [%]")
        self.expect("RBRACK", "']' after the item index")
        return item


def parse(text: str, script: str = "") -> tuple[str, tuple[Statement, ...]]:
    """Parse a whole script; returns (version, statements) or raises ScriptError."""
    return _Parser(text, script).script_()
