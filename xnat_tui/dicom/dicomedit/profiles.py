"""Built-in profiles: ``basic`` (PS3.15 Annex E) as a generated DE6 script, ``xnat``, ``none``.

The Basic Profile is *generated as DicomEdit 6 text* and run by the same engine as the
server's scripts, so users can read it (``xnat-tui anonymize --profile basic
--show-script``), diff it, and trust that one engine does all the work.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from pydicom.datadict import dictionary_VR, tag_for_keyword

from ._basic_table import BASIC_PROFILE_TABLE
from .script import CodeItem, Script

PROFILES = ("none", "xnat", "basic")

# Dummy values for the D action, by VR (PS3.15: "non-zero length ... consistent with the VR").
_DUMMY = {
    "DA": "19000101",
    "TM": "000000",
    "DT": "19000101000000",
    "PN": "ANONYMIZED",
    "AS": "000Y",
    "IS": "0",
    "DS": "0",
    "US": "0",
    "SS": "0",
    "UL": "0",
    "SL": "0",
    "UV": "0",
    "SV": "0",
    "FL": "0",
    "FD": "0",
    "UR": "ANONYMIZED",
}
_TEXT_VRS = frozenset({"AE", "CS", "LO", "LT", "SH", "ST", "UC", "UT"})

# Attributes kept by the Retain Device Identity Option (PS3.15 Table E.1-1 column).
DEVICE_KEYWORDS = (
    "CassetteID",
    "DetectorID",
    "DeviceAlternateIdentifier",
    "DeviceDescription",
    "DeviceLabel",
    "DeviceSerialNumber",
    "DeviceUID",
    "GantryID",
    "GeneratorID",
    "LensMake",
    "LensModel",
    "LensSerialNumber",
    "LensSpecification",
    "LongDeviceDescription",
    "ManufacturerDeviceClassUID",
    "ManufacturerDeviceIdentifier",
    "ModifyingDeviceID",
    "PlateID",
    "SourceManufacturer",
    "SourceSerialNumber",
    "StationName",
    "TreatmentMachineName",
    "UDISequence",
    "UniqueDeviceIdentifier",
    "XRayDetectorID",
    "XRayDetectorLabel",
    "XRaySourceID",
)
DEVICE_TAGS = frozenset(t for k in DEVICE_KEYWORDS if (t := tag_for_keyword(k)) is not None)

BASIC_CODE = CodeItem("113100", "DCM", "Basic Application Confidentiality Profile")
RETAIN_DATES_CODE = CodeItem(
    "113106", "DCM", "Retain Longitudinal Temporal Information Full Dates Option"
)
RETAIN_DEVICE_CODE = CodeItem("113109", "DCM", "Retain Device Identity Option")
RETAIN_UIDS_CODE = CodeItem("113110", "DCM", "Retain UIDs Option")


def _tag_value(pattern: str) -> int | None:
    digits = pattern.strip("()").replace(",", "")
    try:
        return int(digits, 16)
    except ValueError:  # wildcard pattern (curve/overlay groups)
        return None


def _vr(tag: int | None) -> str:
    if tag is None:
        return ""
    try:
        return dictionary_VR(tag).split(" or ")[0]
    except KeyError:
        return ""


def _kept(tag: int | None, vr: str, *, dates: bool, uids: bool, device: bool) -> bool:
    if dates and vr in ("DA", "DT", "TM"):
        return True
    if device and tag in DEVICE_TAGS:
        return True
    return uids and vr == "UI"


@lru_cache(maxsize=8)
def basic_profile_text(
    *, retain_dates: bool = False, retain_uids: bool = False, retain_device: bool = False
) -> str:
    """The DE6 script implementing PS3.15 E.1-1 Basic Profile (2024b) with options.

    Top-level attributes get their action (X remove, Z empty, D dummy, U hashUID);
    every non-retained attribute of the table is removed where it is nested inside a
    sequence (``-+/``), which is X and always allowed where the table offers it, and
    avoids leaking nested UIDs that one singular assignment cannot reach.
    """
    options = []
    if retain_dates:
        options.append("retain dates")
    if retain_uids:
        options.append("retain UIDs")
    if retain_device:
        options.append("retain device identity")
    # DeidentificationMethod is LO (64 characters) with VM 1-n: one value per option.
    method = "\\\\".join(["PS3.15 E.1-1 Basic Profile", *options])
    uid_lines: list[str] = []
    set_lines: list[str] = []
    delete_lines: list[str] = []
    for pattern, action, keyword in BASIC_PROFILE_TABLE:
        tag = _tag_value(pattern)
        if tag is not None and tag >> 16 in (0x0000, 0x0002):
            continue  # command group / file meta: not in a stored dataset (meta follows SOP)
        vr = _vr(tag)
        if _kept(tag, vr, dates=retain_dates, uids=retain_uids, device=retain_device):
            continue
        comment = f"  // {keyword} ({action})"
        first = action.split("/")[0]
        if tag in (0x00100010, 0x00100020):
            # Set from the subject/session labels below, as XNAT expects.
            delete_lines.append(f"-+/{pattern}  // nested {keyword}")
            continue
        if first == "X" or tag is None:
            # X, X/Z, X/D, X/Z/D, X/Z/U*: removal is always a permitted choice.
            delete_lines.append(f"-*/{pattern}{comment}")
            continue
        if action == "U" or (action == "D" and vr == "UI"):
            uid_lines.append(f'{pattern} ~ ".+" ? {pattern} := hashUID[{pattern}]{comment}')
        elif first == "Z" and vr not in ("SQ", "OB", "OW", "UN", ""):
            set_lines.append(f'{pattern} ?= ""{comment}')
        elif first == "D" and vr in _DUMMY:
            set_lines.append(f'{pattern} ?= "{_DUMMY[vr]}"{comment}')
        elif first == "D" and vr in _TEXT_VRS:
            set_lines.append(f'{pattern} ?= "ANONYMIZED"{comment}')
        else:
            # Sequences and binary values have no text dummy: remove them everywhere.
            delete_lines.append(f"-*/{pattern}{comment}")
            continue
        delete_lines.append(f"-+/{pattern}  // nested {keyword}")
    longitudinal = "UNMODIFIED" if retain_dates else "REMOVED"
    lines = [
        "// DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile (2024b table),",
        "// generated by xnat-tui. hashUID is unsalted: it pseudonymizes UIDs consistently",
        "// with XNAT's own hashUID; anyone holding an original UID can recompute its hash.",
        'version "6.1"',
        "",
        "// U: UIDs replaced consistently",
        *uid_lines,
        "",
        "// Z and D: emptied or replaced with a dummy value when present",
        *set_lines,
        "",
        "// X: removed (and every attribute above, where nested in a sequence)",
        *delete_lines,
        "",
        "// Private attributes",
        "removeAllPrivateTags",
        "",
        "// Identity as XNAT expects it, and the de-identification record",
        "(0010,0010) := subject",
        "(0010,0020) := session",
        '(0012,0062) := "YES"',
        f'(0012,0063) := "{method}"',
        f'(0028,0303) := "{longitudinal}"',
        "",
    ]
    return "\n".join(lines)


def basic_profile_script(
    *, retain_dates: bool = False, retain_uids: bool = False, retain_device: bool = False
) -> Script:
    codes = [BASIC_CODE]
    if retain_dates:
        codes.append(RETAIN_DATES_CODE)
    if retain_device:
        codes.append(RETAIN_DEVICE_CODE)
    if retain_uids:
        codes.append(RETAIN_UIDS_CODE)
    text = basic_profile_text(
        retain_dates=retain_dates, retain_uids=retain_uids, retain_device=retain_device
    )
    return Script.parse(text, "basic-profile", method_codes=codes)


def scripts_for_profile(
    profile: str,
    *,
    server_scripts: Sequence[Script] = (),
    retain_dates: bool = False,
    retain_uids: bool = False,
    retain_device: bool = False,
) -> list[Script]:
    """Scripts to apply client-side for a profile.

    ``xnat``: the server's site then project scripts (already fetched and parsed, in
    that order). ``basic``: the generated Basic Profile. ``none``: nothing (the server
    anonymizes on import).
    """
    if profile == "none":
        return []
    if profile == "xnat":
        return list(server_scripts)
    if profile == "basic":
        return [
            basic_profile_script(
                retain_dates=retain_dates, retain_uids=retain_uids, retain_device=retain_device
            )
        ]
    raise ValueError(f"unknown anonymization profile {profile!r} (expected one of {PROFILES})")


def server_scripts(items: Sequence[tuple[str, str, bool]]) -> list[Script]:
    """Parse the server's scripts, given as (name, contents, enabled), site first.

    Disabled or empty scripts are skipped, as XNAT skips them. Raises ScriptError (with
    the script's name and line) if any enabled script is outside the subset.
    """
    out: list[Script] = []
    for name, contents, enabled in items:
        if enabled and contents.strip():
            out.append(Script.parse(contents, name))
    return out
