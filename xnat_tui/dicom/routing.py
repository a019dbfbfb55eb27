"""Routing proposals: project/subject/session labels carried by the DICOM itself.

Two sources, tried in the order XNAT's receiver tries them (configured rules first,
then the fixed ones):

1. Site patterns from the config (``Defaults.routing_patterns``): a DICOM keyword
   and a regex with named groups ``project``/``subject``/``session``; the default
   reads ``xnat://project/subject/session`` from StudyDescription.
2. XNAT's own ``Project: P Subject: S Session: E`` assignments in PatientComments,
   StudyComments and AdditionalPatientHistory, matched with the regex of XNAT's
   ``ContainedAssignmentExtractor`` (xnat-api.md §8.1).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from xnat_tui.dicom.model import RoutingProposal

# XNAT's fixed extractors, in their order.
XNAT_ROUTING_TAGS: tuple[str, ...] = (
    "PatientComments",
    "StudyComments",
    "AdditionalPatientHistory",
)


class PatternLike(Protocol):
    """``xnat_tui.config.RoutingPattern`` or anything with the same two fields."""

    @property
    def tag(self) -> str: ...

    @property
    def regex(self) -> str: ...


@dataclass(frozen=True)
class Pattern:
    tag: str
    regex: str


@lru_cache(maxsize=16)
def _assignment_regex(key: str) -> re.Pattern[str]:
    # Java's pattern, transcribed: the key must open the value or follow whitespace,
    # ',' or ';'; the value is [\w-]* (ASCII); what follows must be a separator or end.
    return re.compile(
        rf"(?:\A|(?:.*[\s,;])){key}\s*:\s*([\w\-]*)(?:(?:[\s,;].*\Z)|\Z)",
        re.IGNORECASE | re.ASCII,
    )


def xnat_assignment(text: str, key: str) -> str:
    """The value XNAT would extract for ``key`` (Project/Subject/Session/AA), or ""."""
    m = _assignment_regex(key).match(text)
    return m.group(1) if m else ""


def _compile(regex: str) -> re.Pattern[str] | None:
    try:
        return re.compile(regex)
    except re.error:
        return None


def invalid_patterns(patterns: Sequence[PatternLike]) -> list[str]:
    """Messages for patterns that cannot be used (bad regex, no named group)."""
    out = []
    for p in patterns:
        rx = _compile(p.regex)
        if rx is None:
            out.append(f"routing pattern for {p.tag}: invalid regular expression {p.regex!r}")
        elif not {"project", "subject", "session"} & set(rx.groupindex):
            out.append(
                f"routing pattern for {p.tag}: needs a named group "
                "(?P<project>...), (?P<subject>...) or (?P<session>...)"
            )
    return out


def propose(
    fields: Mapping[str, str], patterns: Sequence[PatternLike] = ()
) -> list[RoutingProposal]:
    """Every routing proposal found in ``fields`` (keyword -> value), best first."""
    out: list[RoutingProposal] = []
    for p in patterns:
        text = fields.get(p.tag, "")
        rx = _compile(p.regex) if text else None
        m = rx.search(text) if rx is not None else None
        if m is None:
            continue
        groups = m.groupdict()
        found = RoutingProposal(
            project=groups.get("project") or "",
            subject=groups.get("subject") or "",
            session=groups.get("session") or "",
            source=f"pattern:{p.tag}",
        )
        if found.project or found.subject or found.session:
            out.append(found)
    for tag in XNAT_ROUTING_TAGS:
        text = fields.get(tag, "")
        if not text:
            continue
        found = RoutingProposal(
            project=xnat_assignment(text, "Project"),
            subject=xnat_assignment(text, "Subject"),
            session=xnat_assignment(text, "Session"),
            source=tag,
        )
        if found.project or found.subject or found.session:
            out.append(found)
    return out


def routing_keywords(patterns: Sequence[PatternLike]) -> set[str]:
    """DICOM keywords the scanner must read for these patterns and XNAT's rules."""
    return {p.tag for p in patterns} | set(XNAT_ROUTING_TAGS)
