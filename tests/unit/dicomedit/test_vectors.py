"""dicom.md §1.6: the 28 test vectors and the hashUID table."""

from __future__ import annotations

import pytest

from xnat_tui.dicom.dicomedit import (
    AnonymizationError,
    Anonymizer,
    Script,
    ScriptError,
    hash_uid,
    parse_lookup_table,
)

from ._data import VARS, run, vector_dataset

DEFAULT_SCRIPT = """//
// Default XNAT anonymization script
// XNAT http://www.xnat.org
// Copyright (c) 2005-2017, Washington University School of Medicine and Howard Hughes\
 Medical Institute
// All Rights Reserved
//
// Released under the Simplified BSD.
//
version "6.1"
project != "Unassigned" ? (0008,1030) := project
(0010,0010) := subject
(0010,0020) := session
"""


def apply_default(**variables: str):
    ds = vector_dataset()
    Anonymizer([Script.parse(DEFAULT_SCRIPT, "site")], {**VARS, **variables}).apply(ds)
    return ds


def test_1_default_script() -> None:
    ds = apply_default()
    assert ds.StudyDescription == "PROJ1"
    assert ds.PatientName == "SUBJ01"
    assert ds.PatientID == "SUBJ01_MR1"


def test_2_default_script_unassigned_project_keeps_description() -> None:
    ds = apply_default(project="Unassigned")
    assert ds.StudyDescription == "BRAIN^ROUTINE"
    assert ds.PatientName == "SUBJ01"


def test_3_hash_study_uid() -> None:
    ds = run("(0020,000D) := hashUID[(0020,000D)]")
    assert ds.StudyInstanceUID == "2.25.320361553501628158867896442310075381854"


def test_4_hash_sop_uid() -> None:
    ds = run("(0008,0018) := hashUID[(0008,0018)]")
    assert ds.SOPInstanceUID == "2.25.262228503153619312954819897114011402300"


def test_5_strings_hash_too() -> None:
    ds = run('(0010,0020) := hashUID["MRN12345"]')
    assert ds.PatientID == "2.25.22816279183427387583916153407789909420"


def test_6_delete_present_and_absent() -> None:
    ds = vector_dataset()
    del ds.ReferringPhysicianName
    ds = run("-(0010,0030)\n- (0008,0090)", ds)
    assert "PatientBirthDate" not in ds
    assert "ReferringPhysicianName" not in ds


def test_7_assign_creates_and_assign_if_exists_does_not() -> None:
    ds = run('(0010,1010) := "042Y"\n(0010,0040) ?= "O"')
    assert ds.PatientAge == "042Y"
    assert ds["PatientAge"].VR == "AS"  # dictionary VR
    assert "PatientSex" not in ds


def test_8_uppercase() -> None:
    assert run("(0008,103E) := uppercase[(0008,103E)]").SeriesDescription == "T1_MPR_1MM"


def test_9_format_and_substring() -> None:
    ds = run('(0010,0020) := format["{0}_{1}", (0010,0020), substring[(0008,0020),2,8]]')
    assert ds.PatientID == "MRN12345_061214"


def test_10_replace_is_literal() -> None:
    assert run('(0008,103E) := replace[(0008,103E), "_", ":"]').SeriesDescription == "t1:mpr:1mm"
    # "." is not a regex wildcard here
    assert run('(0008,103E) := replace[(0008,103E), ".", "X"]').SeriesDescription == "t1_mpr_1mm"


def test_11_format_null_argument_prints_null() -> None:
    ds = run('(0008,1030) := format["{0}_{1}", (0008,1030), (0008,9999)]')
    assert ds.StudyDescription == "BRAIN^ROUTINE_null"


def test_12_format_quoting() -> None:
    ds = run("(0008,1030) := format[\"'{0}' is {1}\", project, subject]")
    assert ds.StudyDescription == "{0} is SUBJ01"


def test_13_conditional_then_else() -> None:
    body = '(0020,0011) = "5" ? (0008,103E) := "Series Five" : (0008,103E) := "Other"'
    assert run(body).SeriesDescription == "Series Five"
    other = vector_dataset()
    other.SeriesNumber = "6"
    assert run(body, other).SeriesDescription == "Other"


def test_14_regex_full_match() -> None:
    assert run('(0008,103E) ~ "t1.*" ? (0008,103E) := "T1"').SeriesDescription == "T1"


def test_15_regex_must_match_whole_value() -> None:
    assert run('(0008,103E) ~ "t1" ? (0008,103E) := "T1"').SeriesDescription == "t1_mpr_1mm"


def test_16_guarded_blank_does_not_create() -> None:
    ds = run('(0008,0050) ~ ".+" ? (0008,0050) := ""')
    assert "AccessionNumber" not in ds


def test_17_if_elseif_else() -> None:
    body = (
        'if ((0008,0060) = "CT") {\n  (0008,1030) := "ct"\n}'
        ' elseif ((0008,0060) = "MR") { (0008,1030) := "mr" }\n'
        'else {\n  (0008,1030) := "other"\n}'
    )
    assert run(body).StudyDescription == "mr"
    ct = vector_dataset()
    ct.Modality = "CT"
    assert run(body, ct).StudyDescription == "ct"
    us = vector_dataset()
    us.Modality = "US"
    assert run(body, us).StudyDescription == "other"


def _private_tags(ds) -> list[int]:
    found: list[int] = []

    def visit(d) -> None:
        for elem in d:
            if elem.tag.is_private:
                found.append(int(elem.tag))
            if elem.VR == "SQ":
                for item in elem.value:
                    visit(item)

    visit(ds)
    return found


def test_18_remove_all_private_tags_recursive() -> None:
    ds = vector_dataset()
    assert _private_tags(ds)
    ds = run("removeAllPrivateTags", ds)
    assert _private_tags(ds) == []
    assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID == "9.8.7"


def test_19_private_creator_path() -> None:
    ds = run("-(0019,{SIEMENS MR HEADER}0C)")
    assert 0x0019100C not in ds
    assert ds[0x00190010].value == "SIEMENS MR HEADER"
    assert 0x00291010 in ds


def test_20_odd_group_wildcard_top_level_only() -> None:
    ds = run("-(XXX#,XXXX)")
    assert [t for t in ds.keys() if t.group % 2] == []
    assert 0x00211001 in ds.ReferencedImageSequence[0]


def test_21_item_selector() -> None:
    ds = run("-(0008,1140)[1]/(0008,1155)")
    items = ds.ReferencedImageSequence
    assert items[0].ReferencedSOPInstanceUID == "9.8.7"
    assert "ReferencedSOPInstanceUID" not in items[1]


def test_22_any_depth_wildcard() -> None:
    ds = vector_dataset()
    ds.ReferencedSOPInstanceUID = "1.1"  # top level too
    ds = run("-*/(0008,1155)", ds)
    assert "ReferencedSOPInstanceUID" not in ds
    for item in ds.ReferencedImageSequence:
        assert "ReferencedSOPInstanceUID" not in item


def test_23_user_variable() -> None:
    ds = run('site := "S01"\n(0010,0010) := format["{0}_{1}", site, subject]')
    assert ds.PatientName == "S01_SUBJ01"


def test_24_lookup() -> None:
    table = parse_lookup_table("pn/DOE^JANE = SUBJ_0001\n")
    script = Script.parse('version "6.1"\n(0010,0010) := lookup["pn", (0010,0010)]\n')
    ds = vector_dataset()
    Anonymizer([script], VARS, lookup=table).apply(ds)
    assert ds.PatientName == "SUBJ_0001"


def test_24b_lookup_without_table_is_rejected_up_front() -> None:
    script = Script.parse('version "6.1"\n(0010,0010) := lookup["pn", (0010,0010)]\n')
    with pytest.raises(ScriptError, match="lookup"):
        Anonymizer([script], VARS)


def test_25_lowercase_of_absent_fails_the_file_with_line() -> None:
    with pytest.raises(AnonymizationError, match="Error evaluating lowercase") as err:
        run("foo := lowercase[(0008,0070)]")
    assert err.value.line == 2


def test_26_unsupported_version() -> None:
    with pytest.raises(ScriptError, match="Unsupported version") as err:
        Script.parse('version "5.0"\n(0010,0010) := subject\n', "old.das")
    assert err.value.line == 1
    assert "old.das:1" in str(err.value)


def test_27_unknown_variable() -> None:
    with pytest.raises(AnonymizationError, match="Unknown variable: nosuchvar"):
        run("(0010,0010) := nosuchvar")


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        ('version "6.1"\nalterPixels["rectangle", "l=1"]\n', 2, "alterPixels"),
        ("- (0008,0050)\n(0010,0010) := subject\n", 1, "DicomEdit 4"),
        ('version "6.1"\nexport visit "xnat:experimentData/visit_id"\n', 2, "export"),
        ('version "6.1"\nuids := {"a", "b"}\n', 2, "list literal"),
        ('version "6.1"\n(0008,0020) := shiftDateByIncrement[(0008,0020), "-7"]\n', 2, "shiftDate"),
        ('version "6.8"\n', 1, "Unsupported version"),
        ('version "6.1"\n(0008,0080) = "X" : (0008,0080) := "Y"\n', 2, "'?'"),
    ],
)
def test_28_outside_subset_is_rejected_with_line(text: str, line: int, needle: str) -> None:
    with pytest.raises(ScriptError) as err:
        Script.parse(text, "s.das")
    assert err.value.line == line
    assert needle in str(err.value)
    assert err.value.column >= 1


HASH_TABLE = [
    ("1.2", "2.25.171578026969864389535347314560684512280"),
    ("1.2.3", "2.25.148370922854076938159295778886134140470"),
    ("1.2.3.4", "2.25.12977335313771255011876057319581175462"),
    ("0.0.0", "2.25.179381058945121467305106941903336095433"),
    ("1.3.1.1", "2.25.258602106693983065446800266265806686854"),
    ("1.2.3.444.555", "2.25.151084009948217556417582685022853404996"),
    ("1.2.3.444.555.666", "2.25.112080059686574174424340996853252886096"),
    ("99.99999.999", "2.25.231023445675908772609000485091754869630"),
    ("", "2.25.290070988920337595058960832122557831312"),
]


@pytest.mark.parametrize(("value", "expected"), HASH_TABLE)
def test_hash_uid_matches_dicomedit(value: str, expected: str) -> None:
    assert hash_uid(value) == expected
    assert run(f'(0008,1030) := hashUID["{value}"]').StudyDescription == expected
