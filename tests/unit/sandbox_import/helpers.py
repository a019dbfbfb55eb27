"""Small builders for import tests: tiny DICOM objects, zips in every flavour, tars."""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

from pydicom.dataset import Dataset
from stream_zip import NO_COMPRESSION_64, ZIP_32, ZIP_64, stream_zip

from xnat_tui.dicom.synthetic import SeriesSpec, build_dataset, study_attributes, synthetic_uid


def dataset(
    *,
    patient: str = "SUBJ01",
    series: int | None = 1,
    index: int = 1,
    description: str = "T1_MPRAGE",
    modality: str = "MR",
    study_uid: str = "",
    extra: dict[str, Any] | None = None,
    study_extra: dict[str, Any] | None = None,
    study_description: str = "",
) -> Dataset:
    study = study_attributes(
        patient_id=patient,
        study_instance_uid=study_uid,
        extra=study_extra,
        study_description=study_description,
    )
    spec = SeriesSpec(modality, series, description, 1, extra=dict(extra or {}))
    series_uid = synthetic_uid(study["StudyInstanceUID"], "series", series, description)
    return build_dataset(
        study=study, spec=spec, series_uid=series_uid, index=index, instance_number=index
    )


def dicom_bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.preamble = b"\0" * 128
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def bare_bytes(ds: Dataset) -> bytes:
    """A dataset without preamble or file meta (raw explicit VR little endian)."""
    buf = io.BytesIO()
    bare = Dataset(ds)
    bare.preamble = None
    bare.save_as(buf, implicit_vr=False, little_endian=True)
    return buf.getvalue()


def series_files(n: int = 3, **kw: Any) -> list[tuple[str, bytes]]:
    out = []
    for i in range(1, n + 1):
        ds = dataset(index=i, **kw)
        out.append((f"{ds.SeriesNumber or 0}/IM{i:04d}.dcm", dicom_bytes(ds)))
    return out


def stream_zip_bytes(
    entries: Iterable[tuple[str, bytes]], method: Any = NO_COMPRESSION_64
) -> bytes:
    now = datetime(2024, 1, 1)
    return b"".join(stream_zip((name, now, 0o600, method, (data,)) for name, data in entries))


def zipfile_bytes(entries: Iterable[tuple[str, bytes]], *, deflate: bool = False) -> bytes:
    buf = io.BytesIO()
    comp = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, "w", compression=comp) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return buf.getvalue()


def tar_bytes(entries: list[tuple[str, bytes]], mode: Literal["w", "w:gz"] = "w") -> bytes:
    """A tar of the entries; ``mode="w:gz"`` gzips it."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def streamed_stored_with_descriptor(entries: Iterable[tuple[str, bytes]]) -> bytes:
    """zipfile writing STORED entries to a non-seekable sink: data descriptors."""

    class Sink(io.RawIOBase):
        def __init__(self) -> None:
            self.data = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, b: Any) -> int:
            self.data += bytes(b)
            return len(b)

    sink = Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in entries:
            with zf.open(name, "w") as w:
                w.write(data)
    return bytes(sink.data)


__all__ = [
    "bare_bytes",
    "NO_COMPRESSION_64",
    "ZIP_32",
    "ZIP_64",
    "dataset",
    "dicom_bytes",
    "series_files",
    "stream_zip_bytes",
    "streamed_stored_with_descriptor",
    "tar_bytes",
    "zipfile_bytes",
]
