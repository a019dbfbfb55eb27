"""The fast header path against pydicom, on every file shipped in the pydicom wheel."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pydicom
import pytest

from xnat_tui.dicom.header import (
    DEFAULT_TAGS,
    PART10_KEY,
    TS_KEY,
    HeaderError,
    NeedFallback,
    fast_header,
    pydicom_header,
)
from xnat_tui.dicom.model import ProblemKind
from xnat_tui.dicom.synthetic import SeriesSpec, build_dataset, study_attributes, write_dataset
from xnat_tui.dicom.worker import examine

WHEEL = Path(pydicom.__file__).parent / "data" / "test_files"
WHEEL_FILES = sorted(p for p in WHEEL.rglob("*") if p.is_file())

# Every wheel file that cannot be used, with the reason a user should see.
EXPECTED_PROBLEMS = {
    "MR_truncated.dcm": ProblemKind.TRUNCATED,
    "rtplan_truncated.dcm": ProblemKind.TRUNCATED,
    # Real objects lacking StudyInstanceUID/SeriesInstanceUID: cannot be placed.
    "JPEGLSNearLossless_08.dcm": ProblemKind.INCOMPLETE,
    "JPEGLSNearLossless_16.dcm": ProblemKind.INCOMPLETE,
    "SC_rgb_jls_lossy_line.dcm": ProblemKind.INCOMPLETE,
    "SC_rgb_jls_lossy_sample.dcm": ProblemKind.INCOMPLETE,
    # Test fragments with a meta header and one or two elements: read, but no UIDs.
    "UN_sequence.dcm": ProblemKind.INCOMPLETE,
    "empty_charset_LEI.dcm": ProblemKind.INCOMPLETE,
    "meta_missing_tsyntax.dcm": ProblemKind.INCOMPLETE,
    "nested_priv_SQ.dcm": ProblemKind.INCOMPLETE,
    "no_meta_group_length.dcm": ProblemKind.INCOMPLETE,
    "priv_SQ.dcm": ProblemKind.INCOMPLETE,
    # Neither preamble nor a plausible first tag (pydicom also refuses it unless forced).
    "no_meta.dcm": ProblemKind.NOT_DICOM,
    "README.txt": ProblemKind.NOT_DICOM,
    "crayons.icc": ProblemKind.NOT_DICOM,
    "rtplan.dump": ProblemKind.NOT_DICOM,
    "rtstruct.dump": ProblemKind.NOT_DICOM,
    "test1.json": ProblemKind.NOT_DICOM,
    "test_PN.json": ProblemKind.NOT_DICOM,
    "zipMR.gz": ProblemKind.NOT_DICOM,
    "dicomdirtests/README.txt": ProblemKind.NOT_DICOM,
    "dicomdirtests/TINY_ALPHA/README": ProblemKind.NOT_DICOM,
    "dicomdirtests/DICOMDIR": ProblemKind.DICOMDIR,
    "dicomdirtests/DICOMDIR-bigEnd": ProblemKind.DICOMDIR,
    "dicomdirtests/DICOMDIR-empty.dcm": ProblemKind.DICOMDIR,
    "dicomdirtests/DICOMDIR-implicit": ProblemKind.DICOMDIR,
    "dicomdirtests/DICOMDIR-nooffset": ProblemKind.DICOMDIR,
    "dicomdirtests/DICOMDIR-nopatient": ProblemKind.DICOMDIR,
    "dicomdirtests/DICOMDIR-reordered": ProblemKind.DICOMDIR,
    "dicomdirtests/TINY_ALPHA/DICOMDIR": ProblemKind.DICOMDIR,
}


def _rel(p: Path) -> str:
    return p.relative_to(WHEEL).as_posix()


def test_the_wheel_test_data_is_there() -> None:
    assert len(WHEEL_FILES) > 150
    assert set(EXPECTED_PROBLEMS) <= {_rel(p) for p in WHEEL_FILES}


@pytest.mark.parametrize("path", WHEEL_FILES, ids=_rel)
def test_every_wheel_file_is_scanned_or_reported_with_the_right_reason(path: Path) -> None:
    st = path.stat()
    _path, _size, _mtime, kind, detail, values, _n = examine(str(path), st.st_size, st.st_mtime_ns)
    expected = EXPECTED_PROBLEMS.get(_rel(path), "")
    assert kind == expected, detail
    # The values of placed files against pydicom's full read: test_differential_files.py
    if kind == ProblemKind.INCOMPLETE:
        assert "missing" in detail and "InstanceUID" in detail


def test_fast_path_agrees_with_pydicom_on_every_wheel_file_it_reads() -> None:
    compared = 0
    for path in WHEEL_FILES:
        try:
            with open(path, "rb") as f:
                fast, _ = fast_header(f, path.stat().st_size)
        except (NeedFallback, HeaderError):
            continue
        slow, _ = pydicom_header(str(path), force=fast[PART10_KEY] == "0")
        public = {k for k in fast.keys() | slow.keys() if not k.startswith("_") or k == TS_KEY}
        diffs = {k: (fast.get(k), slow.get(k)) for k in public if fast.get(k) != slow.get(k)}
        assert not diffs, f"{_rel(path)}: {diffs}"
        compared += 1
    # The fast path must carry the bulk of real files, not hand everything to pydicom.
    assert compared >= 140


def test_fast_path_reads_only_a_few_kib_even_with_big_private_blocks(tmp_path: Path) -> None:
    study = study_attributes(patient_id="P")
    ds = build_dataset(
        study=study,
        spec=SeriesSpec(rows=256, columns=256),
        series_uid="1.2.3",
        index=1,
        instance_number=1,
    )
    ds.private_block(0x0029, "SIEMENS CSA HEADER", create=True).add_new(0x10, "OB", bytes(200_000))
    path = write_dataset(ds, tmp_path / "big.dcm")
    with open(path, "rb") as f:
        values, nread = fast_header(f, path.stat().st_size)
    assert values["PatientID"] == "P"
    assert values["_pixel"].endswith(":131072")
    assert nread <= 4 * 8192, "private block and pixels must be skipped, not read"


@pytest.mark.parametrize(
    ("transfer_syntax", "part10", "via"),
    [
        ("explicit", True, "fast"),
        ("implicit", True, "fast"),
        ("implicit", False, "fast"),
        ("explicit", False, "fast"),
        ("big", True, "pydicom"),
        ("deflated", True, "pydicom"),
    ],
)
def test_every_encoding_gives_the_same_values(
    tmp_path: Path, transfer_syntax: str, part10: bool, via: str
) -> None:
    study = study_attributes(
        patient_id="PÄT-1",
        patient_name="Müller^Jürgen",
        study_description="Kopf\\Hals",
        extra={"StudyComments": "Project: P1 Subject: S1 Session: E1"},
    )
    ds = build_dataset(
        study=study,
        spec=SeriesSpec("CT", 7, "Axial"),
        series_uid="1.2.3.4",
        index=1,
        instance_number=12,
    )
    path = write_dataset(ds, tmp_path / "x.dcm", transfer_syntax=transfer_syntax, part10=part10)
    st = path.stat()
    _p, _s, _m, kind, detail, values, _n = examine(str(path), st.st_size, st.st_mtime_ns)
    assert kind == "", detail
    assert values is not None
    assert values["_via"] == via
    assert values["PatientName"] == "Müller^Jürgen"
    assert values["PatientID"] == "PÄT-1"
    assert values["StudyDescription"] == "Kopf\\Hals"
    assert values["StudyComments"] == "Project: P1 Subject: S1 Session: E1"
    assert values["SeriesNumber"] == "7"
    assert values["InstanceNumber"] == "12"
    assert values["Modality"] == "CT"
    assert values["SeriesInstanceUID"] == "1.2.3.4"
    assert values["_part10"] == ("1" if part10 else "0")


def test_default_tags_are_all_before_pixel_data() -> None:
    assert all(tag < 0x7FE00010 for tag in DEFAULT_TAGS)
    assert os.environ.get("XDG_CACHE_HOME")  # the isolation fixture is active


def test_dicm_marker_without_meta_group_is_still_read(tmp_path: Path) -> None:
    """Some writers put the dataset straight after 'DICM'; pydicom copes, so must we."""
    study = study_attributes(patient_id="NOMETA")
    ds = build_dataset(
        study=study, spec=SeriesSpec(), series_uid="1.2.3", index=1, instance_number=1
    )
    bare = write_dataset(ds, tmp_path / "bare.dcm", part10=False).read_bytes()
    path = tmp_path / "odd.dcm"
    path.write_bytes(b"\0" * 128 + b"DICM" + bare)
    st = path.stat()
    _p, _s, _m, kind, detail, values, _n = examine(str(path), st.st_size, st.st_mtime_ns)
    assert kind == "", detail
    assert values is not None and values["PatientID"] == "NOMETA"


# Issue 13: real files the fast path misjudged. Each test starts from a wheel file.


def _examine(path: Path) -> tuple[str, str, dict[str, str]]:
    st = path.stat()
    _p, _s, _m, kind, detail, values, _n = examine(str(path), st.st_size, st.st_mtime_ns)
    return kind, detail, values or {}


def _pixel_offset(data: bytes) -> int:
    """Where the value of Pixel Data starts in an explicit VR little endian file."""
    return data.rindex(b"\xe0\x7f\x10\x00") + 12  # tag, VR OB/OW, 2 reserved, length


def test_group_length_before_pixel_data_is_skipped_not_taken_for_the_end(
    tmp_path: Path,
) -> None:
    data = (WHEEL / "MR_small.dcm").read_bytes()  # explicit VR little endian
    at = _pixel_offset(data) - 12
    group_length = b"\xe0\x7f\x00\x00UL\x04\x00" + struct.pack("<I", len(data) - at)
    path = tmp_path / "gl.dcm"  # pydicom drops group lengths when it writes: add one
    path.write_bytes(data[:at] + group_length + data[at:])
    kind, detail, values = _examine(path)
    assert kind == "", detail
    ds = pydicom.dcmread(path)
    assert 0x7FE00000 in ds
    assert values["_via"] == "fast" and values["SOPInstanceUID"] == ds.SOPInstanceUID
    # The pixels are still found, so a cut inside them is still seen.
    cut = tmp_path / "gl_cut.dcm"
    cut.write_bytes(path.read_bytes()[:-4000])
    assert _examine(cut)[0] == ProblemKind.TRUNCATED


def test_images_without_pixel_data_or_with_float_pixel_data_are_complete(
    tmp_path: Path,
) -> None:
    ds = pydicom.dcmread(WHEEL / "MR_small.dcm")
    del ds.PixelData
    del ds[0xFFFCFFFC]
    path = tmp_path / "no_pixels.dcm"
    ds.save_as(path)
    kind, detail, values = _examine(path)
    assert kind == "", detail
    assert values["_via"] == "fast" and values["Rows"] == "64"

    ds.BitsAllocated = 32
    ds.add_new(0x7FE00008, "OF", bytes(64 * 64 * 4))  # Float Pixel Data
    path = tmp_path / "float.dcm"
    ds.save_as(path)
    kind, detail, _values = _examine(path)
    assert kind == "", detail
    cut = tmp_path / "float_cut.dcm"
    cut.write_bytes(path.read_bytes()[:-100])
    kind, detail, _values = _examine(cut)
    assert kind == ProblemKind.TRUNCATED and "100 bytes early" in detail


def test_iso_2022_text_is_decoded_even_when_it_looks_like_ascii() -> None:
    path = WHEEL.parent / "charset_files" / "chrH31.dcm"  # ISO 2022 IR 87, 7-bit JIS
    kind, detail, values = _examine(path)
    assert kind == "", detail
    assert values["_via"] == "fast"
    assert values["PatientName"] == "Yamada^Tarou=山田^太郎=やまだ^たろう"
    assert "\x1b" not in values["PatientName"]


def test_compressed_pixel_data_cut_inside_its_fragments_is_truncated(tmp_path: Path) -> None:
    data = (WHEEL / "MR_small_jp2klossless.dcm").read_bytes()
    start = _pixel_offset(data)
    end = data.rindex(b"\xfe\xff\xdd\xe0\x00\x00\x00\x00")
    cases = {
        "intact_with_padding.dcm": (data, ""),  # trailing (FFFC,FFFC): items are walked
        "intact.dcm": (data[: end + 8], ""),  # the delimiter ends the file
        "cut_in_fragment.dcm": (data[: start + 200], ProblemKind.TRUNCATED),
        "no_delimiter.dcm": (data[:end], ProblemKind.TRUNCATED),
        "cut_in_item_header.dcm": (data[: start + 12], ProblemKind.TRUNCATED),
    }
    for name, (content, expected) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        kind, detail, _values = _examine(path)
        assert kind == expected, (name, detail)
        if expected:
            assert "fragments" in detail


def test_big_endian_without_meta_has_its_transfer_syntax(tmp_path: Path) -> None:
    kind, detail, values = _examine(WHEEL / "ExplVR_BigEndNoMeta.dcm")
    assert kind == "", detail
    assert values["_ts"] == "1.2.840.10008.1.2.2" and values["_part10"] == "0"
    # The pydicom path finds the pixels too: a cut inside them is seen.
    cut = tmp_path / "be_cut.dcm"
    cut.write_bytes((WHEEL / "ExplVR_BigEnd.dcm").read_bytes()[:-3000])
    kind, detail, values = _examine(cut)
    assert kind == ProblemKind.TRUNCATED, detail


def test_stubs_without_uids_name_the_missing_uids() -> None:
    kind, detail, _values = _examine(WHEEL / "priv_SQ.dcm")
    assert kind == ProblemKind.INCOMPLETE
    assert "StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID" in detail
    assert "no DICOM attributes could be read" not in detail


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_jp2klossless.dcm", "MR_small.dcm"])
def test_an_element_after_the_pixels_cut_short_is_seen(tmp_path: Path, name: str) -> None:
    """These files end with (FFFC,FFFC) Data Set Trailing Padding after the pixels."""
    data = (WHEEL / name).read_bytes()
    padding = data.rindex(b"\xfc\xff\xfc\xff")
    assert padding > _pixel_offset(data)
    assert _examine(WHEEL / name)[0] == ""
    for cut in (padding + 6, padding + 14, len(data) - 1):
        path = tmp_path / f"{cut}.dcm"
        path.write_bytes(data[:cut])
        kind, detail, _values = _examine(path)
        assert kind == ProblemKind.TRUNCATED, (cut, detail)
    path = tmp_path / "no_padding.dcm"
    path.write_bytes(data[:padding])  # cut at an element boundary: complete
    assert _examine(path)[0] == ""
