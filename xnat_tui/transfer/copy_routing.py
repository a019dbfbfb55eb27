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

from xnat_tui.dicom.header import (
    IMPLICIT_LE,
    PIXEL_KEY,
    TS_KEY,
    HeaderError,
    NeedFallback,
    fast_header,
)
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
    _keywords: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "patterns", tuple(Pattern(p.tag, p.regex) for p in self.patterns))
        object.__setattr__(self, "_marker", routing_marker(self.patterns))
        keywords = frozenset({p.tag for p in self.patterns} | set(XNAT_ROUTING_TAGS))
        object.__setattr__(self, "_keywords", keywords)

    def __call__(self, data: bytes) -> bytes:
        marker = self._marker
        plain, pixels = _layout(data)
        if marker is not None and plain and not carries_marker(data, marker, pixels):
            return data
        try:
            # Up to Pixel Data only where it was found: the pixels (most of the bytes)
            # go on as they were instead of being parsed and encoded again.
            ds = pydicom.dcmread(io.BytesIO(data), force=True, stop_before_pixels=bool(pixels))
        except Exception:  # not DICOM we can parse: sent as it is, as uploads do
            return data
        fields = {k: str(ds.get(k)) for k in self._keywords if isinstance(ds.get(k), str)}
        changes = rewrite_routing(fields, self.project, self.subject, self.session, self.patterns)
        if not changes:
            return data
        for keyword, value in changes.items():
            setattr(ds, keyword, value)
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=False)
        return out.getvalue() + data[pixels:] if pixels else out.getvalue()


def _layout(data: bytes) -> tuple[bool, int | None]:
    """(whether routing text would show in the raw bytes, where the Pixel Data element
    starts). Every routing element is a top-level one before Pixel Data, so the pixels
    need no search and no parse. A file the fast header walk leaves to pydicom (Deflated,
    big endian, out of order) is parsed whatever its bytes show: deflated, its routing is
    compressed too. ``None``: no Pixel Data found, the whole file is read."""
    try:
        values, _ = fast_header(io.BytesIO(data), len(data), {})
    except NeedFallback:
        return False, None
    except HeaderError:
        return True, None
    pixel = values.get(PIXEL_KEY, "")
    if not pixel:
        return True, None
    # The element's own header: 12 bytes in explicit VR (OB/OW/OF/OD/UN), 8 in implicit.
    start = int(pixel.split(":", 1)[0]) - (12 if values.get(TS_KEY) != IMPLICIT_LE else 8)
    return True, start if start > 0 and data[start : start + 4] in _PIXEL_TAGS else None


# (7FE0,0008) Float, (7FE0,0009) Double Float and (7FE0,0010) Pixel Data, little endian:
# the elements the walk and pydicom's stop_before_pixels both stop at.
_PIXEL_TAGS = (b"\xe0\x7f\x08\x00", b"\xe0\x7f\x09\x00", b"\xe0\x7f\x10\x00")
