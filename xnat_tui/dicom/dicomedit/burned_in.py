"""Burned-in PHI: which scans may carry identifying text in their pixels.

No header script can clean pixels, so such scans are warned about under every profile
and left out by default under ``basic`` (the user can still include them explicitly).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from xnat_tui.dicom.model import Scan

Action = Literal["ok", "warn", "exclude"]

# Secondary Capture (single and multi-frame) and Ultrasound (single and multi-frame).
SECONDARY_CAPTURE_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.7",
        "1.2.840.10008.5.1.4.1.1.7.1",
        "1.2.840.10008.5.1.4.1.1.7.2",
        "1.2.840.10008.5.1.4.1.1.7.3",
        "1.2.840.10008.5.1.4.1.1.7.4",
    }
)
ULTRASOUND_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.6.1",
        "1.2.840.10008.5.1.4.1.1.6.2",
        "1.2.840.10008.5.1.4.1.1.3.1",
    }
)
RISKY_MODALITIES = frozenset({"US", "OT", "SC", "XC", "DOC", "ES", "GM", "SM"})
_SCREEN_RE = re.compile(r"dose|screen\s*(save|capture|shot)|patient\s*protocol|report", re.I)


@dataclass(frozen=True, slots=True)
class BurnedInVerdict:
    action: Action
    reasons: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        return bool(self.reasons)


def burned_in_reasons(scan: Scan) -> list[str]:
    """Why this scan may have PHI in its pixels (empty: no known risk)."""
    fields = scan.fields
    burned = fields.get("BurnedInAnnotation", "").strip().upper()
    image_type = fields.get("ImageType", "").upper()
    # ProtocolName often repeats SeriesDescription; name each text once in the reason.
    texts = (scan.series_description, fields.get("ProtocolName", ""))
    description = " / ".join(dict.fromkeys(v for v in texts if v))
    reasons: list[str] = []
    if burned == "YES":
        reasons.append("BurnedInAnnotation is YES")
    if "SCREEN SAVE" in image_type or "SCREENSHOT" in image_type:
        reasons.append("ImageType says SCREEN SAVE")
    if _SCREEN_RE.search(description):
        reasons.append(f"series description {description!r} looks like a dose or report screen")
    # An explicit BurnedInAnnotation=NO is the modality's own statement; trust it for
    # the class-based rules, not for screens recognised above.
    if burned != "NO":
        if scan.sop_class_uid in SECONDARY_CAPTURE_CLASSES:
            reasons.append("Secondary Capture image")
        elif scan.sop_class_uid in ULTRASOUND_CLASSES:
            reasons.append("Ultrasound image")
        elif scan.modality.upper() in RISKY_MODALITIES:
            reasons.append(f"modality {scan.modality} often carries burned-in text")
    return reasons


def burned_in_verdict(scan: Scan, profile: str) -> BurnedInVerdict:
    """``exclude`` under ``basic`` (default off, user may opt in), ``warn`` otherwise."""
    reasons = burned_in_reasons(scan)
    if not reasons:
        return BurnedInVerdict("ok")
    return BurnedInVerdict("exclude" if profile == "basic" else "warn", reasons)
