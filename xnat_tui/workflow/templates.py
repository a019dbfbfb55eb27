"""Label templates, the one renderer: ``{PatientID}``, ``{routing.subject}``, ``{subject}_{n}``.

Fields are DICOM keywords of the session (values cleaned to label characters), the
routing proposals (``routing.project|subject|session``), ``{subject}`` (the subject
label already chosen), ``{StudyInstanceUID}``, ``{archive}`` (the file name, without
extension, of the innermost archive the session came from) and ``{n}``, a counter that takes the
smallest value >= 1 making the label unused in the project and in the batch (Desktop
Client style auto labels). A field the template names but the session lacks (unknown
keyword, empty value, no routing) is an error naming that field, never a silent "".
"""

from __future__ import annotations

import re
import string
from collections.abc import Collection

from xnat_tui.dicom.archives import archive_of
from xnat_tui.dicom.collect import SESSION_FIELDS
from xnat_tui.transfer.types import SourceSession
from xnat_tui.workflow.labels import clean_label

_MAX_COUNTER = 10_000
_COUNTER_SPEC = re.compile(r"0?[1-9]?d")


class TemplateError(ValueError):
    """A template cannot be rendered for a session; the message names the field."""


# The fields a template may name: the DICOM keywords the scanner copies into each
# session, the routing proposals, the chosen subject, the study UID and the counter.
ROUTING_FIELDS = ("routing.project", "routing.subject", "routing.session")
KNOWN_FIELDS: tuple[str, ...] = (
    *SESSION_FIELDS,
    "StudyInstanceUID",
    "subject",
    "n",
    "archive",
    *ROUTING_FIELDS,
)
_KNOWN = frozenset(KNOWN_FIELDS)

# (literal text, field name or None, format spec of {n})
_Piece = tuple[str, str | None, str]


def _parse(template: str) -> list[_Piece]:
    """The template's pieces; TemplateError for anything but known field names.

    No attribute or index access, conversions or nested fields: a template names
    fields, nothing else (``{routing.__init__}`` or ``{PatientID[0]}`` are refused).
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(f"malformed template {template!r}: {exc}") from None
    pieces: list[_Piece] = []
    for literal, name, spec, conversion in parsed:
        if name is None:
            pieces.append((literal, None, ""))
            continue
        if name == "" or name.isdigit():
            raise TemplateError("positional fields ({}) are not allowed; name a DICOM keyword")
        if conversion:
            raise TemplateError(f"{{{name}!{conversion}}}: conversions are not allowed")
        if name not in _KNOWN:
            raise TemplateError(
                f"unknown field {{{name}}}; known fields: "
                + ", ".join(f"{{{f}}}" for f in KNOWN_FIELDS)
            )
        if spec and (name != "n" or not _COUNTER_SPEC.fullmatch(spec)):
            raise TemplateError(
                f"{{{name}:{spec}}}: only the counter takes a format, as in {{n:03d}}"
            )
        pieces.append((literal, name, spec or ""))
    return pieces


def template_fields(template: str) -> list[str]:
    """The field names a template uses (TemplateError when it names anything else)."""
    return [name for _, name, _ in _parse(template) if name is not None]


def render_label(
    template: str,
    session: SourceSession,
    *,
    subject: str = "",
    taken: Collection[str] = (),
) -> str:
    """:func:`render`'s label."""
    return render(template, session, subject=subject, taken=taken)[0]


def render(
    template: str,
    session: SourceSession,
    *,
    subject: str = "",
    taken: Collection[str] = (),
) -> tuple[str, str]:
    """Render ``template`` for ``session``: (label, the text before it was cleaned).

    With ``{n}``, the first free counter is taken. ``taken`` holds labels already used
    (on the server or earlier in the same plan); without ``{n}`` the result is returned
    even if taken (the planner classifies it). The uncleaned text lets the plan show
    what cleaning changed (``Müller^Hans`` → ``Muller_Hans``).
    """
    if not template.strip():
        raise TemplateError("empty template")
    pieces = _parse(template)
    raw: dict[str, str] = {k: str(v).strip() for k, v in session.attributes.items()}
    raw.update({f"routing.{k}": v.strip() for k, v in session.routing.items()})
    raw["subject"] = subject
    raw["StudyInstanceUID"] = session.study_instance_uid
    # {archive}: the innermost archive the session came from, without its extension.
    raw["archive"] = archive_of(str(session.root)) if session.root is not None else ""
    names = {name for _, name, _ in pieces if name is not None}

    def one(n: int) -> tuple[str, str]:
        cleaned: list[str] = []
        text: list[str] = []
        for literal, name, spec in pieces:
            cleaned.append(literal)
            text.append(literal)
            if name == "n":
                cleaned.append(format(n, spec))
                text.append(format(n, spec))
            elif name is not None:
                value = clean_label(raw.get(name, ""))
                if not value:
                    what = "no routing proposal" if name.startswith("routing.") else "empty"
                    raise TemplateError(f"{{{name}}} is {what} for this session")
                cleaned.append(value)
                text.append(raw[name])
        label = clean_label("".join(cleaned))
        if not label:
            raise TemplateError(f"{template!r} renders to an empty label")
        return label, "".join(text)

    if "n" not in names:
        return one(1)
    taken_set = set(taken)
    for n in range(1, _MAX_COUNTER):
        label, text = one(n)
        if label not in taken_set:
            return label, text
    raise TemplateError(f"no free label for {template!r}")
