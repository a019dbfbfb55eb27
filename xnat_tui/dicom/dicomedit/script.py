"""A parsed, hashable, picklable DicomEdit script and what it needs to run."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .evaluator import plan
from .nodes import (
    Assign,
    Call,
    Conditional,
    Describe,
    IfBlock,
    Op,
    SetVar,
    Statement,
    Value,
    Var,
)
from .parser import parse

# Supplied by the uploader for every file (dicom.md §1.1).
BUILTIN_VARIABLES = ("project", "subject", "session")


@dataclass(frozen=True, slots=True)
class CodeItem:
    """One item of De-identification Method Code Sequence (0012,0064)."""

    value: str
    scheme: str
    meaning: str
    scheme_version: str = ""


@dataclass(frozen=True)
class Script:
    """A DicomEdit 6 script, parsed once and applied to many files.

    ``sha256`` (of the exact text) identifies it in job receipts. ``method_codes`` are
    the (0012,0064) items appended after it runs; for server scripts that is XNAT's own
    record (CodeValue = the script's config id, scheme "XNAT").
    """

    name: str
    text: str
    version: str
    statements: tuple[Statement, ...]
    sha256: str
    method_codes: tuple[CodeItem, ...] = ()
    uses_lookup: bool = False
    descriptions: dict[str, Describe] = field(default_factory=dict, hash=False, compare=False)
    # What the evaluator runs: the statements with deletion runs batched.
    program: tuple[Op, ...] = field(default=(), hash=False, compare=False)

    @classmethod
    def parse(
        cls,
        text: str,
        name: str = "script",
        *,
        config_id: str | None = None,
        method_codes: Sequence[CodeItem] | None = None,
    ) -> Script:
        """Parse ``text`` or raise :class:`ScriptError` naming line and column."""
        version, statements = parse(text, name)
        sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if method_codes is None:
            # XNAT's AbstractMizer.addRecord: CodeValue is the script's config id; without
            # one we use the hash prefix (CodeValue is SH, 16 characters at most).
            method_codes = (
                CodeItem(
                    value=(config_id or sha[:16])[:16],
                    scheme="XNAT",
                    meaning="XNAT DicomEdit 6 Script",
                    scheme_version="1.0",
                ),
            )
        descriptions = {s.name: s for s in walk_statements(statements) if isinstance(s, Describe)}
        uses_lookup = any(c.name == "lookup" for c in _calls(statements))
        return cls(
            name=name,
            text=text,
            version=version,
            statements=statements,
            sha256=sha,
            method_codes=tuple(method_codes),
            uses_lookup=uses_lookup,
            descriptions=descriptions,
            program=plan(statements),
        )

    @classmethod
    def load(cls, path: str | Path, *, config_id: str | None = None) -> Script:
        p = Path(path)
        text = p.read_text(encoding="utf-8")
        return cls.parse(text, str(p), config_id=config_id)

    def referenced_variables(self) -> list[str]:
        seen: dict[str, None] = {}
        for value in _values(self.statements):
            if isinstance(value, Var):
                seen.setdefault(value.name, None)
        return list(seen)

    def assigned_variables(self) -> set[str]:
        return {s.name for s in walk_statements(self.statements) if isinstance(s, SetVar)}


@dataclass(frozen=True, slots=True)
class RequiredVariable:
    """A variable the user must supply (``--var name=value`` / a TUI prompt)."""

    name: str
    description: str = ""
    hidden: bool = False


def required_variables(scripts: Iterable[Script]) -> list[RequiredVariable]:
    """Variables the scripts read but never set, beyond project/subject/session.

    ``hidden`` ones were marked ``describe x hidden``: XNAT does not prompt for them.
    """
    scripts = list(scripts)
    assigned: set[str] = set()
    for s in scripts:
        assigned |= s.assigned_variables()
    out: dict[str, RequiredVariable] = {}
    for s in scripts:
        for name in s.referenced_variables():
            if name in assigned or name in BUILTIN_VARIABLES or name in out:
                continue
            desc = next((x.descriptions[name] for x in scripts if name in x.descriptions), None)
            out[name] = RequiredVariable(
                name,
                desc.text if desc else "",
                desc.hidden if desc else False,
            )
    return list(out.values())


def walk_statements(statements: Iterable[Statement]) -> Iterator[Statement]:
    for stmt in statements:
        yield stmt
        if isinstance(stmt, Conditional):
            yield stmt.then
            if stmt.otherwise is not None:
                yield stmt.otherwise
        elif isinstance(stmt, IfBlock):
            for _cond, body in stmt.branches:
                yield from walk_statements(body)
            if stmt.otherwise is not None:
                yield from walk_statements(stmt.otherwise)


def _values(statements: Iterable[Statement]) -> Iterator[Value]:
    def expand(value: Value) -> Iterator[Value]:
        yield value
        if isinstance(value, Call):
            for arg in value.args:
                yield from expand(arg)

    for stmt in walk_statements(statements):
        if isinstance(stmt, Assign | SetVar):
            yield from expand(stmt.value)
        elif isinstance(stmt, Conditional):
            yield from expand(stmt.condition.left)
            yield from expand(stmt.condition.right)
        elif isinstance(stmt, IfBlock):
            for cond, _body in stmt.branches:
                yield from expand(cond.left)
                yield from expand(cond.right)


def _calls(statements: Iterable[Statement]) -> Iterator[Call]:
    for value in _values(statements):
        if isinstance(value, Call):
            yield value
