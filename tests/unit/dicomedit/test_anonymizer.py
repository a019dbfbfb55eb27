"""Whole files: determinism, untouched sources, meta header, XNAT's record, pickling."""

from __future__ import annotations

import io
import os
import pickle

import pytest
from pydicom import dcmread

from xnat_tui.dicom.dicomedit import AnonymizationError, Anonymizer, Script, ScriptError

from ._data import VARS, run, vector_dataset, write_file

HASHING = """version "6.1"
(0010,0010) := subject
(0010,0020) := session
(0020,000D) := hashUID[(0020,000D)]
(0008,0018) := hashUID[(0008,0018)]
(0008,0080) := newUID[]
"""


def test_file_is_anonymized_in_memory_and_source_untouched(tmp_path) -> None:
    path = write_file(tmp_path / "in" / "a.dcm")
    os.utime(path, (1_000_000_000, 1_000_000_000))
    before = path.read_bytes()
    anon = Anonymizer([Script.parse(HASHING, "site")], {"project": "P"})
    data = anon.anonymize_file(path, {"subject": "S1", "session": "S1_MR"})
    assert path.read_bytes() == before
    assert path.stat().st_mtime == 1_000_000_000
    out = dcmread(io.BytesIO(data))
    assert out.PatientName == "S1"
    assert out.SOPInstanceUID == "2.25.262228503153619312954819897114011402300"
    # The meta header follows the new SOPInstanceUID.
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    assert out.PixelData == bytes(range(32))


def test_same_input_gives_identical_bytes_and_newuid_differs_per_file(tmp_path) -> None:
    a = write_file(tmp_path / "a.dcm")
    other = vector_dataset()
    other.SOPInstanceUID = "1.2.3.4.5.7"
    b = write_file(tmp_path / "b.dcm", other)
    anon = Anonymizer([Script.parse(HASHING, "site")], VARS)
    first = anon.anonymize_file(a)
    assert anon.anonymize_file(a) == first
    # A fresh (unpickled) anonymizer in another "process" gives the same bytes.
    assert pickle.loads(pickle.dumps(anon)).anonymize_file(a) == first
    uid_a = dcmread(io.BytesIO(first)).InstitutionName
    uid_b = dcmread(io.BytesIO(anon.anonymize_file(b))).InstitutionName
    assert uid_a.startswith("2.25.") and uid_b.startswith("2.25.") and uid_a != uid_b


def test_deidentification_method_code_item_per_script_as_xnat_does() -> None:
    site = Script.parse('version "6.1"\n(0010,0010) := subject\n', "site", config_id="12")
    project = Script.parse('version "6.1"\n(0010,0020) := session\n', "project")
    ds = vector_dataset()
    Anonymizer([site, project], VARS).apply(ds)
    items = ds.DeidentificationMethodCodeSequence
    assert [i.CodeValue for i in items] == ["12", project.sha256[:16]]
    for item in items:
        assert item.CodingSchemeDesignator == "XNAT"
        assert item.CodingSchemeVersion == "1.0"
        assert item.CodeMeaning == "XNAT DicomEdit 6 Script"


def test_site_then_project_order() -> None:
    site = Script.parse('version "6.1"\n(0008,1030) := "site"\n', "site")
    project = Script.parse(
        'version "6.1"\n(0008,1030) = "site" ? (0008,1030) := "project saw site"\n', "project"
    )
    ds = vector_dataset()
    Anonymizer([site, project], VARS).apply(ds)
    assert ds.StudyDescription == "project saw site"


def test_errors_name_script_and_line_and_pickle() -> None:
    script = Script.parse('version "6.1"\n\n(0010,0010) := substring[(0010,0010), 3, 99]\n', "p")
    with pytest.raises(AnonymizationError) as err:
        Anonymizer([script], VARS).apply(vector_dataset())
    assert (err.value.script, err.value.line) == ("p", 3)
    assert "substring" in str(err.value)
    again = pickle.loads(pickle.dumps(err.value))
    assert str(again) == str(err.value)


def test_value_path_with_wildcards_is_rejected_up_front() -> None:
    for path in ("*/(0008,1155)", "(0008,1140)[%]/(0008,1155)", "(0010,001X)"):
        with pytest.raises(ScriptError, match="multiple tags") as err:
            Script.parse(f'version "6.1"\n(0008,1030) := hashUID[{path}]\n')
        assert (err.value.line, err.value.column) == (2, 24)


def test_null_regex_fails_the_file_and_null_subject_never_matches() -> None:
    with pytest.raises(AnonymizationError, match="regular expression"):
        run('(0008,1030) ~ (0008,9999) ? (0008,1030) := "x"')
    assert run('(0008,9999) !~ (0008,8888) ? (0008,1030) := "x"').StudyDescription == "x"


def test_nested_value_and_nested_assignment() -> None:
    ds = run("(0008,1030) := (0008,1140)[1]/(0008,1155)")
    assert ds.StudyDescription == "9.8.8"
    ds = run('(0008,1140)[0]/(0008,1155) := "1.1"\n(0040,0275)[0]/(0040,1001) := "RP1"')
    assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID == "1.1"
    assert ds.RequestAttributesSequence[0].RequestedProcedureID == "RP1"


def test_null_assignment_does_nothing_like_mizer() -> None:
    ds = run("(0020,0052) := hashUID[(0020,0052)]\n(0008,1030) := (0008,9999)")
    assert "FrameOfReferenceUID" not in ds
    assert ds.StudyDescription == "BRAIN^ROUTINE"
    assert "RequestAttributesSequence" not in run("(0040,0275)[0]/(0040,1001) := (0008,9999)")


def test_assign_if_exists_visits_every_match() -> None:
    ds = run('*/(0008,1155) ?= "1.1"')
    assert [i.ReferencedSOPInstanceUID for i in ds.ReferencedImageSequence] == ["1.1", "1.1"]
    assert "ReferencedSOPInstanceUID" not in ds


def test_backslash_makes_multi_valued_and_numeric_vrs_convert() -> None:
    ds = run('(0008,0008) := "ORIGINAL\\\\PRIMARY"\n(0028,0010) := "64"')
    assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY"]
    assert ds.Rows == 64
    with pytest.raises(AnonymizationError, match="not a valid US"):
        run('(0028,0010) := "many"')


def test_plus_and_dot_levels() -> None:
    ds = vector_dataset()
    ds.ReferencedSOPInstanceUID = "1.1"
    ds = run("-+/(0008,1155)", ds)
    assert ds.ReferencedSOPInstanceUID == "1.1"
    assert all("ReferencedSOPInstanceUID" not in i for i in ds.ReferencedImageSequence)
    ds = run("-./(0008,1150)")
    assert all("ReferencedSOPClassUID" not in i for i in ds.ReferencedImageSequence)


def test_no_scripts_is_identity(tmp_path) -> None:
    path = write_file(tmp_path / "a.dcm")
    anon = Anonymizer([], {})
    assert anon.is_identity
    assert dcmread(io.BytesIO(anon.anonymize_file(path))).PatientName == "DOE^JANE"


@pytest.mark.parametrize("variant", ["explicit", "implicit", "no-preamble", "big-endian"])
def test_fast_encode_matches_dcmwrite(tmp_path, variant: str) -> None:
    from pydicom.filewriter import dcmwrite
    from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian

    from xnat_tui.dicom.dicomedit import encode

    path = write_file(tmp_path / "a.dcm")
    ds = dcmread(path)
    if variant == "implicit":
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    elif variant == "big-endian":
        ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    elif variant == "no-preamble":
        ds.preamble = None
    expected = io.BytesIO()
    dcmwrite(expected, ds, enforce_file_format=False)
    assert encode(ds) == expected.getvalue()
    assert dcmread(io.BytesIO(encode(ds)), force=True).PatientName == "DOE^JANE"


def test_file_meta_values_can_be_read(tmp_path) -> None:
    path = write_file(tmp_path / "a.dcm")
    script = Script.parse('version "6.1"\n(0008,1030) := (0002,0010)\n')
    out = dcmread(io.BytesIO(Anonymizer([script], VARS).anonymize_file(path)))
    assert out.StudyDescription == "1.2.840.10008.1.2.1"


def test_server_scripts_skip_disabled_and_empty() -> None:
    from xnat_tui.dicom.dicomedit import server_scripts

    scripts = server_scripts(
        [
            ("site", 'version "6.1"\n(0010,0010) := subject\n', True),
            ("project P", 'version "6.1"\n(0010,0020) := session\n', False),
            ("project Q", "  \n", True),
        ]
    )
    assert [s.name for s in scripts] == ["site"]


def test_match_finds_a_group_anywhere_and_null_arguments_fail() -> None:
    ds = run('(0008,1030) := match[(0008,103E), "mpr_(\\\\d)", 1]')
    assert ds.StudyDescription == "1"  # Matcher.find(), not a full match
    # No match gives null, and assigning null leaves the element alone.
    assert run('(0008,1030) := match[(0008,103E), "zzz(.)", 1]').StudyDescription == "BRAIN^ROUTINE"
    for body in (
        '(0008,1030) := concatenate["a", (0008,9999)]',
        '(0008,1030) := replace[(0008,1030), "A", (0008,9999)]',
        '(0008,1030) := match[(0008,9999), "(.)", 1]',
    ):
        with pytest.raises(AnonymizationError, match="Error evaluating"):
            run(body)


def test_described_but_unset_variable_reads_as_null_like_dicomedit() -> None:
    ds = run('describe visit "Visit"\n(0010,0020) := format["{0}_{1}", session, visit]')
    assert ds.PatientID == "SUBJ01_MR1_null"
    assert run('describe visit "Visit"\n(0010,0020) := visit', visit="v3").PatientID == "v3"


def test_multi_valued_elements_read_joined_with_backslash() -> None:
    ds = vector_dataset()
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M"]
    ds = run(
        "(0008,1030) := (0008,0008)\n"
        '(0008,0008) ~ ".*\\\\\\\\PRIMARY\\\\\\\\.*" ? (0008,103E) := "p"',
        ds,
    )
    # Written back, the backslash makes the value multi-valued again.
    assert list(ds.StudyDescription) == ["ORIGINAL", "PRIMARY", "M"]
    assert ds.SeriesDescription == "p"
