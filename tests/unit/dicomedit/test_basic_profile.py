"""The Basic Profile: every attribute of Table E.1-1 handled as its action code says."""

from __future__ import annotations

import pytest
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from xnat_tui.dicom.dicomedit import Anonymizer, basic_profile_script, basic_profile_text, hash_uid
from xnat_tui.dicom.dicomedit._basic_table import BASIC_PROFILE_TABLE
from xnat_tui.dicom.dicomedit.profiles import DEVICE_TAGS, scripts_for_profile

from ._data import VARS

SAMPLE = {
    "DA": "20200101",
    "TM": "101010",
    "DT": "20200101101010",
    "PN": "DOE^JOHN",
    "AS": "042Y",
    "IS": "7",
    "DS": "1.5",
    "CS": "VALUE",
    "AE": "SCANNER1",
    "UR": "http://example.invalid/x",
}
NUMERIC = {"US": 7, "SS": 7, "UL": 7, "SL": 7, "UV": 7, "SV": 7, "FL": 1.5, "FD": 1.5}
# Repeating-group attributes of the table, instantiated in their first group.
REPEATING = {"(50X@,XXXX)": 0x50003000, "(60X@,3000)": 0x60003000, "(60X@,4000)": 0x60004000}


def _tag(pattern: str) -> int:
    return REPEATING.get(pattern) or int(pattern.strip("()").replace(",", ""), 16)


def _value(tag: int, vr: str, n: int):
    if vr == "SQ":
        item = Dataset()
        item.CodeValue = "C1"
        return Sequence([item])
    if vr == "UI":
        return f"1.2.826.0.1.{n}"
    if vr in NUMERIC:
        return NUMERIC[vr]
    if vr == "AT":
        return 0x00100010
    if vr in ("OB", "OW", "UN", "OD", "OF", "OL", "OV"):
        return b"\x01\x02\x03\x04\x05\x06\x07\x08"
    return SAMPLE.get(vr, "Secret value")


def _table_rows():
    for pattern, action, keyword in BASIC_PROFILE_TABLE:
        tag = _tag(pattern)
        if tag >> 16 in (0x0000, 0x0002):
            continue
        yield pattern, tag, action, keyword


def everything() -> tuple[Dataset, dict[int, object]]:
    """A dataset holding every attribute of the table, plus nested copies and privates."""
    ds = Dataset()
    originals: dict[int, object] = {}
    for n, (_pattern, tag, _action, _kw) in enumerate(_table_rows()):
        vr = dictionary_VR(tag).split(" or ")[0]
        ds.add_new(tag, vr, _value(tag, vr, n))
        originals[tag] = ds[tag].value
    nested = Dataset()
    nested.PatientName = "NESTED^NAME"
    nested.ReferencedSOPInstanceUID = "1.2.3.99"
    nested.StudyDate = "20200101"
    nested.add_new(0x00290010, "LO", "ACME")
    nested.add_new(0x00291001, "LO", "private nested")
    ds.ReferencedSeriesSequence = Sequence([nested])  # not in the table: kept, cleaned inside
    ds.Modality = "MR"
    ds.add_new(0x00190010, "LO", "SIEMENS MR HEADER")
    ds.add_new(0x0019100C, "IS", "1000")
    return ds, originals


def test_table_is_the_2024b_edition() -> None:
    codes = [a for _p, a, _k in BASIC_PROFILE_TABLE]
    assert len(codes) == 620
    assert codes.count("X") == 383 and codes.count("U") == 54 and codes.count("D") == 92


def test_basic_profile_applies_every_action() -> None:
    ds, originals = everything()
    Anonymizer([basic_profile_script()], VARS).apply(ds)
    for pattern, tag, action, keyword in _table_rows():
        vr = dictionary_VR(tag).split(" or ")[0]
        where = f"{pattern} {keyword} ({action}, {vr})"
        if tag in (0x00100010, 0x00100020):
            continue
        if action.startswith("X") or vr in ("SQ", "OB", "OW", "UN", "OD", "OF", "OL", "OV"):
            assert tag not in ds, f"{where} should be removed"
        elif action == "U" or (action == "D" and vr == "UI"):
            assert ds[tag].value == hash_uid(str(originals[tag])), where
        elif action.startswith("Z"):
            assert tag in ds and ds[tag].value in ("", None), where
        else:  # D
            assert tag in ds and ds[tag].value not in ("", None), where
            assert ds[tag].value != originals[tag], where
    assert ds.PatientName == "SUBJ01"
    assert ds.PatientID == "SUBJ01_MR1"
    assert ds.PatientIdentityRemoved == "YES"
    assert ds.DeidentificationMethod.startswith("PS3.15 E.1-1 Basic Profile")
    assert ds.LongitudinalTemporalInformationModified == "REMOVED"
    assert [i.CodeValue for i in ds.DeidentificationMethodCodeSequence] == ["113100"]
    assert ds.DeidentificationMethodCodeSequence[0].CodingSchemeDesignator == "DCM"
    # Nested table attributes are removed; private tags are gone everywhere.
    nested = ds.ReferencedSeriesSequence[0]
    assert "PatientName" not in nested
    assert "ReferencedSOPInstanceUID" not in nested
    assert "StudyDate" not in nested
    assert 0x00291001 not in nested
    assert [t for t in ds.keys() if t.group % 2] == []
    assert ds.Modality == "MR"


def test_retain_options_keep_dates_uids_and_device() -> None:
    ds, originals = everything()
    script = basic_profile_script(retain_dates=True, retain_uids=True, retain_device=True)
    Anonymizer([script], VARS).apply(ds)
    assert ds.StudyDate == originals[tag_for_keyword("StudyDate")]
    assert ds.AcquisitionDateTime == originals[tag_for_keyword("AcquisitionDateTime")]
    assert ds.SOPInstanceUID == originals[tag_for_keyword("SOPInstanceUID")]
    assert ds.StudyInstanceUID == originals[tag_for_keyword("StudyInstanceUID")]
    assert ds.DeviceSerialNumber == originals[tag_for_keyword("DeviceSerialNumber")]
    assert ds.StationName == originals[tag_for_keyword("StationName")]
    assert all(t in ds for t in DEVICE_TAGS if t in originals)
    assert ds.LongitudinalTemporalInformationModified == "UNMODIFIED"
    assert list(ds.DeidentificationMethod) == [
        "PS3.15 E.1-1 Basic Profile",
        "retain dates",
        "retain UIDs",
        "retain device identity",
    ]
    codes = [i.CodeValue for i in ds.DeidentificationMethodCodeSequence]
    assert codes == ["113100", "113106", "113109", "113110"]
    # Still removes what no option retains.
    assert "InstitutionAddress" not in ds and "OtherPatientIDs" not in ds


def test_profile_script_is_de6_text_and_selection() -> None:
    text = basic_profile_text()
    assert text.splitlines()[3] == 'version "6.1"'
    assert "removeAllPrivateTags" in text
    assert scripts_for_profile("none") == []
    assert scripts_for_profile("basic")[0].sha256 == basic_profile_script().sha256
    with pytest.raises(ValueError, match="unknown"):
        scripts_for_profile("strict")
