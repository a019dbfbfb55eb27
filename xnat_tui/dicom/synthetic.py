"""Realistic synthetic DICOM for demos, tests and benchmarks (no real patient data).

Files are written with pydicom, carry the attributes a real scanner writes (UIDs,
patient/study/series identification, geometry, acquisition parameters per modality)
and tiny pixel data by default. UIDs are derived from the given seed strings, so the
same call writes the same files, which keeps demo data and test expectations stable.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

# A UID root under pydicom's registered prefix: valid, unique to synthetic data.
UID_ROOT = "1.2.826.0.1.3680043.8.498."

SOP_CLASSES: dict[str, str] = {
    "MR": "1.2.840.10008.5.1.4.1.1.4",  # MR Image Storage
    "CT": "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
    "PT": "1.2.840.10008.5.1.4.1.1.128",  # Positron Emission Tomography Image Storage
    "NM": "1.2.840.10008.5.1.4.1.1.20",  # Nuclear Medicine Image Storage
    "US": "1.2.840.10008.5.1.4.1.1.6.1",  # Ultrasound Image Storage
    "CR": "1.2.840.10008.5.1.4.1.1.1",  # Computed Radiography Image Storage
    "DX": "1.2.840.10008.5.1.4.1.1.1.1",  # Digital X-Ray Image Storage - Presentation
    "SC": "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
    "OT": "1.2.840.10008.5.1.4.1.1.7",  # OT images are stored as Secondary Capture
    "XA": "1.2.840.10008.5.1.4.1.1.12.1",  # X-Ray Angiographic Image Storage
}
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"

TRANSFER_SYNTAXES: dict[str, UID] = {
    "explicit": ExplicitVRLittleEndian,
    "implicit": ImplicitVRLittleEndian,
    "big": ExplicitVRBigEndian,
    "deflated": DeflatedExplicitVRLittleEndian,
}


def synthetic_uid(*parts: object) -> str:
    """A valid, deterministic UID for the given seed parts."""
    return str(generate_uid(prefix=UID_ROOT, entropy_srcs=[str(p) for p in parts]))


@dataclass
class SeriesSpec:
    """One series to write. Extra attributes go in ``extra`` by DICOM keyword."""

    modality: str = "MR"
    series_number: int | None = 1
    series_description: str = ""
    n_files: int = 3
    rows: int = 8
    columns: int = 8
    instance_numbers: Sequence[int] | None = None  # default 1..n_files
    sop_class_uid: str = ""  # default from the modality
    extra: dict[str, Any] = field(default_factory=dict)
    folder: str | None = None  # sub-folder for nested layouts; default "<n>_<desc>"
    series_instance_uid: str = ""  # default: derived from the study and number


@dataclass
class WrittenSeries:
    series_instance_uid: str
    series_number: int | None
    series_description: str
    modality: str
    paths: list[Path]


@dataclass
class WrittenStudy:
    """What ``write_study`` wrote: enough for a test to know the expected scan result."""

    study_instance_uid: str
    patient_id: str
    patient_name: str
    study_date: str
    study_description: str
    accession_number: str
    root: Path
    series: list[WrittenSeries]
    routing: tuple[str, str, str] | None = None  # expected (project, subject, session)

    @property
    def paths(self) -> list[Path]:
        return [p for s in self.series for p in s.paths]

    @property
    def modalities(self) -> list[str]:
        return sorted({s.modality for s in self.series})


@dataclass
class DemoTree:
    root: Path
    studies: list[WrittenStudy]
    junk: list[Path]  # non-DICOM files placed in the tree
    dicomdirs: list[Path]

    def study(self, patient_id: str) -> WrittenStudy:
        for s in self.studies:
            if s.patient_id == patient_id:
                return s
        raise KeyError(patient_id)


def _pixels(rows: int, columns: int, seed: int) -> bytes:
    # A gradient rather than zeros so compression/anonymization tests see real data.
    out = bytearray(rows * columns * 2)
    for i in range(rows * columns):
        v = (i * 7 + seed * 13) % 4096
        out[2 * i] = v & 0xFF
        out[2 * i + 1] = v >> 8
    return bytes(out)


def _modality_attributes(ds: Dataset, modality: str, index: int) -> None:
    if modality == "MR":
        ds.Manufacturer = "SYNTHETIC"
        ds.ManufacturerModelName = "Demo MR 3T"
        ds.MagneticFieldStrength = "3"
        ds.RepetitionTime = "2300"
        ds.EchoTime = "2.98"
        ds.FlipAngle = "9"
        ds.ScanningSequence = "GR\\IR"
        ds.SequenceVariant = "SK\\SP\\MP"
        ds.ImagingFrequency = "123.25"
    elif modality == "CT":
        ds.Manufacturer = "SYNTHETIC"
        ds.ManufacturerModelName = "Demo CT 64"
        ds.KVP = "120"
        ds.XRayTubeCurrent = 200
        ds.ConvolutionKernel = "STANDARD"
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
    elif modality == "PT":
        ds.Manufacturer = "SYNTHETIC"
        ds.ManufacturerModelName = "Demo PET/CT"
        ds.Units = "BQML"
        ds.DecayCorrection = "START"
        ds.SeriesType = "WHOLE BODY\\IMAGE"
        drug = Dataset()
        drug.Radiopharmaceutical = "Fluorodeoxyglucose"
        drug.RadionuclideTotalDose = "370000000"
        drug.RadionuclideHalfLife = "6586.2"
        ds.RadiopharmaceuticalInformationSequence = DicomSequence([drug])
        ds.RescaleIntercept = "0"
        ds.RescaleSlope = "1.5"
    elif modality in ("SC", "OT"):
        ds.ConversionType = "WSD"
    elif modality == "US":
        ds.Manufacturer = "SYNTHETIC"


def build_dataset(
    *,
    study: Mapping[str, Any],
    spec: SeriesSpec,
    series_uid: str,
    index: int,
    instance_number: int,
) -> Dataset:
    """One instance of a series as a pydicom Dataset (with file meta)."""
    sop_class = spec.sop_class_uid or SOP_CLASSES.get(spec.modality, SOP_CLASSES["OT"])
    sop_uid = synthetic_uid(series_uid, "sop", index, instance_number)

    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    image_type = ["ORIGINAL", "PRIMARY", "AXIAL"]
    if spec.modality in ("SC", "OT"):
        image_type = ["DERIVED", "SECONDARY"]
    ds.ImageType = image_type
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = study.get("StudyDate", "")
    ds.SeriesDate = study.get("StudyDate", "")
    ds.StudyTime = study.get("StudyTime", "")
    ds.SeriesTime = study.get("StudyTime", "")
    ds.AccessionNumber = study.get("AccessionNumber", "")
    ds.Modality = spec.modality
    ds.InstitutionName = "Synthetic Imaging Centre"
    ds.ReferringPhysicianName = "Referrer^Demo"
    ds.StudyDescription = study.get("StudyDescription", "")
    ds.SeriesDescription = spec.series_description
    ds.PatientName = study.get("PatientName", "")
    ds.PatientID = study.get("PatientID", "")
    ds.PatientBirthDate = study.get("PatientBirthDate", "19700101")
    ds.PatientSex = study.get("PatientSex", "O")
    ds.PatientAge = study.get("PatientAge", "050Y")
    ds.BodyPartExamined = study.get("BodyPartExamined", "")
    ds.SliceThickness = "1.0"
    ds.ProtocolName = spec.series_description
    ds.StudyInstanceUID = study["StudyInstanceUID"]
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = study.get("StudyID", "1")
    if spec.series_number is not None:
        ds.SeriesNumber = spec.series_number
    ds.InstanceNumber = instance_number
    ds.ImagePositionPatient = [0.0, 0.0, float(index)]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.FrameOfReferenceUID = synthetic_uid(study["StudyInstanceUID"], "for")
    ds.SliceLocation = float(index)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = spec.rows
    ds.Columns = spec.columns
    ds.PixelSpacing = [1.0, 1.0]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    _modality_attributes(ds, spec.modality, index)
    for key, value in study.get("extra", {}).items():
        setattr(ds, key, value)
    for key, value in spec.extra.items():
        setattr(ds, key, value)
    ds.PixelData = _pixels(spec.rows, spec.columns, index)

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "XNAT_TUI_SYNTH"
    ds.file_meta = meta
    return ds


def write_dataset(
    ds: Dataset, path: Path, *, transfer_syntax: str = "explicit", part10: bool = True
) -> Path:
    """Write ``ds``; ``part10=False`` writes a bare dataset (no preamble, no meta)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ts = TRANSFER_SYNTAXES[transfer_syntax]
    ds.file_meta.TransferSyntaxUID = ts
    if part10:
        ds.preamble = b"\0" * 128
        ds.save_as(path, enforce_file_format=True, implicit_vr=None, little_endian=None)
    else:
        if ts not in (ImplicitVRLittleEndian, ExplicitVRLittleEndian):
            raise ValueError("a bare dataset must be little endian")
        bare = Dataset(ds)  # copies the elements only, not file_meta
        bare.preamble = None
        bare.save_as(path, implicit_vr=ts == ImplicitVRLittleEndian, little_endian=True)
    return path


def write_series(
    dest: Path,
    study: Mapping[str, Any],
    spec: SeriesSpec,
    *,
    filename: str = "IM{index:04d}.dcm",
    transfer_syntax: str = "explicit",
    part10: bool = True,
) -> WrittenSeries:
    """Write one series into ``dest`` (created); ``filename`` may use {index}, {uid}."""
    series_uid = spec.series_instance_uid or synthetic_uid(
        study["StudyInstanceUID"], "series", spec.series_number, spec.series_description
    )
    numbers = list(spec.instance_numbers or range(1, spec.n_files + 1))
    paths: list[Path] = []
    for index, number in enumerate(numbers, start=1):
        ds = build_dataset(
            study=study, spec=spec, series_uid=series_uid, index=index, instance_number=number
        )
        name = filename.format(index=index, uid=ds.SOPInstanceUID, number=number)
        paths.append(write_dataset(ds, dest / name, transfer_syntax=transfer_syntax, part10=part10))
    return WrittenSeries(
        series_instance_uid=series_uid,
        series_number=spec.series_number,
        series_description=spec.series_description,
        modality=spec.modality,
        paths=paths,
    )


def _folder_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text) or "series"


def study_attributes(
    *,
    patient_id: str,
    patient_name: str = "",
    study_date: str = "20240115",
    study_time: str = "093000",
    study_description: str = "",
    accession_number: str = "",
    study_instance_uid: str = "",
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The study-level attributes shared by every file of a study."""
    uid = study_instance_uid or synthetic_uid("study", patient_id, study_date, study_description)
    return {
        "StudyInstanceUID": uid,
        "PatientID": patient_id,
        "PatientName": patient_name or f"Synthetic^{patient_id}",
        "StudyDate": study_date,
        "StudyTime": study_time,
        "StudyDescription": study_description,
        "AccessionNumber": accession_number,
        "StudyID": str(int(hashlib.sha1(uid.encode()).hexdigest()[:4], 16) % 1000),
        "extra": dict(extra or {}),
    }


def write_study(
    dest: Path,
    *,
    patient_id: str,
    series: Iterable[SeriesSpec],
    layout: str = "nested",
    patient_name: str = "",
    study_date: str = "20240115",
    study_time: str = "093000",
    study_description: str = "",
    accession_number: str = "",
    study_instance_uid: str = "",
    extra: Mapping[str, Any] | None = None,
    transfer_syntax: str = "explicit",
    routing: tuple[str, str, str] | None = None,
) -> WrittenStudy:
    """Write a study. ``layout``: "nested" (a folder per series) or "flat" (one folder).

    ``extra`` holds study-level attributes by keyword (e.g. StudyComments);
    ``routing`` only records what a scan is expected to propose.
    """
    study = study_attributes(
        patient_id=patient_id,
        patient_name=patient_name,
        study_date=study_date,
        study_time=study_time,
        study_description=study_description,
        accession_number=accession_number,
        study_instance_uid=study_instance_uid,
        extra=extra,
    )
    written: list[WrittenSeries] = []
    for spec in series:
        if layout == "nested":
            folder = spec.folder or _folder_name(
                f"{spec.series_number or 0}_{spec.series_description}"
            )
            out = write_series(dest / folder, study, spec, transfer_syntax=transfer_syntax)
        elif layout == "flat":
            # Flat exports usually name files after the SOP Instance UID.
            name = "{uid}.dcm"
            out = write_series(dest, study, spec, filename=name, transfer_syntax=transfer_syntax)
        else:
            raise ValueError(f"unknown layout {layout!r}")
        written.append(out)
    return WrittenStudy(
        study_instance_uid=study["StudyInstanceUID"],
        patient_id=study["PatientID"],
        patient_name=study["PatientName"],
        study_date=study_date,
        study_description=study_description,
        accession_number=accession_number,
        root=dest,
        series=written,
        routing=routing,
    )


def write_dicomdir(path: Path) -> Path:
    """A minimal (empty) DICOMDIR, as found at the root of exported media."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(DICOMDIR_SOP_CLASS)
    meta.MediaStorageSOPInstanceUID = UID(synthetic_uid("dicomdir", path.name))
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    ds.FileSetID = "SYNTHETIC"
    ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.FileSetConsistencyFlag = 0
    ds.DirectoryRecordSequence = DicomSequence([])
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


_LOCALIZER = ["ORIGINAL", "PRIMARY", "LOCALIZER"]


def _mr_brain(prefix: str) -> list[SeriesSpec]:
    return [
        SeriesSpec("MR", 1, "localizer", 3, extra={"ImageType": _LOCALIZER}),
        SeriesSpec("MR", 2, "T1_MPRAGE_sag", 8),
        SeriesSpec("MR", 3, "T2_FLAIR_ax", 6),
        SeriesSpec("MR", 4, "rsfMRI_BOLD", 5),
    ]


def write_demo_tree(dest: Path, *, rows: int = 16, columns: int = 16) -> DemoTree:
    """Write the demo tree used by ``xnat-tui sandbox demo-data``, the TUI demo and tests.

    Layout (all patients are fictional):
      nested/DEMO001/...   MR brain, one folder per series (with a localizer)
      nested/DEMO002/...   CT chest + a dose-report screen capture (burned-in PHI)
      flat/PETCT_DEMO003/  PET/CT study, every file in one folder
      routed/STUDY_A/      MR whose StudyComments carry ``Project: STUDY_A Subject: ...``
      routed/PILOT/        MR with ``xnat://PILOT/...`` in StudyDescription
      mixed/               two patients' studies interleaved in one folder
      cdrom/               DICOMDIR + extension-less files, as burned on media
      plus .DS_Store, Thumbs.db and README.txt junk.
    """

    def sized(specs: list[SeriesSpec]) -> list[SeriesSpec]:
        for s in specs:
            s.rows, s.columns = rows, columns
        return specs

    dest.mkdir(parents=True, exist_ok=True)
    studies: list[WrittenStudy] = []

    studies.append(
        write_study(
            dest / "nested" / "DEMO001" / "20240115_MR_Brain",
            patient_id="DEMO001",
            patient_name="Demo^Alice",
            study_date="20240115",
            study_time="091500",
            study_description="MR Brain w/o contrast",
            accession_number="ACC1001",
            series=sized(_mr_brain("DEMO001")),
            extra={"PatientSex": "F", "BodyPartExamined": "BRAIN"},
        )
    )
    studies.append(
        write_study(
            dest / "nested" / "DEMO002" / "20240220_CT_Chest",
            patient_id="DEMO002",
            patient_name="Demo^Bob",
            study_date="20240220",
            study_time="141000",
            study_description="CT Chest",
            accession_number="ACC1002",
            series=sized(
                [
                    SeriesSpec("CT", 1, "Topogram", 1, extra={"ImageType": _LOCALIZER}),
                    SeriesSpec("CT", 2, "Chest 1.0 B30f", 10),
                    SeriesSpec("CT", 3, "Chest 5.0 B70f lung", 4),
                    SeriesSpec(
                        "SC",
                        501,
                        "Dose Report",
                        1,
                        extra={
                            "BurnedInAnnotation": "YES",
                            "ImageType": ["DERIVED", "SECONDARY", "SCREEN SAVE"],
                        },
                    ),
                ]
            ),
            extra={"PatientSex": "M", "BodyPartExamined": "CHEST"},
        )
    )
    studies.append(
        write_study(
            dest / "flat" / "PETCT_DEMO003",
            layout="flat",
            patient_id="DEMO003",
            patient_name="Demo^Carol",
            study_date="20240305",
            study_time="080000",
            study_description="PET-CT Whole Body FDG",
            accession_number="ACC1003",
            series=sized(
                [
                    SeriesSpec("CT", 1, "CT WB 3.0", 6),
                    SeriesSpec("PT", 2, "PET WB AC", 6),
                    SeriesSpec("PT", 3, "PET WB NAC", 6),
                ]
            ),
        )
    )
    studies.append(
        write_study(
            dest / "routed" / "STUDY_A" / "SA_001",
            patient_id="SA_001",
            patient_name="StudyA^Subject1",
            study_date="20240410",
            study_time="103000",
            study_description="Research MR",
            accession_number="ACC2001",
            series=sized(_mr_brain("SA_001")[1:3]),
            extra={"StudyComments": "Project: STUDY_A Subject: SA_001 Session: SA_001_MR1"},
            routing=("STUDY_A", "SA_001", "SA_001_MR1"),
        )
    )
    # PIL_002, not PIL_001: the demo sandbox's prearchive holds PIL_001_MR1 from another
    # study, and the routed example should upload cleanly rather than show a conflict.
    studies.append(
        write_study(
            dest / "routed" / "PILOT" / "PIL_002",
            patient_id="PIL_002",
            patient_name="Pilot^Subject2",
            study_date="20240502",
            study_time="161500",
            study_description="xnat://PILOT/PIL_002/PIL_002_MR1",
            accession_number="ACC3001",
            series=sized(_mr_brain("PIL_002")[:2]),
            routing=("PILOT", "PIL_002", "PIL_002_MR1"),
        )
    )
    # Two studies written into one folder: grouping must not depend on folders.
    for pid, name, date in (
        ("DEMO004", "Demo^Dan", "20240601"),
        ("DEMO005", "Demo^Eve", "20240602"),
    ):
        studies.append(
            write_study(
                dest / "mixed",
                layout="flat",
                patient_id=pid,
                patient_name=name,
                study_date=date,
                study_description="MR Knee",
                accession_number=f"ACC{pid[-3:]}",
                series=sized(
                    [SeriesSpec("MR", 1, "PD_FS_cor", 4), SeriesSpec("MR", 2, "T1_sag", 4)]
                ),
            )
        )
    # Media export: DICOMDIR at the root, extension-less files in IMAGES/.
    cd_study = study_attributes(
        patient_id="DEMO006",
        patient_name="Demo^Frank",
        study_date="20240715",
        study_description="CR Hand",
        accession_number="ACC1006",
    )
    cd_spec = SeriesSpec("CR", 1, "Hand PA", 2, rows=rows, columns=columns)
    cd_series = write_series(dest / "cdrom" / "IMAGES", cd_study, cd_spec, filename="IM{index:06d}")
    studies.append(
        WrittenStudy(
            study_instance_uid=cd_study["StudyInstanceUID"],
            patient_id="DEMO006",
            patient_name="Demo^Frank",
            study_date="20240715",
            study_description="CR Hand",
            accession_number="ACC1006",
            root=dest / "cdrom" / "IMAGES",
            series=[cd_series],
        )
    )
    dicomdirs = [write_dicomdir(dest / "cdrom" / "DICOMDIR")]

    junk: list[Path] = []
    for rel, data in (
        ("README.txt", b"Synthetic demo DICOM written by xnat-tui. No real patient data.\n"),
        (".DS_Store", b"\0\0\0\1Bud1" + b"\0" * 64),
        ("nested/DEMO001/Thumbs.db", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 64),
        ("flat/PETCT_DEMO003/.DS_Store", b"\0\0\0\1Bud1" + b"\0" * 64),
    ):
        p = dest / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        junk.append(p)
    return DemoTree(root=dest, studies=studies, junk=junk, dicomdirs=dicomdirs)


def write_bulk_tree(
    dest: Path,
    n_files: int,
    *,
    files_per_series: int = 50,
    series_per_study: int = 4,
    rows: int = 8,
    columns: int = 8,
    private_bytes: int = 0,
    seed: str = "bulk",
) -> int:
    """Write ``n_files`` small files quickly (for benchmarks): PATIENT/STUDY/SERIES/IMnnnn.

    pydicom writes one template per series; instances are byte-patched copies with
    their own SOPInstanceUID and InstanceNumber (same-length values), which is ~50x
    faster than writing each file with pydicom. ``private_bytes`` adds a vendor-like
    private block, as real scanners do, so headers have realistic sizes.
    """
    import io

    written = 0
    series_index = 0
    modalities = ("MR", "CT", "PT", "MR")
    while written < n_files:
        study_index = series_index // series_per_study
        in_study = series_index % series_per_study
        pid = f"BULK{study_index:05d}"
        study = study_attributes(
            patient_id=pid,
            patient_name=f"Bulk^{study_index:05d}",
            study_date=f"2023{1 + study_index % 12:02d}{1 + study_index % 28:02d}",
            study_description="Synthetic bulk study",
            accession_number=f"BA{study_index:06d}",
            study_instance_uid=synthetic_uid(seed, "study", study_index),
        )
        modality = modalities[study_index % len(modalities)]
        spec = SeriesSpec(
            modality,
            in_study + 1,
            f"series_{in_study + 1}",
            1,
            rows=rows,
            columns=columns,
        )
        series_uid = synthetic_uid(seed, "series", series_index)
        count = min(files_per_series, n_files - written)
        # Fixed-width placeholders, replaced in the bytes of each copy.
        sop_stem = f"{UID_ROOT}{series_index + 1}.9"
        placeholder_uid = f"{sop_stem}.{'9' * 7}"
        ds = build_dataset(
            study=study, spec=spec, series_uid=series_uid, index=1, instance_number=999999
        )
        ds.SOPInstanceUID = placeholder_uid
        ds.file_meta.MediaStorageSOPInstanceUID = UID(placeholder_uid)
        if private_bytes:
            ds.private_block(0x0029, "SYNTHETIC CSA HEADER", create=True).add_new(
                0x10, "OB", bytes(private_bytes)
            )
        ds.preamble = b"\0" * 128
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        template = buf.getvalue()
        marker = b"\x20\x00\x13\x00IS\x06\x00999999"
        at = template.index(marker) + 8
        folder = (
            dest / pid / f"S{study_index:05d}" / f"{in_study + 1:03d}_{spec.series_description}"
        )
        folder.mkdir(parents=True, exist_ok=True)
        uid_bytes = placeholder_uid.encode()
        for i in range(1, count + 1):
            new_uid = f"{sop_stem}.{1_000_000 + i}".encode()  # no leading zero
            data = template.replace(uid_bytes, new_uid)
            data = data[:at] + f"{i:<6}".encode() + data[at + 6 :]
            (folder / f"IM{i:05d}.dcm").write_bytes(data)
        written += count
        series_index += 1
    return written
