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
        if not text or _compile(p.regex) is None:
            continue
        # The same rules the sandbox receiver runs (XNAT routing expressions), without
        # the DICOM tag: the value is given (resolving the keyword loads pydicom's
        # dictionary, a fifth of a second, in every scan).
        rules = _value_rules(p.regex)
        found = RoutingProposal(
            project=_first_rule(rules.project, lambda _t, v=text: v)[0],
            subject=_first_rule(rules.subject, lambda _t, v=text: v)[0],
            session=_first_rule(rules.session, lambda _t, v=text: v)[0],
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


@lru_cache(maxsize=16)
def _value_rules(regex: str) -> RuleSet:
    """``RuleSet.from_pattern`` for a value already read: each named group becomes the
    numbered group of an XNAT expression over the same regex (tag left out)."""
    rx = _compile(regex)
    if rx is None:
        return RuleSet()
    plain = re.compile(_NAMED_GROUP.sub("(", regex))
    rules = {
        name: (RoutingRule(tag=0, regex=plain, group=rx.groupindex[name], text=regex),)
        for name in ROUTING_FIELDS
        if name in rx.groupindex
    }
    return RuleSet(**rules)


def routing_keywords(patterns: Sequence[PatternLike]) -> set[str]:
    """DICOM keywords the scanner must read for these patterns and XNAT's rules."""
    return {p.tag for p in patterns} | set(XNAT_ROUTING_TAGS)


# ---- XNAT's custom routing expressions (xnat-api-2.md §D.4) --------------------------
# One parser for the rules the sandbox receiver (and XNAT's gradual importer) applies,
# for the site pattern the scanner proposes from, and for what the sender writes: a
# pattern the sender fills in is read back by the same rule the receiver runs.

ROUTING_FIELDS: tuple[str, ...] = ("project", "subject", "session")
# XNAT's ExtractorFromRuleProvider grammar: (gggg,eeee):<regex>[:<group>][ t:<t> r:<r>]
_RULE = re.compile(
    r"\((?P<g>[0-9A-Fa-f]{4}),(?P<e>[0-9A-Fa-f]{4})\):(?P<rx>.+?)(?::(?P<n>\d+))?"
    r"(?: t:(?P<t>.*) r:(?P<r>.*))?"
)
_RULE_VALUE_LIMIT = 64  # MatchedPatternExtractorWithLengthLimit(..., 64)
_LABEL_BAD = re.compile(r"[^\w-]", re.ASCII)
_NAMED_GROUP = re.compile(r"\(\?P<(\w+)>")


class RoutingRuleError(ValueError):
    """A routing expression XNAT would refuse, with XNAT's message."""


@dataclass(frozen=True)
class RoutingRule:
    """One custom routing expression: which tag, which regex, which group."""

    tag: int
    regex: re.Pattern[str]
    group: int = 1
    target: re.Pattern[str] | None = None
    replacement: str = ""
    text: str = ""

    def extract(self, value: str | None) -> str:
        """The rule's value for a tag value ('' when it does not match)."""
        if not value:
            return ""
        m = self.regex.search(value)
        if m is None or self.group > (self.regex.groups or 0):
            return ""
        out = m.group(self.group) or ""
        if self.target is not None:
            out = self.target.sub(self.replacement, out)
        return out[:_RULE_VALUE_LIMIT]


def parse_rule(text: str) -> RoutingRule:
    m = _RULE.fullmatch(text.strip())
    try:
        if m is None:
            raise re.error("syntax")
        rx = re.compile(m["rx"])
        target = re.compile(m["t"]) if m["t"] is not None else None
    except re.error:
        raise RoutingRuleError(f"Failed to parse routing expression '{text.strip()}'") from None
    return RoutingRule(
        tag=int(m["g"] + m["e"], 16),
        regex=rx,
        group=int(m["n"]) if m["n"] else 1,
        target=target,
        replacement=m["r"] or "",
        text=text.strip(),
    )


def parse_rules(text: str) -> list[RoutingRule]:
    """One expression per line (blank lines ignored), as XNAT's config stores them."""
    return [parse_rule(line) for line in text.splitlines() if line.strip()]


def _tag_of(keyword: str) -> int:
    from pydicom.datadict import tag_for_keyword

    tag = tag_for_keyword(keyword)
    if tag is None:
        raise RoutingRuleError(f"unknown DICOM keyword {keyword!r}")
    return int(tag)


def pattern_expressions(pattern: PatternLike) -> dict[str, str]:
    """A site pattern (named groups) as XNAT routing expressions, one per field it names.

    Named groups become numbered ones (Java writes them ``(?<name>``), so the lines can
    be pasted into XNAT's ``dicom/projectRules`` etc. and the sandbox's rules alike."""
    rx = _compile(pattern.regex)
    if rx is None:
        return {}
    tag = _tag_of(pattern.tag)
    plain = _NAMED_GROUP.sub("(", pattern.regex)
    return {
        name: f"({tag >> 16:04X},{tag & 0xFFFF:04X}):{plain}:{rx.groupindex[name]}"
        for name in ROUTING_FIELDS
        if name in rx.groupindex
    }


def to_label_chars(value: str) -> str:
    """XNAT's ``Labels.toLabelChars``: ``[^\\w-]`` becomes ``_``."""
    return _LABEL_BAD.sub("_", value)


@dataclass(frozen=True)
class Identifiers:
    """What XNAT's identifier chain (§8.1) makes of one instance."""

    project: str  # "" = Unassigned
    subject: str
    session: str
    auto_archive: bool | None
    project_source: str = ""  # the rule or tag the project came from


@dataclass(frozen=True)
class RuleSet:
    """Custom rules per field (site ``dicom/*Rules`` or a receiver's expressions)."""

    project: tuple[RoutingRule, ...] = ()
    subject: tuple[RoutingRule, ...] = ()
    session: tuple[RoutingRule, ...] = ()

    @classmethod
    def parse(cls, project: str = "", subject: str = "", session: str = "") -> RuleSet:
        return cls(
            tuple(parse_rules(project)), tuple(parse_rules(subject)), tuple(parse_rules(session))
        )

    @classmethod
    def from_pattern(cls, pattern: PatternLike) -> RuleSet:
        exprs = pattern_expressions(pattern)
        return cls.parse(**exprs)


# Tags the chain reads (numbers, so the sandbox reads them from any header).
PATIENT_COMMENTS = 0x00104000
STUDY_COMMENTS = 0x00324000
ADDITIONAL_PATIENT_HISTORY = 0x001021B0
STUDY_DESCRIPTION = 0x00081030
ACCESSION_NUMBER = 0x00080050
PATIENT_NAME = 0x00100010
PATIENT_ID = 0x00100020
_ASSIGNMENT_TAGS = (PATIENT_COMMENTS, STUDY_COMMENTS, ADDITIONAL_PATIENT_HISTORY)


def _first_rule(rules: Sequence[RoutingRule], value_of: ValueOf) -> tuple[str, str]:
    for rule in rules:
        found = rule.extract(value_of(rule.tag))
        if found:
            return found, rule.text
    return "", ""


def _first_assignment(key: str, value_of: ValueOf) -> str:
    for tag in _ASSIGNMENT_TAGS:
        found = xnat_assignment(value_of(tag) or "", key)
        if found:
            return found
    return ""


class ValueOf(Protocol):
    def __call__(self, tag: int, /) -> str | None: ...


class ProjectExists(Protocol):
    def __call__(self, id_or_alias: str, /) -> bool: ...


def identify(value_of: ValueOf, rules: RuleSet, project_exists: ProjectExists) -> Identifiers:
    """XNAT's identifier chain: custom rules first, then the fixed extractors.

    ``value_of(tag)`` gives a header value as text (None when absent); a project
    candidate counts only when ``project_exists`` says it names a project (ID or
    alias), else the next one is tried, and none gives Unassigned."""
    project, source = "", ""
    candidates: list[tuple[str, str]] = []
    for rule in rules.project:
        candidates.append((rule.extract(value_of(rule.tag)), rule.text))
    names = {
        PATIENT_COMMENTS: "PatientComments",
        STUDY_COMMENTS: "StudyComments",
        ADDITIONAL_PATIENT_HISTORY: "AdditionalPatientHistory",
    }
    for tag in _ASSIGNMENT_TAGS:
        candidates.append((xnat_assignment(value_of(tag) or "", "Project"), names[tag]))
    candidates.append(((value_of(STUDY_DESCRIPTION) or "").strip(), "StudyDescription"))
    candidates.append(((value_of(ACCESSION_NUMBER) or "").strip(), "AccessionNumber"))
    for value, where in candidates:
        if value and project_exists(value):
            project, source = value, where
            break
    subject = _first_rule(rules.subject, value_of)[0] or _first_assignment("Subject", value_of)
    subject = subject or (value_of(PATIENT_NAME) or "")
    session = _first_rule(rules.session, value_of)[0] or _first_assignment("Session", value_of)
    session = session or (value_of(PATIENT_ID) or "")
    aa_text = _first_assignment("AA", value_of).lower()
    aa = True if aa_text in ("t", "true") else False if aa_text in ("f", "false") else None
    return Identifiers(
        project=project,
        subject=to_label_chars(subject) if subject else "",
        session=to_label_chars(session) if session else "",
        auto_archive=aa,
        project_source=source,
    )


# ---- what the sender writes ------------------------------------------------------------

ROUTING_MODES: tuple[str, ...] = ("xnat", "site", "none")
# XNAT reads Project:/Subject:/Session: from these, in this order: the sender writes
# PatientComments by default, the first place XNAT looks.
DEFAULT_XNAT_ROUTING_TAG = "PatientComments"
DEFAULT_SITE_TEMPLATE = "xnat://{project}/{subject}/{session}"
DEFAULT_SITE_TAG = "StudyDescription"
_LABEL_OK = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)


def xnat_assignment_text(project: str, subject: str, session: str) -> str:
    """XNAT's own form, which ``xnat_assignment`` reads back field by field."""
    return f"Project: {project} Subject: {subject} Session: {session}"


def routing_values(
    mode: str,
    project: str,
    subject: str,
    session: str,
    *,
    xnat_tag: str = DEFAULT_XNAT_ROUTING_TAG,
    site_tag: str = DEFAULT_SITE_TAG,
    site_template: str = DEFAULT_SITE_TEMPLATE,
) -> dict[str, str]:
    """DICOM keyword -> value the sender writes into the copies it sends.

    Raises ValueError when a label could not survive the trip: XNAT's extractors only
    read ``[A-Za-z0-9_-]``, so anything else would route the session elsewhere."""
    if mode == "none":
        return {}
    for name, value in (("project", project), ("subject", subject), ("session", session)):
        if not _LABEL_OK.fullmatch(value):
            raise ValueError(
                f"{name} label {value!r} cannot be routed over DICOM: "
                "use only letters, digits, '_' and '-'"
            )
    if mode == "xnat":
        if xnat_tag not in XNAT_ROUTING_TAGS:
            raise ValueError(f"XNAT reads routing only from {', '.join(XNAT_ROUTING_TAGS)}")
        return {xnat_tag: xnat_assignment_text(project, subject, session)}
    if mode == "site":
        try:
            text = site_template.format(project=project, subject=subject, session=session)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"site routing template {site_template!r}: {exc}") from None
        if len(text) > 64:
            raise ValueError(f"{site_tag} would be {len(text)} characters (at most 64)")
        return {site_tag: text}
    raise ValueError(f"unknown routing mode {mode!r} (one of {', '.join(ROUTING_MODES)})")


def template_pattern(template: str, tag: str = DEFAULT_SITE_TAG) -> Pattern:
    """The site pattern that reads back what ``template`` writes (for scanner/receiver)."""
    parts = re.split(r"\{(project|subject|session)\}", template)
    out = []
    for i, part in enumerate(parts):
        out.append(f"(?P<{part}>[\\w-]+)" if i % 2 else re.escape(part))
    return Pattern(tag=tag, regex="".join(out))


# ---- rewriting routing for a new home (project copy) -------------------------------


def rewrite_routing(
    fields: Mapping[str, str],
    project: str,
    subject: str,
    session: str,
    patterns: Sequence[PatternLike] = (),
) -> dict[str, str]:
    """New values for the keywords in ``fields`` whose routing names other labels.

    What ``propose`` reads is what is rewritten: the spans a site pattern's named groups
    captured, and the values of XNAT's ``Project:``/``Subject:``/``Session:`` assignments,
    are replaced by the new labels; everything around them is kept. A copied session sent
    on again (or through a receiver) then routes to its new home, not back to the old one.
    """
    new = {"project": project, "subject": subject, "session": session}
    out: dict[str, str] = {}
    for p in patterns:
        text = out.get(p.tag, fields.get(p.tag, ""))
        rx = _compile(p.regex)
        m = rx.search(text) if text and rx is not None else None
        if m is None or rx is None:
            continue
        spans = sorted(
            (m.span(name), name)
            for name in ROUTING_FIELDS
            if name in rx.groupindex and m.group(name) is not None
        )
        pieces, pos = [], 0
        for (start, end), name in spans:
            pieces += [text[pos:start], new[name]]
            pos = end
        replaced = "".join(pieces) + text[pos:]
        if replaced != text:
            out[p.tag] = replaced
    for tag in XNAT_ROUTING_TAGS:
        text = original = fields.get(tag, "")
        for key, value in (("Project", project), ("Subject", subject), ("Session", session)):
            m = _assignment_regex(key).match(text)
            if m is not None and m.group(1):
                text = text[: m.start(1)] + value + text[m.end(1) :]
        if text != original:
            out[tag] = text
    return out


_LITERAL_PREFIX = re.compile(r"(?:[^\\.^$*+?{}\[\]|()]|\\[^A-Za-z0-9])+")


def routing_marker(patterns: Sequence[PatternLike]) -> tuple[bytes, ...] | None:
    """Byte strings one of which any file with routing holds, in some case (each
    pattern's leading literal text; XNAT's ``Project``/``Subject``/``Session`` keys in any
    case, as its extractor reads them), so most files are passed on without being parsed
    (:func:`carries_marker`). None: a pattern starts with no literal to look for, so every
    file must be read."""
    markers = [b"project", b"subject", b"session"]
    for p in patterns:
        m = _LITERAL_PREFIX.match(p.regex)
        literal = re.sub(r"\\(.)", r"\1", m.group(0)) if m else ""
        if len(literal) < 3:
            return None
        markers.append(literal.lower().encode())
    return tuple(dict.fromkeys(markers))


def carries_marker(data: bytes, markers: Sequence[bytes], end: int | None = None) -> bool:
    """Whether ``data[:end]`` holds one of ``markers`` (lowercase), in any case. One
    lowercased copy and a substring search per marker: a case-blind regex alternation
    read binary data at ~30 MB/s, most of the CPU of a project copy."""
    low = (data if end is None else data[:end]).lower()
    return any(m in low for m in markers)
