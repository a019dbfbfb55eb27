"""Consistency checks on grouped files: duplicates, patients, series numbers, gaps, PHI.

Each check returns Problems; none of them drops data. The upload side decides what
to do (duplicates are uploaded once; the rest is for the user to judge).
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from pathlib import Path

from xnat_tui.dicom.archives import open_path
from xnat_tui.dicom.model import FileRef, Problem, ProblemKind, Scan, Session

# Modalities and SOP classes that commonly carry text burned into the pixels.
PHI_MODALITIES = {
    "SC": "secondary capture",
    "OT": "other (screen captures)",
    "US": "ultrasound",
    "XC": "photograph",
    "ES": "endoscopy",
    "DOC": "document",
}
SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
_DOSE_SCREEN = re.compile(
    r"dose\s*(report|info|summary|screen)|patient\s*protocol|screen\s*(save|capture)|exam\s*protocol",
    re.IGNORECASE,
)


def _where(session: Session, scan: Scan | None = None) -> str:
    first = scan.first_path() if scan is not None else None
    if first is not None:
        return str(Path(first).parent)
    return str(session.root) if session.root is not None else session.study_instance_uid


def _ranges(numbers: list[int], limit: int = 8) -> str:
    out: list[str] = []
    start = prev = numbers[0]
    for n in numbers[1:] + [numbers[-1] + 2]:
        if n == prev + 1:
            prev = n
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = n
    text = ", ".join(out[:limit])
    return text + (f" and {len(out) - limit} more ranges" if len(out) > limit else "")


def _same_bytes(a: str, b: str) -> bool:
    """Byte for byte; raises OSError when either cannot be read."""
    with open_path(a) as fa, open_path(b) as fb:
        while True:
            ca, cb = fa.read(1 << 20), fb.read(1 << 20)
            if ca != cb:
                return False
            if not ca:
                return True


def compare_duplicates(keep: FileRef, dup: FileRef) -> tuple[Problem, bool]:
    """Two files with one SOPInstanceUID: a harmless copy, or two different objects?

    Also says whether the contents could be compared: a read error is reported as it
    is, and such a result holds only until the file can be read again.
    (``path_str``, not ``path``: a FileRef's path must stay text until the files of
    its scan are sorted, or they would sort as Path objects do.)
    """
    keep_path, dup_path = keep.path_str, dup.path_str
    only = f"only {os.path.basename(keep_path)} would be uploaded"
    compared = True
    try:
        same = keep.size == dup.size and _same_bytes(keep_path, dup_path)
    except OSError as exc:
        same, compared = False, False
        detail = (
            f"same SOPInstanceUID as {keep_path}, but the two could not be compared "
            f"({exc.strerror or exc}); {only}"
        )
    else:
        detail = (
            f"identical copy of {keep_path}: uploaded once"
            if same
            else f"same SOPInstanceUID as {keep_path} but different content; {only}"
        )
    kind = ProblemKind.DUPLICATE_IDENTICAL if same else ProblemKind.DUPLICATE_CONFLICT
    problem = Problem(dup_path, kind, detail, "info" if same else "error")
    return problem, compared


def check_scan(scan: Scan, session: Session) -> list[Problem]:
    out: list[Problem] = []
    where = _where(session, scan)
    name = f"series {scan.label} ({scan.series_description or 'no description'})"
    if len(scan.modalities) > 1:
        out.append(
            Problem(
                where,
                ProblemKind.MIXED_MODALITY,
                f"{name} mixes modalities {', '.join(sorted(scan.modalities))}",
                "warning",
            )
        )
    numbers = sorted(set(scan.instance_numbers))
    if len(numbers) > 1:
        expected = numbers[-1] - numbers[0] + 1
        if expected > len(numbers):
            have = set(numbers)
            missing = [n for n in range(numbers[0], numbers[-1] + 1) if n not in have]
            out.append(
                Problem(
                    where,
                    ProblemKind.INSTANCE_GAP,
                    f"{name}: {len(missing)} instance(s) missing from "
                    f"{numbers[0]}-{numbers[-1]}: {_ranges(missing)}",
                    "warning",
                )
            )
    reasons: list[str] = []
    fields = scan.fields
    if fields.get("BurnedInAnnotation", "").upper() == "YES":
        reasons.append("BurnedInAnnotation is YES")
    if fields.get("BurnedInAnnotation", "").upper() != "NO":
        what = PHI_MODALITIES.get(scan.modality)
        if what:
            reasons.append(f"modality {scan.modality} ({what}) often carries burned-in text")
        elif scan.sop_class_uid.startswith(SECONDARY_CAPTURE_PREFIX):
            reasons.append("secondary capture images often carry burned-in text")
    text = " ".join((scan.series_description, fields.get("ImageType", "")))
    if _DOSE_SCREEN.search(text) or "DOSE" in fields.get("ImageType", "").upper():
        reasons.append("looks like a dose report / protocol screen")
    if reasons:
        out.append(
            Problem(
                where,
                ProblemKind.BURNED_IN_PHI,
                f"{name} may show patient data in the pixels: " + "; ".join(reasons),
                "warning",
            )
        )
    return out


def check_session(session: Session) -> list[Problem]:
    out: list[Problem] = []
    where = _where(session)
    ids = sorted(session.patient_ids)
    if len(ids) > 1:
        shown = ", ".join(repr(i) for i in ids[:5])
        out.append(
            Problem(
                where,
                ProblemKind.MULTIPLE_PATIENTS,
                f"one study with {len(ids)} Patient IDs: {shown}",
                "error",
            )
        )
    names = sorted(session.patient_names)
    if len(names) > 1:
        shown = ", ".join(repr(n) for n in names[:5])
        out.append(
            Problem(
                where,
                ProblemKind.MULTIPLE_PATIENTS,
                f"one study with {len(names)} Patient Names: {shown}",
                "warning",
            )
        )
    by_number: dict[int, list[Scan]] = defaultdict(list)
    for scan in session.scans.values():
        if scan.series_number is not None:
            by_number[scan.series_number].append(scan)
    for number, scans in sorted(by_number.items()):
        if len(scans) > 1:
            descs = ", ".join(sorted(repr(s.series_description) for s in scans))
            out.append(
                Problem(
                    where,
                    ProblemKind.DUPLICATE_SERIES_NUMBER,
                    f"SeriesNumber {number} is used by {len(scans)} series ({descs}); "
                    "XNAT names scans by number, so they would collide",
                    "warning",
                )
            )
    return out
