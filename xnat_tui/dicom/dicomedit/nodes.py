"""Parsed form of a DicomEdit 6 script: small immutable, picklable nodes.

Scripts are parsed once and shipped to worker processes, so nodes hold only plain
data (no compiled regexes, no pydicom objects).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# Item selector of a sequence step: None = no selector (any item), -1 = "[%]".
ANY_ITEM = -1


@dataclass(frozen=True, slots=True)
class TagPattern:
    """``(gggg,eeee)`` with digit wildcards, or ``(gggg,{Creator}ee)``.

    Wildcards become a bit mask: a tag matches when ``tag & mask == value``.
    For a private-creator pattern, ``mask``/``value`` cover the group and the low
    byte of the element only; the block byte comes from the creator at run time.
    """

    text: str
    mask: int
    value: int
    creator: str | None = None

    @property
    def exact(self) -> int | None:
        """The single tag this pattern names, if it has no wildcard and no creator."""
        if self.creator is None and self.mask == 0xFFFFFFFF:
            return self.value
        return None

    @property
    def has_wildcard(self) -> bool:
        if self.creator is not None:
            return self.mask != 0xFFFF00FF
        return self.mask != 0xFFFFFFFF

    def matches(self, tag: int) -> bool:
        return (tag & self.mask) == self.value


StepKind = Literal["tag", "star", "plus", "dot"]


@dataclass(frozen=True, slots=True)
class Step:
    """One sequence level: a tag (with optional item selector) or a level wildcard."""

    kind: StepKind
    tag: TagPattern | None = None
    item: int | None = None


@dataclass(frozen=True, slots=True)
class TagPath:
    text: str
    steps: tuple[Step, ...]
    final: TagPattern

    @property
    def singular(self) -> bool:
        """True when the path can name at most one element (allowed as an assignment target)."""
        if self.final.has_wildcard:
            return False
        for step in self.steps:
            if step.kind != "tag" or step.tag is None or step.tag.has_wildcard:
                return False
            if step.item is None or step.item == ANY_ITEM:
                return False
        return True


# ---- values -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Str:
    value: str


@dataclass(frozen=True, slots=True)
class Num:
    value: str


@dataclass(frozen=True, slots=True)
class Var:
    name: str
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class PathValue:
    path: TagPath


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Value, ...]
    line: int
    column: int


Value = Str | Num | Var | PathValue | Call

CompareOp = Literal["=", "!=", "~", "!~"]


@dataclass(frozen=True, slots=True)
class Condition:
    left: Value
    op: CompareOp
    right: Value


# ---- statements ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Version:
    line: int
    version: str


@dataclass(frozen=True, slots=True)
class RemoveAllPrivate:
    line: int


@dataclass(frozen=True, slots=True)
class Describe:
    line: int
    name: str
    text: str
    hidden: bool


@dataclass(frozen=True, slots=True)
class Assign:
    line: int
    path: TagPath
    value: Value
    if_exists: bool


@dataclass(frozen=True, slots=True)
class Delete:
    line: int
    path: TagPath


@dataclass(frozen=True, slots=True)
class SetVar:
    line: int
    name: str
    value: Value


Action = Assign | Delete | SetVar


@dataclass(frozen=True, slots=True)
class Conditional:
    line: int
    condition: Condition
    then: Action
    otherwise: Action | None


@dataclass(frozen=True, slots=True)
class IfBlock:
    line: int
    branches: tuple[tuple[Condition, tuple[Statement, ...]], ...]
    otherwise: tuple[Statement, ...] | None


Statement = Version | RemoveAllPrivate | Describe | Assign | Delete | SetVar | Conditional | IfBlock


@dataclass(frozen=True, slots=True)
class DeleteBatch:
    """Consecutive plain deletions (``-tag``, ``-*/tag``, ``-+/tag``) run as one tree walk.

    Deletions commute, so one pass over the dataset gives the same result as running
    them one by one; the Basic Profile has hundreds of them.
    """

    line: int
    top_exact: frozenset[int]
    top_masks: tuple[tuple[int, int], ...]
    nested_exact: frozenset[int]
    nested_masks: tuple[tuple[int, int], ...]


Op = Statement | DeleteBatch
