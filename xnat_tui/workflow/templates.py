"""Label templates, the one renderer: ``{PatientID}``, ``{routing.subject}``, ``{subject}_{n}``.

Fields are DICOM keywords of the session (values cleaned to label characters), the
routing proposals (``routing.project|subject|session``), ``{subject}`` (the subject
label already chosen), ``{StudyInstanceUID}`` and ``{n}``, a counter that takes the
smallest value >= 1 making the label unused in the project and in the batch (Desktop
Client style auto labels). A field the template names but the session lacks (unknown
keyword, empty value, no routing) is an error naming that field, never a silent "".
"""

from __future__ import annotations

import string
from collections.abc import Collection, Mapping
from typing import Any

from xnat_tui.transfer.types import SourceSession
from xnat_tui.workflow.labels import clean_label

_MAX_COUNTER = 10_000


class TemplateError(ValueError):
    """A template cannot be rendered for a session; the message names the field."""


class _Routing:
    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = values

    def __getattr__(self, name: str) -> str:
        value = self._values.get(name, "")
        if not value:
            raise TemplateError(f"no routing proposal for {name!r} in this session")
        return clean_label(value)


class _Formatter(string.Formatter):
    def __init__(self, fields: Mapping[str, Any]) -> None:
        super().__init__()
        self._fields = fields

    def get_value(self, key: int | str, args: Any, kwargs: Any) -> Any:
        if isinstance(key, int):
            raise TemplateError("positional fields ({}) are not allowed; name a DICOM keyword")
        if key not in self._fields:
            raise TemplateError(f"unknown field {{{key}}}")
        value = self._fields[key]
        if value is None or value == "":
            raise TemplateError(f"{{{key}}} is empty for this session")
        return value


def template_fields(template: str) -> list[str]:
    """Top-level field names used by a template (raises TemplateError when malformed)."""
    try:
        return [name.split(".")[0] for _, name, _, _ in string.Formatter().parse(template) if name]
    except ValueError as exc:
        raise TemplateError(f"malformed template {template!r}: {exc}") from None


def render_label(
    template: str,
    session: SourceSession,
    *,
    subject: str = "",
    taken: Collection[str] = (),
) -> str:
    """Render ``template`` for ``session``; with ``{n}``, pick the first free counter.

    ``taken`` holds labels already used (on the server or earlier in the same plan);
    without ``{n}`` the result is returned even if taken (the planner classifies it).
    """
    if not template.strip():
        raise TemplateError("empty template")
    names = template_fields(template)
    fields: dict[str, Any] = {k: clean_label(str(v)) for k, v in session.attributes.items()}
    fields["routing"] = _Routing(session.routing)
    fields["subject"] = subject
    fields["StudyInstanceUID"] = session.study_instance_uid
    formatter = _Formatter(fields)

    def one(n: int) -> str:
        fields["n"] = n
        try:
            text = formatter.format(template)
        except (KeyError, IndexError, AttributeError, ValueError) as exc:
            if isinstance(exc, TemplateError):
                raise
            raise TemplateError(f"cannot render {template!r}: {exc}") from None
        label = clean_label(text)
        if not label:
            raise TemplateError(f"{template!r} renders to an empty label")
        return label

    if "n" not in names:
        return one(1)
    taken_set = set(taken)
    for n in range(1, _MAX_COUNTER):
        label = one(n)
        if label not in taken_set:
            return label
    raise TemplateError(f"no free label for {template!r}")
