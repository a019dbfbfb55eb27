from __future__ import annotations

import io
import os
from pathlib import Path

import pydicom

from xnat_tui.dicom.synthetic import SeriesSpec, write_study
from xnat_tui.transfer.anon import AnonymizerSet
from xnat_tui.transfer.journal import JobRecord
from xnat_tui.transfer.types import Compression, Destination, JobState, Overwrite


def job(profile: str) -> JobRecord:
    return JobRecord(
        "j1",
        0,
        0,
        "http://x",
        "alice",
        "P",
        "SUBJ",
        "SESS",
        "1.2",
        Destination.PROJECT,
        Overwrite.NONE,
        profile,
        Compression.STORED,
        True,
        False,
        "new",
        "",
        JobState.QUEUED,
        "",
        "",
        "",
        "",
        None,
        "",
        "",
        0,
        "",
    )


def test_basic_profile_runs_in_worker_processes_and_keeps_the_file(tmp_path: Path) -> None:
    study = write_study(
        tmp_path,
        patient_id="REAL_ID",
        patient_name="Real^Name",
        series=[SeriesSpec("MR", 1, "T1", 1)],
    )
    path = study.paths[0]
    original = path.read_bytes()
    anons = AnonymizerSet(workers=1)
    anons.add("P", "basic", [])
    transform = anons.transform_for(job("basic"))
    assert transform is not None and getattr(transform, "script_hashes", None)
    try:
        out = transform(path, original)
        pool = anons.pool()
        worker_pids = {p.pid for p in pool._processes.values()}  # type: ignore[union-attr]
    finally:
        anons.close()
    assert worker_pids and os.getpid() not in worker_pids
    ds = pydicom.dcmread(io.BytesIO(out))
    assert str(ds.PatientName) != "Real^Name" and ds.PatientID != "REAL_ID"
    assert path.read_bytes() == original


def test_same_input_gives_same_bytes(tmp_path: Path) -> None:
    study = write_study(tmp_path, patient_id="X", series=[SeriesSpec("CT", 1, "A", 1)])
    data = study.paths[0].read_bytes()
    anons = AnonymizerSet(workers=1)
    anons.add("P", "basic", [])
    t = anons.transform_for(job("basic"))
    assert t is not None
    try:
        assert t(study.paths[0], data) == t(study.paths[0], data)
    finally:
        anons.close()
    assert anons.transform_for(job("none")) is None
