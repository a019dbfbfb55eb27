"""The scanner against pydicom's full read, on every DICOM file pydicom ships.

For each file of pydicom's bundled test data and character-set files (only those in
the installed package: nothing is downloaded), the scanner's per-file verdict and
attributes must equal what ``dcmread(path)`` gives (``dcmread(force=True)`` for
files without a preamble):

- pydicom reads it fully, with the UIDs to place it: the scanner places it, with the
  same UIDs, series number and description, modality, patient name and ID, and
  transfer syntax;
- pydicom reads it fully but the UIDs are missing: the scanner reports a problem
  naming the missing UIDs (a DICOMDIR is reported as such; a file pydicom only
  reads when forced, with no UIDs, is anything but placed);
- pydicom cannot read it fully (an exception, a value shorter than its declared
  length, fragments without their delimiter): the scanner never places it.

The generated transformations of these files live in test_differential_transforms.py.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
import pytest
from pydicom.data import data_manager
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue

from xnat_tui.dicom.header import DICOMDIR_SOP_CLASS, TS_KEY
from xnat_tui.dicom.model import ProblemKind
from xnat_tui.dicom.worker import examine

DATA_ROOT = Path(data_manager.DATA_ROOT)
# The folders get_testdata_files()/get_charset_files() search locally; those
# functions also fetch pydicom-data files over the network, which tests must not do.
FOLDERS = ("test_files", "charset_files")
FILES = sorted(p for d in FOLDERS for p in (DATA_ROOT / d).rglob("*") if p.is_file())

UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
COMPARED = (
    *UIDS,
    "SeriesNumber",
    "SeriesDescription",
    "Modality",
    "PatientName",
    "PatientID",
)
EXPLICIT_BE = "1.2.840.10008.1.2.2"
# pydicom's messages when a file ends before what it declares.
_EOF_WARNINGS = ("End of file", "delimiter", "truncat", "not enough")


def _rel(p: Path) -> str:
    return p.relative_to(DATA_ROOT).as_posix()


@dataclass
class Reference:
    """What pydicom's full read says about one file."""

    forced: bool = False
    damage: str = ""  # why pydicom cannot read it fully ("" when it can)
    ds: Dataset | None = None
    values: dict[str, str] = field(default_factory=dict)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(_text(v) for v in value)
    if isinstance(value, bytes):
        return value.decode("latin_1").rstrip("\0 ")
    return str(value)


def _short_values(ds: Dataset, depth: int = 0) -> Iterator[str]:
    """Elements whose value stops before its declared length, at any depth."""
    for tag in list(ds.keys()):
        raw = ds.get_item(tag)
        if isinstance(raw, RawDataElement) and raw.value is not None:
            if raw.length != 0xFFFFFFFF and len(raw.value) < raw.length:
                yield f"{tag} holds {len(raw.value)} of {raw.length} bytes"
                continue
        elem = ds[tag]  # converts the value: sequences are parsed here
        if elem.VR == "SQ" and depth < 16:
            for item in elem.value:
                yield from _short_values(item, depth + 1)


def reference(path: Path) -> Reference:
    ref = Reference()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(path)
        except InvalidDicomError:
            ref.forced = True
            try:
                ds = pydicom.dcmread(path, force=True)
            except Exception as exc:  # noqa: BLE001 - any failure is "cannot read"
                ref.damage = f"{type(exc).__name__}: {exc}"
                return ref
        except Exception as exc:  # noqa: BLE001
            ref.damage = f"{type(exc).__name__}: {exc}"
            return ref
        try:
            short = list(_short_values(ds))
        except Exception as exc:  # noqa: BLE001
            short = [f"{type(exc).__name__}: {exc}"]
    eof = [str(w.message) for w in caught if any(m in str(w.message) for m in _EOF_WARNINGS)]
    ref.damage = "; ".join(short + eof)
    ref.ds = ds
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if ts:
        ref.values[TS_KEY] = str(ts)
    else:
        implicit, little = ds.original_encoding
        ref.values[TS_KEY] = (
            EXPLICIT_BE if not little else pydicom.uid.ImplicitVRLittleEndian
            if implicit else pydicom.uid.ExplicitVRLittleEndian
        )  # fmt: skip
    for keyword in COMPARED:
        text = _text(ds.get(keyword))
        if keyword in UIDS:
            text = text.rstrip("\0 ").strip()
        ref.values[keyword] = text
    return ref


def _is_dicomdir(ref: Reference) -> bool:
    meta = getattr(ref.ds, "file_meta", None)
    return meta is not None and meta.get("MediaStorageSOPClassUID") == DICOMDIR_SOP_CLASS


# Files where the scanner and pydicom still disagree, with the reason (strict xfails).
KNOWN_DIFFERENCES: dict[str, str] = {}


def test_the_offline_files_are_there() -> None:
    names = {_rel(p) for p in FILES}
    assert len(FILES) > 180
    # The files that carried the cases of issue 13.
    assert {
        "test_files/693_J2KI.dcm",
        "test_files/ExplVR_BigEndNoMeta.dcm",
        "charset_files/chrH31.dcm",
        "charset_files/chrJapMulti.dcm",
        "test_files/priv_SQ.dcm",
    } <= names


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(p, marks=pytest.mark.xfail(strict=True, reason=KNOWN_DIFFERENCES[_rel(p)]))
        if _rel(p) in KNOWN_DIFFERENCES
        else p
        for p in FILES
    ],
    ids=_rel,
)
def test_the_scanner_agrees_with_pydicom(path: Path) -> None:
    st = path.stat()
    _p, _s, _m, kind, detail, values, _n = examine(str(path), st.st_size, st.st_mtime_ns)
    ref = reference(path)
    placed = kind == ""
    if ref.damage:
        assert not placed, f"placed, but pydicom cannot read it fully: {ref.damage}"
        return
    missing = [k for k in UIDS if not ref.values.get(k)]
    if missing:
        assert not placed, f"placed, but pydicom finds no {', '.join(missing)}"
        if _is_dicomdir(ref):
            assert kind == ProblemKind.DICOMDIR, detail
        elif not ref.forced:
            assert kind in (ProblemKind.INCOMPLETE, ProblemKind.CORRUPT), detail
            assert all(k in detail for k in missing), detail
        return
    assert placed, f"pydicom reads it fully, the scanner says {kind}: {detail}"
    assert values is not None
    got = {k: values.get(k, "") for k in ref.values}
    assert got == ref.values
