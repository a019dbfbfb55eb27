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
import re
from dataclasses import dataclass

import pydicom

from xnat_tui.dicom.routing import XNAT_ROUTING_TAGS, xnat_assignment_text

_SITE = re.compile(r"xnat://[\w-]+/[\w-]+/[\w-]+")
_XNAT = re.compile(r"Project:\s*\S+(?:\s+Subject:\s*\S+)?(?:\s+Session:\s*\S+)?")
_MARKERS = (b"xnat://", b"Project:")


@dataclass(frozen=True)
class RoutingRewrite:
    """The destination's labels; called on each file's bytes (deterministic)."""

    project: str
    subject: str
    session: str

    def __call__(self, data: bytes) -> bytes:
        if not any(m in data for m in _MARKERS):
            return data
        try:
            ds = pydicom.dcmread(io.BytesIO(data), force=True)
        except Exception:  # not DICOM we can parse: sent as it is, as uploads do
            return data
        changed = False
        site = f"xnat://{self.project}/{self.subject}/{self.session}"
        value = ds.get("StudyDescription")
        if isinstance(value, str) and _SITE.search(value):
            ds.StudyDescription = _SITE.sub(site, value)
            changed = True
        text = xnat_assignment_text(self.project, self.subject, self.session)
        for keyword in XNAT_ROUTING_TAGS:
            value = ds.get(keyword)
            if isinstance(value, str) and _XNAT.search(value):
                setattr(ds, keyword, _XNAT.sub(text, value))
                changed = True
        if not changed:
            return data
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=False)
        return out.getvalue()


def study_description(data: bytes) -> str:
    """StudyDescription of one file ('' when absent or unreadable)."""
    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
    except Exception:
        return ""
    value = ds.get("StudyDescription")
    return str(value) if value is not None else ""
