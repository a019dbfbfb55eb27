"""Routing strings carried by copied DICOM, rewritten for the destination.

A session uploaded with routing in its headers (``xnat://P/S/E`` in StudyDescription, a
site pattern, or XNAT's ``Project: P Subject: S Session: E`` in PatientComments,
StudyComments or AdditionalPatientHistory, xnat-api.md §8) still names its old project
after a copy: sent again later, or through a DICOM receiver, it would route back there.
The copy rewrites every such string it finds to the destination's project, subject and
session; files without one are passed on byte for byte (a fast check of the raw bytes
decides, so most files are never parsed).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import pydicom

from xnat_tui.dicom.header import PIXEL_KEY, HeaderError, NeedFallback, fast_header
from xnat_tui.dicom.routing import (
    XNAT_ROUTING_TAGS,
    Pattern,
    PatternLike,
    carries_marker,
    rewrite_routing,
    routing_marker,
    template_pattern,
)

# The site convention when the config names none (the config's default is the same).
DEFAULT_PATTERNS: tuple[PatternLike, ...] = (
    template_pattern("xnat://{project}/{subject}/{session}"),
)


@dataclass(frozen=True)
class RoutingRewrite:
    """The destination's labels; called on each file's bytes (deterministic).

    The routing is found and rewritten by ``dicom.routing`` (the one parser the scanner,
    the sender and the sandbox receiver use), with the site patterns of the config.
    """

    project: str
    subject: str
    session: str
    patterns: Sequence[PatternLike] = DEFAULT_PATTERNS
    _marker: tuple[bytes, ...] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "patterns", tuple(Pattern(p.tag, p.regex) for p in self.patterns))
        object.__setattr__(self, "_marker", routing_marker(self.patterns))

    def __call__(self, data: bytes) -> bytes:
        marker = self._marker
        if marker is not None and not carries_marker(data, marker, _header_end(data)):
            return data
        try:
            ds = pydicom.dcmread(io.BytesIO(data), force=True)
        except Exception:  # not DICOM we can parse: sent as it is, as uploads do
            return data
        keywords = {p.tag for p in self.patterns} | set(XNAT_ROUTING_TAGS)
        fields = {k: str(ds.get(k)) for k in keywords if isinstance(ds.get(k), str)}
        changes = rewrite_routing(fields, self.project, self.subject, self.session, self.patterns)
        if not changes:
            return data
        for keyword, value in changes.items():
            setattr(ds, keyword, value)
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=False)
        return out.getvalue()


def _header_end(data: bytes) -> int | None:
    """Where Pixel Data starts, when the fast header walk finds it: every routing element
    is a top-level one before it, so the pixels (most of the bytes) need no search.
    None (search it all) for anything the walk does not read plainly."""
    try:
        values, _ = fast_header(io.BytesIO(data), len(data), {})
    except (HeaderError, NeedFallback):
        return None
    pixel = values.get(PIXEL_KEY, "")
    return int(pixel.split(":", 1)[0]) if pixel else None
