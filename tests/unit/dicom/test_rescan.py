"""The rescan cache: unchanged folders are answered whole; any change is read again.

The key is (path, size, mtime) per file. These tests change one thing at a time and
check that the rescan shows it, and that what is not changed comes from the cache.
They test the folder cache itself, so the tree memo above it (test_memo.py) is off.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from tests.fixtures.dicom import DicomFactory, SeriesSpec, SmallTree
from xnat_tui.dicom import memo, walk
from xnat_tui.dicom.cache import DirRecords, ScanCache, signature
from xnat_tui.dicom.model import ScanSummary
from xnat_tui.dicom.scan import scan_all, wanted_tags

OLD = time.time() - 3600  # the cache ignores files modified in the last seconds


@pytest.fixture(autouse=True)
def _no_tree_memo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memo, "available", lambda: False)


def _age(paths: list[Path], when: float = OLD) -> None:
    for p in paths:
        os.utime(p, (when, when))


def _files(summary: ScanSummary) -> dict[str, tuple[str, int | None, int]]:
    """path -> (SOPInstanceUID, InstanceNumber, size) of every file in every scan."""
    return {
        f.path_str: (f.sop_instance_uid, f.instance_number, f.size)
        for s in summary.sessions
        for sc in s.scans.values()
        for f in sc.files
    }


def _scan_of(summary: ScanSummary, path: Path) -> tuple[str, list[int]]:
    for s in summary.sessions:
        for sc in s.scans.values():
            if any(f.path_str == str(path) for f in sc.files):
                return sc.series_description, sc.instance_numbers
    raise AssertionError(f"{path} is in no scan")


def _row(cache: Path, folder: Path) -> DirRecords:
    want, _ = wanted_tags([])
    db = ScanCache(cache, signature(want))
    try:
        return db.lookup(str(folder))
    finally:
        db.close()


def test_unchanged_tree_comes_whole_from_the_cache(tmp_path: Path, dicom_tree: SmallTree) -> None:
    cache = tmp_path / "cache.sqlite3"
    _age(dicom_tree.paths)
    first = scan_all([dicom_tree.root], cache_path=cache, routing_patterns=[])
    second = scan_all([dicom_tree.root], cache_path=cache, routing_patterns=[])
    assert second.progress.files_cached == len(dicom_tree.paths)
    assert second.progress.bytes_read == 0
    assert _files(second) == _files(first)
    assert [(s.study_instance_uid, s.root, s.patient_id) for s in second.sessions] == [
        (s.study_instance_uid, s.root, s.patient_id) for s in first.sessions
    ]
    # A folder of one series is stored as an exact, single-context row.
    row = _row(cache, dicom_tree.paths[0].parent)
    assert row.exact and row.uniform >= 0
    assert sorted(n for n, _s, _m in row.stamps) == sorted(
        p.name for p in dicom_tree.paths[0].parent.iterdir()
    )


def test_a_file_rewritten_with_the_same_size_is_read_again(
    tmp_path: Path, dicom_tree: SmallTree
) -> None:
    cache = tmp_path / "cache.sqlite3"
    _age(dicom_tree.paths)
    scan_all([dicom_tree.root], cache_path=cache, routing_patterns=[])
    target = dicom_tree.paths[0]
    size = target.stat().st_size
    ds = pydicom.dcmread(target)
    assert str(ds.InstanceNumber) == "1"
    ds.InstanceNumber = 7  # "7 " takes the bytes of "1 ": the size does not change
    ds.save_as(target)
    assert target.stat().st_size == size
    _age([target], OLD + 5)  # only the mtime tells

    again = scan_all([dicom_tree.root], cache_path=cache, routing_patterns=[])
    assert again.progress.files_cached == len(dicom_tree.paths) - 1
    assert _files(again)[str(target)][1] == 7
    assert 7 in _scan_of(again, target)[1]


def test_a_file_with_a_new_size_and_the_old_mtime_is_read_again(
    tmp_path: Path, dicom_tree: SmallTree
) -> None:
    cache = tmp_path / "cache.sqlite3"
    _age(dicom_tree.paths)
    first = scan_all([dicom_tree.root], cache_path=cache, routing_patterns=[])
    target = dicom_tree.paths[0]  # instance 1: the scan's representative file
    before = target.stat()
    ds = pydicom.dcmread(target)
    ds.SeriesDescription = "T1w rewritten by a test"
    ds.save_as(target)
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))  # same mtime
    assert target.stat().st_size != before.st_size

    again = scan_all([dicom_tree.root], cache_path=cache, routing_patterns=[])
    assert again.progress.files_cached == len(dicom_tree.paths) - 1
    assert _scan_of(first, target)[0] == "T1w"
    assert _scan_of(again, target)[0] == "T1w rewritten by a test"


def test_added_and_removed_files_are_noticed(tmp_path: Path, dicom_tree: SmallTree) -> None:
    cache = tmp_path / "cache.sqlite3"
    _age(dicom_tree.paths)
    first = scan_all([dicom_tree.root], cache_path=cache, routing_patterns=[])
    folder = dicom_tree.paths[0].parent
    series = sorted(folder.iterdir())
    assert len(series) == 3

    # Added: a fourth instance of the series, in the same (otherwise unchanged) folder.
    ds = pydicom.dcmread(series[0])
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceNumber = 4
    added = folder / "added.dcm"
    ds.save_as(added)
    _age([added])
    again = scan_all([dicom_tree.root], cache_path=cache, routing_patterns=[])
    assert again.progress.files_cached == len(dicom_tree.paths)
    assert str(added) in _files(again) and str(added) not in _files(first)
    assert _scan_of(again, added)[1] == [1, 2, 3, 4]

    # Removed: the middle instance goes; the scan shrinks and reports the gap.
    removed = next(p for p in series if _files(first)[str(p)][1] == 2)
    removed.unlink()
    third = scan_all([dicom_tree.root], cache_path=cache, routing_patterns=[])
    assert str(removed) not in _files(third)
    assert _scan_of(third, added)[1] == [1, 3, 4]
    assert third.progress.files_cached == len(dicom_tree.paths)  # 3 - 1 + 1 + others
    gaps = [
        p
        for s in third.sessions
        for sc in s.scans.values()
        for p in sc.problems
        if p.kind == "instance-gap"
    ]
    assert len(gaps) == 1 and "2" in gaps[0].detail

    # And the row is exact again, so the next rescan takes the fast path.
    assert _row(cache, folder).exact


def test_a_folder_with_problem_files_round_trips(tmp_path: Path, dicom_tree: SmallTree) -> None:
    cache = tmp_path / "cache.sqlite3"
    folder = dicom_tree.paths[0].parent
    extra = [folder / "notes.txt", folder / "empty.dcm", folder / ".DS_Store"]
    extra[0].write_text("not an image\n")
    extra[1].write_bytes(b"")
    extra[2].write_bytes(b"\0\0\0\1Bud1")
    _age(dicom_tree.paths + extra)
    first = scan_all([dicom_tree.root], cache_path=cache, routing_patterns=[])
    second = scan_all([dicom_tree.root], cache_path=cache, routing_patterns=[])
    n = len(dicom_tree.paths) + len(extra)
    assert second.progress.files_cached == n
    assert [(p.path, p.kind, p.detail) for p in second.problems] == [
        (p.path, p.kind, p.detail) for p in first.problems
    ]
    assert {p.kind for p in second.problems} >= {"not-dicom", "empty", "junk"}
    assert _files(second) == _files(first)
    row = _row(cache, folder)
    assert row.exact and row.uniform == -1  # mixed folder: stored file by file


def test_recently_modified_files_are_not_trusted(tmp_path: Path, dicom_tree: SmallTree) -> None:
    cache = tmp_path / "cache.sqlite3"
    _age(dicom_tree.paths, time.time())  # just written: may still be being written
    scan_all([dicom_tree.root], cache_path=cache, routing_patterns=[])
    again = scan_all([dicom_tree.root], cache_path=cache, routing_patterns=[])
    assert again.progress.files_cached == 0


def test_a_row_in_another_order_is_still_used_and_rewritten(
    tmp_path: Path, dicom_tree: SmallTree
) -> None:
    """A listing order that changed (file system rebuilt, copied tree) costs one
    file-by-file rescan of the folder, which rewrites the row in the new order."""
    cache = tmp_path / "cache.sqlite3"
    _age(dicom_tree.paths)
    scan_all([dicom_tree.root], cache_path=cache, routing_patterns=[])
    folder = dicom_tree.paths[0].parent
    listing = next(e for e in walk.walk([folder]) if isinstance(e, walk.DirListing))

    want, _ = wanted_tags([])
    db = ScanCache(cache, signature(want))
    row = db.lookup(str(folder))
    assert row.stamps == listing.files
    shuffled = DirRecords(row.contexts, dict(reversed(list(row.entries.items()))))
    db.store(str(folder), shuffled, complete=True, listing=list(reversed(listing.files)))
    db.close()
    assert _row(cache, folder).stamps == list(reversed(listing.files))

    again = scan_all([dicom_tree.root], cache_path=cache, routing_patterns=[])
    assert again.progress.files_cached == len(dicom_tree.paths)
    assert _row(cache, folder).stamps == listing.files


def test_records_survive_dump_and_load() -> None:
    ctx = [{"StudyInstanceUID": "1.2", "SeriesInstanceUID": "1.2.3"}]
    uniform = DirRecords(
        ctx,
        stamps=[("a", 10, 1), ("b", 11, 2)],
        data=[("", "", 0, "1.2.3.1", "1"), ("", "", 0, "1.2.3.2", "2")],
        exact=True,
    )
    loaded = DirRecords.load(uniform.dump())
    assert loaded.uniform == 0 and loaded.insts == [1, 2] and loaded.exact
    assert loaded.entries == uniform.entries

    # InstanceNumber texts that would not survive as integers keep the general form.
    odd = DirRecords(
        ctx,
        stamps=[("a", 10, 1), ("b", 11, 2), ("c", 0, 3)],
        data=[
            ("", "", 0, "1.2.3.1", "007"),
            ("", "", 0, "1.2.3.2", ""),
            ("empty", "x", -1, "", ""),
        ],
    )
    again = DirRecords.load(odd.dump())
    assert again.uniform == -1 and not again.exact
    assert again.entries == odd.entries


def test_cached_files_are_built_on_demand_and_shared_with_the_batches(
    tmp_path: Path, dicom_tree: SmallTree
) -> None:
    from xnat_tui.dicom.model import ScanBatch
    from xnat_tui.dicom.scan import scan

    cache = tmp_path / "cache.sqlite3"
    _age(dicom_tree.paths)
    first = scan_all([dicom_tree.root], cache_path=cache, routing_patterns=[])
    events = list(scan([dicom_tree.root], cache_path=cache, routing_patterns=[]))
    summary = events[-1]
    assert isinstance(summary, ScanSummary)
    assert summary.progress.files_cached == len(dicom_tree.paths)

    def figures(s: ScanSummary) -> list[tuple[str, int, int, list[int]]]:
        return [
            (sc.series_instance_uid, sc.file_count, sc.size, sc.instance_numbers)
            for ses in s.sessions
            for sc in ses.sorted_scans()
        ]

    # Counts, sizes and instance numbers without building anything, then the files.
    assert figures(summary) == figures(first)
    batches = [e for e in events if isinstance(e, ScanBatch)]
    assert sum(b.file_count for b in batches) == len(dicom_tree.paths)
    in_scans = {id(f) for ses in summary.sessions for sc in ses.scans.values() for f in sc.files}
    in_batches = {id(f) for b in batches for f in b.files}
    assert in_scans == in_batches
    assert _files(summary) == _files(first)
    for ses in summary.sessions:
        for sc in ses.scans.values():
            numbers = [f.instance_number or 0 for f in sc.files]
            assert numbers == sorted(numbers), "built files keep the scan's order"


def test_duplicates_between_cached_folders_are_still_reported(
    tmp_path: Path, dicom_tree: SmallTree
) -> None:
    import shutil

    cache = tmp_path / "cache.sqlite3"
    folder = dicom_tree.paths[0].parent
    copy = folder.parent / (folder.name + " copy")
    shutil.copytree(folder, copy)
    _age([*dicom_tree.paths, *copy.iterdir()])
    first = scan_all([dicom_tree.root], cache_path=cache, routing_patterns=[])
    second = scan_all([dicom_tree.root], cache_path=cache, routing_patterns=[])
    assert second.progress.files_cached == len(dicom_tree.paths) + 3

    def dups(s: ScanSummary) -> list[tuple[str, str]]:
        return sorted(
            (p.kind, p.path)
            for ses in s.sessions
            for p in ses.problems
            if p.kind.startswith("duplicate-")
        )

    assert len(dups(first)) == 3
    assert dups(second) == dups(first)
    assert all(kind == "duplicate-identical" for kind, _ in dups(second))
    assert _files(second) == _files(first)


def test_a_folder_listed_in_parts_is_answered_whole_and_changes_are_seen(
    tmp_path: Path, dicom_factory: DicomFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(walk, "PART", 7)
    study = dicom_factory(tmp_path / "flat", layout="flat", series=[SeriesSpec("MR", 1, "T1", 30)])
    _age(study.paths)
    cache = tmp_path / "cache.sqlite3"
    first = scan_all([tmp_path / "flat"], cache_path=cache, routing_patterns=[])
    assert first.progress.files_cached == 0
    assert _row(cache, tmp_path / "flat").exact

    again = scan_all([tmp_path / "flat"], cache_path=cache, routing_patterns=[])
    assert again.progress.files_cached == 30
    assert _files(again) == _files(first)

    # A change in a late part: the parts held back so far are matched file by file.
    parts = [e for e in walk.walk([tmp_path / "flat"]) if isinstance(e, walk.DirListing)]
    late = tmp_path / "flat" / parts[3].files[0][0]
    _age([late], OLD + 5)
    third = scan_all([tmp_path / "flat"], cache_path=cache, routing_patterns=[])
    assert third.progress.files_cached == 29
    assert third.progress.files_dicom == 30
    assert _files(third) == _files(first)  # same content, read again
    fourth = scan_all([tmp_path / "flat"], cache_path=cache, routing_patterns=[])
    assert fourth.progress.files_cached == 30
