"""Preview diff (TUI screen and --preview) and the burned-in PHI verdicts."""

from __future__ import annotations

import pytest

from xnat_tui.dicom.dicomedit import (
    Anonymizer,
    Script,
    basic_profile_script,
    burned_in_verdict,
    preview_file,
)
from xnat_tui.dicom.dicomedit.preview import preview_dataset
from xnat_tui.dicom.model import Scan

from ._data import VARS, vector_dataset, write_file


def test_preview_lists_changes_with_kinds_and_leaves_the_dataset_alone() -> None:
    ds = vector_dataset()
    script = Script.parse(
        'version "6.1"\n(0010,0010) := subject\n-(0010,0030)\n(0010,1010) := "042Y"\n'
        "-(0008,1140)[1]/(0008,1155)\n"
    )
    changes = preview_dataset(Anonymizer([script], VARS, add_method_codes=False), ds)
    by_tag = {c.tag: c for c in changes}
    assert by_tag["(0010,0010)"].kind == "changed"
    assert (by_tag["(0010,0010)"].before, by_tag["(0010,0010)"].after) == ("DOE^JANE", "SUBJ01")
    assert by_tag["(0010,0030)"].kind == "removed" and by_tag["(0010,0030)"].after is None
    assert by_tag["(0010,1010)"].kind == "added" and by_tag["(0010,1010)"].keyword == "PatientAge"
    nested = by_tag["(0008,1140)[1]/(0008,1155)"]
    assert (nested.kind, nested.before) == ("removed", "9.8.8")
    assert len(changes) == 4
    assert ds.PatientName == "DOE^JANE"  # the input is not modified


def test_preview_file_shows_meta_and_private_changes(tmp_path) -> None:
    path = write_file(tmp_path / "a.dcm")
    before = path.read_bytes()
    changes = preview_file(Anonymizer([basic_profile_script()], VARS), path)
    tags = {c.tag: c for c in changes}
    assert tags["(0002,0003)"].kind == "changed"  # MediaStorageSOPInstanceUID follows
    assert tags["(0019,100C)"].kind == "removed"
    assert tags["(0019,100C)"].keyword == "private SIEMENS MR HEADER"
    assert tags["(0012,0064)"].after == "<sequence, 1 item>"
    assert "(7FE0,0010)" not in tags  # pixels are not read for a preview
    assert path.read_bytes() == before


def _scan(**kw) -> Scan:
    fields = kw.pop("fields", {})
    scan = Scan(series_instance_uid="1.2.3", **kw)
    scan.fields.update(fields)
    return scan


@pytest.mark.parametrize(
    ("scan", "reason"),
    [
        (_scan(modality="CT", fields={"BurnedInAnnotation": "YES"}), "BurnedInAnnotation"),
        (_scan(modality="OT", sop_class_uid="1.2.840.10008.5.1.4.1.1.7"), "Secondary Capture"),
        (_scan(modality="US", sop_class_uid="1.2.840.10008.5.1.4.1.1.6.1"), "Ultrasound"),
        (_scan(modality="CT", series_description="Dose Report"), "dose"),
        (_scan(modality="CT", fields={"ImageType": "DERIVED\\SECONDARY\\SCREEN SAVE"}), "SCREEN"),
    ],
)
def test_burned_in_candidates_warned_or_excluded_by_profile(scan: Scan, reason: str) -> None:
    assert burned_in_verdict(scan, "basic").action == "exclude"
    for profile in ("xnat", "none"):
        verdict = burned_in_verdict(scan, profile)
        assert verdict.action == "warn"
        assert any(reason in r for r in verdict.reasons)


def test_plain_mr_and_explicit_no_are_not_flagged() -> None:
    mr = _scan(modality="MR", series_description="t1_mpr")
    assert burned_in_verdict(mr, "basic").action == "ok"
    us_no = _scan(
        modality="US",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.6.1",
        fields={"BurnedInAnnotation": "NO"},
    )
    assert burned_in_verdict(us_no, "basic").action == "ok"


def test_a_protocol_name_equal_to_the_description_is_named_once() -> None:
    scan = _scan(
        modality="CT", series_description="Dose Report", fields={"ProtocolName": "Dose Report"}
    )
    (reason,) = [r for r in burned_in_verdict(scan, "none").reasons if "dose" in r]
    assert "'Dose Report'" in reason and "Dose Report Dose Report" not in reason
