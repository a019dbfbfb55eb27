"""Every check of the scanner, on synthetic trees built with pydicom."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest

from tests.fixtures.dicom import DicomFactory
from xnat_tui.dicom.model import Problem, ProblemKind, ScanSummary
from xnat_tui.dicom.scan import scan_all
from xnat_tui.dicom.synthetic import SeriesSpec


def _scan(*paths: Path) -> ScanSummary:
    return scan_all(list(paths), use_cache=False, workers=1)


def _kinds(problems: list[Problem]) -> dict[str, str]:
    return {Path(p.path).name: p.kind for p in problems}


def test_bad_files_are_reported_by_reason_and_good_ones_still_scanned(
    tmp_path: Path, dicom_factory: DicomFactory
) -> None:
    spec = SeriesSpec("MR", 1, "T1", 2, rows=64, columns=64)
    study = dicom_factory(tmp_path / "in", series=[spec])
    good = study.paths[0].read_bytes()
    bad = tmp_path / "in" / "bad"
    bad.mkdir()
    (bad / "empty.dcm").write_bytes(b"")
    (bad / "cut100.dcm").write_bytes(good[:100])
    (bad / "cut140.dcm").write_bytes(good[:140])
    (bad / "cut300.dcm").write_bytes(good[:300])
    (bad / "cut_in_pixels.dcm").write_bytes(good[: len(good) - 1000])
    (bad / "garbage_after_dicm.dcm").write_bytes(
        b"\0" * 128 + b"DICM" + random.Random(1).randbytes(400)
    )
    (bad / "no_preamble.dcm").write_bytes(good[128:])
    # PatientID (LO, 2-byte length) -> pretend it is an OB-like long element of 2 GB.
    at = good.index(b"\x10\x00\x20\x00LO")
    (bad / "huge_length.dcm").write_bytes(
        good[:at] + b"\x10\x00\x20\x00UT\0\0\x00\x00\x00\x80" + good[at + 8 :]
    )
    (bad / "notes.txt").write_text("scan notes\n")
    (bad / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 300)
    (bad / "image.dcm.gz").write_bytes(b"\x1f\x8b\x08" + b"\0" * 300)
    (bad / "random.bin").write_bytes(random.Random(2).randbytes(2000))
    (bad / "folder.dcm").mkdir()  # a directory named like a file is walked, not read
    (bad / ".DS_Store").write_bytes(b"\0\0\0\1Bud1" + b"\0" * 100)
    (bad / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0" + b"\0" * 100)
    (bad / "._IM0001.dcm").write_bytes(b"\0\5\26\7" + b"\0" * 100)

    summary = _scan(tmp_path / "in")

    kinds = _kinds(summary.problems)
    assert kinds == {
        "empty.dcm": ProblemKind.EMPTY,
        "cut100.dcm": ProblemKind.NOT_DICOM,
        "cut140.dcm": ProblemKind.TRUNCATED,
        "cut300.dcm": ProblemKind.TRUNCATED,
        "cut_in_pixels.dcm": ProblemKind.TRUNCATED,
        "garbage_after_dicm.dcm": ProblemKind.CORRUPT,
        "no_preamble.dcm": ProblemKind.NOT_DICOM,
        "huge_length.dcm": ProblemKind.CORRUPT,
        "notes.txt": ProblemKind.NOT_DICOM,
        "photo.jpg": ProblemKind.NOT_DICOM,
        "image.dcm.gz": ProblemKind.NOT_DICOM,
        "random.bin": ProblemKind.NOT_DICOM,
        ".DS_Store": ProblemKind.JUNK,
        "Thumbs.db": ProblemKind.JUNK,
        "._IM0001.dcm": ProblemKind.JUNK,
    }
    by_name = {Path(p.path).name: p for p in summary.problems}
    assert "JPEG" in by_name["photo.jpg"].detail
    assert "gzip" in by_name["image.dcm.gz"].detail
    assert "text" in by_name["notes.txt"].detail
    assert ".DS_Store" in by_name[".DS_Store"].detail
    assert "preamble" in by_name["no_preamble.dcm"].detail
    assert by_name["notes.txt"].severity == "info"
    assert by_name["cut_in_pixels.dcm"].severity == "error"
    # The two good files are still there, in one session, and nothing was modified.
    assert [s.file_count for s in summary.sessions] == [2]
    assert study.paths[0].read_bytes() == good


def test_unreadable_and_vanished_files(
    tmp_path: Path, dicom_factory: DicomFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xnat_tui.dicom import walk, worker

    rec = worker.examine(str(tmp_path / "gone.dcm"), 1000, 0)
    assert rec[3] == ProblemKind.UNREADABLE and "vanished" in rec[4]

    study = dicom_factory(tmp_path / "in")
    locked_file = study.paths[0]
    locked_dir = tmp_path / "in" / "locked"
    locked_dir.mkdir()
    if os.geteuid() == 0:
        # Root ignores permission bits: make the OS calls fail the way they would.
        real_open, real_scandir = open, os.scandir

        def fake_open(path, *args, **kwargs):  # type: ignore[no-untyped-def]
            if Path(path) == locked_file:
                raise PermissionError(13, "Permission denied")
            return real_open(path, *args, **kwargs)

        def fake_scandir(path):  # type: ignore[no-untyped-def]
            # The walk lists folders through a descriptor where it can.
            where = os.readlink(f"/proc/self/fd/{path}") if isinstance(path, int) else path
            if Path(where) == locked_dir:
                raise PermissionError(13, "Permission denied")
            return real_scandir(path)

        monkeypatch.setattr(worker, "open", fake_open, raising=False)
        # The fake replaces os.scandir, which the C listing (_fastlist) does not use.
        monkeypatch.setenv("XNAT_TUI_PURE_WALK", "1")
        monkeypatch.setattr(walk.os, "scandir", fake_scandir)
        summary = _scan(tmp_path / "in")
    else:
        locked_file.chmod(0)
        locked_dir.chmod(0)
        try:
            summary = _scan(tmp_path / "in")
        finally:
            locked_dir.chmod(0o755)
            locked_file.chmod(0o644)
    by_name = {Path(p.path).name: p for p in summary.problems}
    assert by_name[locked_file.name].kind == ProblemKind.UNREADABLE
    assert "permission denied" in by_name[locked_file.name].detail
    assert by_name["locked"].kind == ProblemKind.UNREADABLE
    assert by_name["locked"].severity == "error"
    assert summary.sessions[0].file_count == len(study.paths) - 1


def test_broken_symlink_is_reported(tmp_path: Path, dicom_factory: DicomFactory) -> None:
    dicom_factory(tmp_path / "in")
    (tmp_path / "in" / "dangling.dcm").symlink_to(tmp_path / "nowhere.dcm")
    summary = _scan(tmp_path / "in")
    assert _kinds(summary.problems)["dangling.dcm"] == ProblemKind.UNREADABLE


def test_dicomdir_is_skipped_never_uploaded(demo_tree) -> None:  # type: ignore[no-untyped-def]
    summary = _scan(demo_tree.root / "cdrom")
    assert _kinds(summary.problems) == {"DICOMDIR": ProblemKind.DICOMDIR}
    files = [f.path.name for s in summary.sessions for f in s.files]
    assert sorted(files) == ["IM000001", "IM000002"]


def test_identical_copy_is_uploaded_once_and_reported(
    tmp_path: Path, dicom_factory: DicomFactory
) -> None:
    study = dicom_factory(tmp_path / "in" / "a", series=[SeriesSpec("MR", 1, "T1", 3)])
    shutil.copytree(tmp_path / "in" / "a", tmp_path / "in" / "b_copy")
    summary = _scan(tmp_path / "in")
    (session,) = summary.sessions
    assert session.file_count == 3
    assert all("b_copy" not in str(f.path) for f in session.files)  # smallest path kept
    dups = [p for p in session.problems if p.kind == ProblemKind.DUPLICATE_IDENTICAL]
    assert len(dups) == 3 and all(p.severity == "info" for p in dups)
    assert study.paths[0].name in dups[0].detail or "identical copy" in dups[0].detail


def test_conflicting_duplicate_is_an_error(tmp_path: Path, dicom_factory: DicomFactory) -> None:
    import pydicom

    study = dicom_factory(tmp_path / "in", series=[SeriesSpec("MR", 1, "T1", 2)])
    ds = pydicom.dcmread(study.paths[0])
    ds.SeriesDescription = "edited elsewhere"
    ds.save_as(tmp_path / "in" / "zz_other.dcm")
    summary = _scan(tmp_path / "in")
    (session,) = summary.sessions
    conflicts = [p for p in session.problems if p.kind == ProblemKind.DUPLICATE_CONFLICT]
    assert [Path(p.path).name for p in conflicts] == ["zz_other.dcm"]
    assert conflicts[0].severity == "error"
    assert session.file_count == 2


def test_several_patients_in_one_study(tmp_path: Path, dicom_factory: DicomFactory) -> None:
    uid = "1.2.826.0.1.3680043.8.498.777"
    dicom_factory(tmp_path / "a", patient_id="P1", study_instance_uid=uid)
    dicom_factory(
        tmp_path / "b",
        patient_id="P2",
        patient_name="Other^Name",
        study_instance_uid=uid,
        series=[SeriesSpec("MR", 2, "T2", 2)],
    )
    summary = _scan(tmp_path)
    (session,) = summary.sessions
    multi = [p for p in session.problems if p.kind == ProblemKind.MULTIPLE_PATIENTS]
    assert len(multi) == 2  # IDs and names
    assert "'P1'" in multi[0].detail and "'P2'" in multi[0].detail
    assert multi[0].severity == "error"


def test_mixed_modality_and_duplicate_series_numbers(
    tmp_path: Path, dicom_factory: DicomFactory
) -> None:
    uid_series = "1.2.826.0.1.3680043.8.498.55"
    dicom_factory(
        tmp_path / "in",
        series=[
            SeriesSpec("MR", 3, "first", 2),
            SeriesSpec("MR", 3, "second", 2),
            SeriesSpec("CT", 4, "part ct", 1, series_instance_uid=uid_series, folder="x"),
            SeriesSpec(
                "PT",
                4,
                "part pt",
                1,
                series_instance_uid=uid_series,
                folder="y",
                instance_numbers=[2],
            ),
        ],
    )
    summary = _scan(tmp_path / "in")
    (session,) = summary.sessions
    kinds = [p.kind for p in session.problems]
    assert kinds == [ProblemKind.DUPLICATE_SERIES_NUMBER]
    assert "'first'" in session.problems[0].detail and "'second'" in session.problems[0].detail
    mixed = session.scans[uid_series]
    assert [p.kind for p in mixed.problems] == [ProblemKind.MIXED_MODALITY]
    assert "CT, PT" in mixed.problems[0].detail


def test_instance_number_gaps(tmp_path: Path, dicom_factory: DicomFactory) -> None:
    dicom_factory(
        tmp_path / "in",
        series=[
            SeriesSpec("MR", 1, "gappy", 6, instance_numbers=[1, 2, 4, 7, 8, 9]),
            SeriesSpec("MR", 2, "complete", 3, instance_numbers=[5, 6, 7]),
        ],
    )
    summary = _scan(tmp_path / "in")
    (session,) = summary.sessions
    scans = {s.series_number: s for s in session.scans.values()}
    assert [p.kind for p in scans[1].problems] == [ProblemKind.INSTANCE_GAP]
    assert "3 instance(s) missing" in scans[1].problems[0].detail
    assert "3, 5-6" in scans[1].problems[0].detail
    assert scans[2].problems == []
    assert scans[1].instance_numbers == [1, 2, 4, 7, 8, 9]


def test_burned_in_phi_warnings(tmp_path: Path, dicom_factory: DicomFactory) -> None:
    dicom_factory(
        tmp_path / "in",
        series=[
            SeriesSpec("CT", 1, "Chest", 1),
            SeriesSpec("CT", 2, "Patient Protocol", 1),
            SeriesSpec("US", 3, "Abdomen", 1),
            SeriesSpec("MR", 4, "flagged", 1, extra={"BurnedInAnnotation": "YES"}),
            SeriesSpec("OT", 5, "clean capture", 1, extra={"BurnedInAnnotation": "NO"}),
        ],
    )
    summary = _scan(tmp_path / "in")
    (session,) = summary.sessions
    flagged = {
        s.series_number
        for s in session.scans.values()
        if any(p.kind == ProblemKind.BURNED_IN_PHI for p in s.problems)
    }
    assert flagged == {2, 3, 4}


def test_symlink_loops_and_hard_links_are_visited_once(
    tmp_path: Path, dicom_factory: DicomFactory
) -> None:
    study = dicom_factory(tmp_path / "in" / "data", series=[SeriesSpec("MR", 1, "T1", 2)])
    (tmp_path / "in" / "data" / "loop").symlink_to(tmp_path / "in", target_is_directory=True)
    (tmp_path / "in" / "alias").symlink_to(tmp_path / "in" / "data", target_is_directory=True)
    os.link(study.paths[0], tmp_path / "in" / "hardlink.dcm")
    summary = _scan(tmp_path / "in", tmp_path / "in" / "data")  # overlapping roots too
    (session,) = summary.sessions
    assert session.file_count == 2
    assert summary.progress.files_seen == 2
    assert not [p for p in session.problems if p.kind.startswith("duplicate")]
    loops = [p for p in summary.problems if p.kind == ProblemKind.SYMLINK_LOOP]
    assert {Path(p.path).name for p in loops} == {"loop", "alias"}


def test_duplicate_reports_do_not_depend_on_scan_order(
    tmp_path: Path, dicom_factory: DicomFactory
) -> None:
    dicom_factory(tmp_path / "a", series=[SeriesSpec("MR", 1, "T1", 2)])
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.copytree(tmp_path / "a", tmp_path / "c")
    forward = _scan(tmp_path / "a", tmp_path / "b", tmp_path / "c")
    backward = _scan(tmp_path / "c", tmp_path / "b", tmp_path / "a")

    def details(summary: ScanSummary) -> list[tuple[str, str]]:
        return [(p.path, p.detail) for s in summary.sessions for p in s.problems]

    assert details(forward) == details(backward)
    (session,) = forward.sessions
    assert len(session.problems) == 4
    assert all(str(tmp_path / "a") in p.detail for p in session.problems)
    assert {f.path.parent for f in session.files} == {tmp_path / "a" / "1_T1"}
