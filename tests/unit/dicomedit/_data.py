"""Datasets shared by the DicomEdit tests (dicom.md §1.6 input)."""

from __future__ import annotations

from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from xnat_tui.dicom.dicomedit import Anonymizer, Script

VARS = {"project": "PROJ1", "subject": "SUBJ01", "session": "SUBJ01_MR1"}
MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


def vector_dataset() -> Dataset:
    ds = Dataset()
    ds.PatientName = "DOE^JANE"
    ds.PatientID = "MRN12345"
    ds.PatientBirthDate = "19700101"
    ds.StudyDescription = "BRAIN^ROUTINE"
    ds.SeriesDescription = "t1_mpr_1mm"
    ds.SeriesNumber = "5"
    ds.StudyDate = "20061214"
    ds.Modality = "MR"
    ds.ReferringPhysicianName = "HOUSE^G"
    ds.StudyInstanceUID = "1.2.840.113619.2.55.3.1"
    ds.SOPInstanceUID = "1.2.3.4.5.6"
    ds.SOPClassUID = MR_STORAGE
    items = []
    for uid in ("9.8.7", "9.8.8"):
        item = Dataset()
        item.ReferencedSOPClassUID = MR_STORAGE
        item.ReferencedSOPInstanceUID = uid
        items.append(item)
    items[0].add_new(0x00210010, "LO", "ACME")
    items[0].add_new(0x00211001, "LO", "acme private")
    ds.ReferencedImageSequence = Sequence(items)
    ds.add_new(0x00190010, "LO", "SIEMENS MR HEADER")
    ds.add_new(0x0019100C, "IS", "1000")
    ds.add_new(0x00291010, "OB", b"\x01\x02\x03\x04")
    return ds


def run(body: str, ds: Dataset | None = None, version: str = "6.1", **variables: str) -> Dataset:
    ds = ds if ds is not None else vector_dataset()
    script = Script.parse(f'version "{version}"\n{body}\n', "test")
    Anonymizer([script], {**VARS, **variables}, add_method_codes=False).apply(ds)
    return ds


def with_meta(ds: Dataset) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    return ds


def write_file(path: Path, ds: Dataset | None = None, *, pixels: bool = True) -> Path:
    """A Part 10 file of the vector dataset (tiny pixel data)."""
    ds = ds if ds is not None else vector_dataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    if pixels:
        ds.Rows = 4
        ds.Columns = 4
        ds.BitsAllocated = 16
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelRepresentation = 0
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.PixelData = bytes(range(32))
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
