"""A rescan of an unchanged archive reads nothing of it: its members' records come
from the rescan cache, keyed by the archive's (size, mtime, inode)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.fixtures.archives import make_archive
from xnat_tui.dicom.scan import scan_all
from xnat_tui.dicom.synthetic import SeriesSpec, WrittenStudy, write_study


def _old(path: Path) -> Path:
    # The cache never trusts files modified in the last seconds (still being written?).
    past = time.time() - 60
    os.utime(path, (past, past))
    return path


def _study(root: Path, pid: str = "RESCAN") -> WrittenStudy:
    return write_study(
        root, patient_id=pid, series=[SeriesSpec("MR", 1, "T1", 4), SeriesSpec("MR", 2, "T2", 3)]
    )


def _files(summary) -> list[tuple[str, int]]:  # type: ignore[no-untyped-def]
    return sorted(
        (str(f.path), f.size) for s in summary.sessions for sc in s.scans.values() for f in sc.files
    )


@pytest.mark.parametrize("name", ["s.zip", "s.tgz", "s.tar.xz", "nested.tar"])
def test_unchanged_archive_is_answered_by_the_cache(tmp_path: Path, name: str) -> None:
    study = _study(tmp_path / "src")
    if name == "nested.tar":
        inner = make_archive(study.root, tmp_path / "parts" / "inner.tgz")
        archive = make_archive([("inner.tgz", inner)], tmp_path / "in" / name)
    else:
        archive = make_archive(study.root, tmp_path / "in" / name)
    _old(archive)
    db = tmp_path / "cache.sqlite3"
    first = scan_all([tmp_path / "in"], cache_path=db)
    assert first.progress.bytes_read > 0 and first.progress.files_cached == 0
    again = scan_all([tmp_path / "in"], cache_path=db)
    assert again.progress.bytes_read == 0
    assert again.progress.files_cached == again.progress.files_seen == 7
    assert _files(again) == _files(first)
    assert [s.study_instance_uid for s in again.sessions] == [study.study_instance_uid]
    # Named directly, and a folder inside it as the root: the same row answers.
    direct = scan_all([archive], cache_path=db)
    assert direct.progress.bytes_read == 0 and _files(direct) == _files(first)


def test_a_replaced_archive_is_read_again(tmp_path: Path) -> None:
    a = _study(tmp_path / "a", "FIRST")
    b = _study(tmp_path / "b", "SECOND")
    archive = _old(make_archive(a.root, tmp_path / "in" / "s.zip"))
    db = tmp_path / "cache.sqlite3"
    scan_all([tmp_path / "in"], cache_path=db)
    stamp = archive.stat()
    # Same name, same mtime, (maybe) same size: another file (inode) all the same.
    replacement = make_archive(b.root, tmp_path / "new.zip")
    os.replace(replacement, archive)
    os.utime(archive, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    again = scan_all([tmp_path / "in"], cache_path=db)
    assert again.progress.bytes_read > 0
    assert [s.patient_id for s in again.sessions] == ["SECOND"]


def test_a_damaged_archive_is_never_remembered(tmp_path: Path) -> None:
    study = _study(tmp_path / "src")
    archive = make_archive(study.root, tmp_path / "in" / "s.tgz")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    _old(archive)
    db = tmp_path / "cache.sqlite3"
    first = scan_all([tmp_path / "in"], cache_path=db)
    again = scan_all([tmp_path / "in"], cache_path=db)
    assert [p.detail for p in again.all_problems] == [p.detail for p in first.all_problems]
    assert any(p.severity == "error" for p in again.all_problems)
