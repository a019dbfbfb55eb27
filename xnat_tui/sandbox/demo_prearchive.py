"""Demo prearchive entries (called by ``demo.seed``): one of each state a triager meets.

* PILOT ``PIL_001_MR1`` — READY (MR, localizer + T1), waiting to be archived.
* PILOT ``PIL_900_MR1`` — CONFLICT: the archive already holds ``PIL_900_MR1`` with
  another StudyInstanceUID ("Invalid modification of session UID via archive process.").
* STUDY_A ``SA_004_MR1`` — ERROR: a failed archive attempt left it behind.
* STUDY_B ``SB_002_CT1`` — READY (CT).
* Unassigned ``ANON_7731`` — READY; no project could be derived from its headers.

Files are tiny synthetic DICOM written straight into the prearchive layout.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from xnat_tui.dicom.synthetic import (
    SeriesSpec,
    build_dataset,
    study_attributes,
    synthetic_uid,
    write_dataset,
)
from xnat_tui.sandbox.autobuild import build
from xnat_tui.sandbox.importer import scan_subdir
from xnat_tui.sandbox.prearchive_store import (
    PrearcFile,
    PrearchiveStore,
    make_timestamp,
    prearchive_of,
)
from xnat_tui.sandbox.store import Store

_ENTRIES: list[tuple[str, str, str, str, str, list[SeriesSpec], str, str]] = [
    # project, subject, label, status, study date, series, autoarchive, log
    (
        "PILOT",
        "PIL_001",
        "PIL_001_MR1",
        "READY",
        "20240402",
        [SeriesSpec("MR", 1, "localizer", 2), SeriesSpec("MR", 2, "T1_MPRAGE_sag", 3)],
        "Manual",
        "",
    ),
    (
        "PILOT",
        "PIL_900",
        "PIL_900_MR1",
        "CONFLICT",
        "20240119",
        [SeriesSpec("MR", 2, "T1_MPRAGE_sag", 2)],
        "Manual",
        "Invalid modification of session UID via archive process.",
    ),
    (
        "STUDY_A",
        "SA_004",
        "SA_004_MR1",
        "ERROR",
        "20240315",
        [SeriesSpec("MR", 3, "T2_FLAIR_ax", 2)],
        "AutoArchive",
        "Unable to move the session files into the archive.",
    ),
    (
        "STUDY_B",
        "SB_002",
        "SB_002_CT1",
        "READY",
        "20240220",
        [SeriesSpec("CT", 2, "Chest 1.0 B30f", 2)],
        "AutoArchiveOverwrite",
        "",
    ),
    (
        "",
        "ANON_7731",
        "ANON_7731",
        "READY",
        "20240501",
        [SeriesSpec("MR", 1, "t1_se_tra", 2)],
        "Manual",
        "",
    ),
]


def seed(store: Store, data_dir: Path) -> None:
    """Add the demo prearchive sessions (skipped when the prearchive has rows)."""
    pre = prearchive_of(store)
    if pre.sessions():
        return
    base = time.time() - 3600
    for n, (project, subject, label, status, date, series, code, log) in enumerate(_ENTRIES):
        _add(pre, base + n * 61.7, project, subject, label, status, date, series, code, log)


def _add(
    pre: PrearchiveStore,
    when: float,
    project: str,
    subject: str,
    label: str,
    status: str,
    study_date: str,
    series: list[SeriesSpec],
    autoarchive: str,
    log: str,
) -> None:
    study = study_attributes(
        patient_id=subject,
        patient_name=f"{subject}^Demo",
        study_date=study_date,
        study_description=f"{project or 'unknown'} prearchive demo",
    )
    s = pre.create(
        project=project,
        timestamp=make_timestamp(when),
        folder=label,
        name=label,
        subject=subject,
        tag=study["StudyInstanceUID"],
        scan_date=f"{study_date[:4]}-{study_date[4:6]}-{study_date[6:]}",
        scan_time="09:30:00.000",
        autoarchive=autoarchive,
        now=when,
    )
    for spec in series:
        series_uid = synthetic_uid(study["StudyInstanceUID"], "series", spec.series_number)
        scan = scan_subdir(str(spec.series_number or ""), series_uid)
        for index in range(1, spec.n_files + 1):
            ds = build_dataset(
                study=study, spec=spec, series_uid=series_uid, index=index, instance_number=index
            )
            record = PrearcFile(
                scan=scan,
                name=f"IM{index:04d}.dcm",
                sop_instance_uid=str(ds.SOPInstanceUID),
                sop_class_uid=str(ds.SOPClassUID),
                series_uid=series_uid,
                series_number=str(spec.series_number or ""),
                series_description=spec.series_description,
                modality=spec.modality,
                patient_id=subject,
                patient_name=str(ds.PatientName),
                size=0,
                md5="",
            )
            path = write_dataset(ds, pre.file_path(s, record))
            data = path.read_bytes()
            record.size, record.md5 = len(data), hashlib.md5(data).hexdigest()
            pre.add_file(s.id, record)
    build(pre, s)
    pre.update(s.id, status=status, lastmod=when + 30)
    if log:
        pre.log(s.id, log)
