"""The header read is bounded: a zero-filled or sparse file, or an endless header,
costs well under a second and is reported; a valid file with a big header is still
placed (issue 14, item 3)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.sequence import Sequence
from pydicom.uid import UID

from xnat_tui.dicom import header
from xnat_tui.dicom.model import ProblemKind
from xnat_tui.dicom.synthetic import SeriesSpec, build_dataset, study_attributes, write_dataset
from xnat_tui.dicom.worker import Record, examine

GIB = 1 << 30


def _examine(path: Path) -> Record:
    st = path.stat()
    return examine(str(path), st.st_size, st.st_mtime_ns)


def _sparse(path: Path, head: bytes, size: int = 2 * GIB) -> Path:
    """``head``, then zeros up to ``size``: a hole, so it costs no disk."""
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size)
    return path


def _meta(transfer_syntax: str) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.2")
    meta.MediaStorageSOPInstanceUID = UID("1.2.3.4")
    meta.TransferSyntaxUID = UID(transfer_syntax)
    buf = DicomBytesIO()
    write_file_meta_info(buf, meta)
    return bytes(128) + b"DICM" + buf.getvalue()


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(bytes(128) + b"DICM", id="preamble-then-zeros"),
        pytest.param(_meta("1.2.840.10008.1.2.1"), id="explicit-meta-then-zeros"),
        pytest.param(_meta("1.2.840.10008.1.2"), id="implicit-meta-then-zeros"),
        pytest.param(_meta("1.2.840.10008.1.2.2"), id="big-endian-meta-then-zeros"),
    ],
)
def test_a_2_gib_sparse_file_is_reported_in_well_under_a_second(
    tmp_path: Path, head: bytes
) -> None:
    path = _sparse(tmp_path / "sparse.dcm", head)
    _p, _s, _m, kind, detail, values, nread = _examine(path)
    assert kind == ProblemKind.CORRUPT, detail
    assert "zero bytes instead of DICOM header elements" in detail
    assert values is None
    assert nread < 1 << 20  # bounded by bytes read, not by a clock: the old read took 2 GiB


def _image(patient: str = "BIG") -> Dataset:
    return build_dataset(
        study=study_attributes(patient_id=patient),
        spec=SeriesSpec(rows=16, columns=16),
        series_uid="1.2.3",
        index=1,
        instance_number=1,
    )


def _add_big_private_sequences(ds: Dataset, group: int, items: int, count: int = 1) -> None:
    """``count`` private sequences of undefined length whose items hold ~1 KiB values:
    the header is walked element by element (nothing to skip by seeking)."""
    block = ds.private_block(group, "XNAT TUI TEST", create=True)
    for n in range(count):
        seq = []
        for i in range(items):
            item = Dataset()
            item.add_new(0x00189087, "FD", float(i))
            item.add_new(0x00181000, "UT", "x" * 1000)
            item.is_undefined_length_sequence_item = True
            seq.append(item)
        block.add_new(0x10 + n, "SQ", Sequence(seq))
        block[0x10 + n].is_undefined_length = True


def test_a_valid_file_with_a_multi_mib_header_is_read_to_its_pixel_data(
    tmp_path: Path,
) -> None:
    ds = _image()
    _add_big_private_sequences(ds, 0x0029, 3000)  # ~3 MiB walked element by element
    path = write_dataset(ds, tmp_path / "big.dcm")
    _p, _s, _m, kind, detail, values, nread = _examine(path)
    assert kind == "", detail
    assert values is not None
    assert values["_via"] == "fast"
    assert values["PatientID"] == "BIG"
    assert values["_pixel"].endswith(":512")
    assert nread > 3_000_000


@pytest.mark.parametrize("transfer_syntax", ["explicit", "implicit", "big"])
def test_a_header_longer_than_the_bound_still_places_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, transfer_syntax: str
) -> None:
    """Past MAX_HEADER the read stops; the identifying tags came first, so the file
    is placed (not called truncated: its Pixel Data was simply not looked for)."""
    monkeypatch.setattr(header, "MAX_HEADER", 256 << 10)
    ds = _image()
    _add_big_private_sequences(ds, 0x0029, 100, count=6)  # ~600 KiB, after the UIDs
    path = write_dataset(ds, tmp_path / "big.dcm", transfer_syntax=transfer_syntax)
    _p, _s, _m, kind, detail, values, nread = _examine(path)
    assert kind == "", detail
    assert values is not None
    assert values["_via"] == "partial"
    assert values["StudyInstanceUID"] == ds.StudyInstanceUID
    assert nread < 600 << 10


@pytest.mark.parametrize("transfer_syntax", ["explicit", "big"])
def test_a_header_longer_than_the_bound_before_its_uids_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, transfer_syntax: str
) -> None:
    monkeypatch.setattr(header, "MAX_HEADER", 256 << 10)
    ds = _image()
    _add_big_private_sequences(ds, 0x0009, 100, count=6)  # before (0020,000D)
    path = write_dataset(ds, tmp_path / "big.dcm", transfer_syntax=transfer_syntax)
    _p, _s, _m, kind, detail, values, _n = _examine(path)
    assert kind == ProblemKind.CORRUPT
    assert "no StudyInstanceUID" in detail and "256 KiB of DICOM header" in detail
    assert values is None


def test_an_image_whose_tail_is_zero_filled_reads_as_cut_short(tmp_path: Path) -> None:
    """A crash after the header was written (zeros where the rest should be): the
    file is placed by what was read, and reported as truncated, at once."""
    data = write_dataset(_image(), tmp_path / "full.dcm").read_bytes()
    cut = data.index(b"\xe0\x7f\x10\x00")  # Pixel Data element
    path = _sparse(tmp_path / "zeroed.dcm", data[:cut], 256 << 20)
    _p, _s, _m, kind, detail, values, nread = _examine(path)
    assert nread < 1 << 20  # of the 256 MiB file
    assert kind == ProblemKind.TRUNCATED, detail
    assert values is not None and values["PatientID"] == "BIG"


def test_sparse_test_files_cost_no_disk(tmp_path: Path) -> None:
    path = _sparse(tmp_path / "sparse.dcm", bytes(128) + b"DICM")
    assert os.stat(path).st_blocks * 512 < 1 << 20
