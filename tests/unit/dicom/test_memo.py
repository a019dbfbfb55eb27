"""The tree memo: an unchanged tree gets the last result back, exactly; any change,
however small, takes the full path again and gives what a fresh scan gives."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.dicom import AN_HOUR_AGO, age_tree
from xnat_tui.dicom import memo
from xnat_tui.dicom.model import ScanSummary
from xnat_tui.dicom.scan import scan, scan_all
from xnat_tui.dicom.walk import DirListing, walk

pytestmark = pytest.mark.skipif(not memo.available(), reason="the C lister was not compiled")

OLD = AN_HOUR_AGO  # the cache (and so the memo) ignores files modified just now


@pytest.fixture
def tree(aged_demo_copy: Path) -> Path:
    return aged_demo_copy


def _stats(summary: ScanSummary) -> dict[str, Any]:
    stats = dict(summary.to_json()["stats"])
    for volatile in ("elapsed", "rate", "reused"):
        stats.pop(volatile)
    return stats


def _layout(summary: ScanSummary) -> list[tuple[str, list[str], list[list[str]]]]:
    """Order matters to the user: sessions, their scans, each scan's files."""
    return [
        (
            s.study_instance_uid,
            list(s.scans),
            [[f.path_str for f in sc.files] for sc in s.scans.values()],
        )
        for s in summary.sessions
    ]


def _assert_same(got: ScanSummary, want: ScanSummary) -> None:
    assert got.sessions == want.sessions
    assert _layout(got) == _layout(want)
    assert got.problems == want.problems
    assert got.to_json()["sessions"] == want.to_json()["sessions"]
    assert [f.__class__ for s in got.sessions for f in s.files] == [
        f.__class__ for s in want.sessions for f in s.files
    ]


def _without_memo(monkeypatch: pytest.MonkeyPatch, fn: Callable[[], ScanSummary]) -> ScanSummary:
    with monkeypatch.context() as m:
        m.setattr(memo, "available", lambda: False)
        return fn()


def _reused_and_fresh(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[ScanSummary, ScanSummary]:
    """A rescan answered by the memo, and a scan reading every file (no cache, no memo)."""
    cache = tmp_path / "cache.sqlite3"
    scan_all([tree], cache_path=cache)
    again = scan_all([tree], cache_path=cache)
    assert again.reused
    return again, _without_memo(monkeypatch, lambda: scan_all([tree], use_cache=False))


def test_an_unchanged_tree_gets_the_last_result_back(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache.sqlite3"
    first = scan_all([tree], cache_path=cache)
    assert not first.reused
    again = scan_all([tree], cache_path=cache)
    assert again.reused
    # Exactly what the folder cache alone gives, counters included.
    cached = _without_memo(monkeypatch, lambda: scan_all([tree], cache_path=cache))
    assert not cached.reused
    _assert_same(again, cached)
    _assert_same(again, first)
    assert _stats(again) == _stats(cached)
    assert again.progress.files_cached == again.progress.files_parsed == 104
    assert again.progress.bytes_read == 0
    assert {p.kind for p in again.problems} >= {"junk", "not-dicom", "dicomdir"}
    assert any(s.routing for s in again.sessions)
    assert any(s.problems or any(sc.problems for sc in s.scans.values()) for s in again.sessions)


def test_files_are_unpacked_only_when_read(tree: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache.sqlite3"
    scan_all([tree], cache_path=cache)
    events = list(scan([tree], cache_path=cache))
    batch, summary = events
    assert isinstance(summary, ScanSummary) and summary.reused
    # Counts, sizes and the JSON of a session list need no file objects.
    summary.to_json()
    packed = [c for s in summary.sessions for sc in s.scans.values() for c in sc._pending or ()]
    assert packed and all(isinstance(c, memo.PackedFiles) for c in packed)
    assert all(c._parts is None for c in packed)
    # The batch carries the same files, built once and shared with the scans.
    assert batch.file_count == summary.progress.files_dicom
    by_path = {f.path_str: f for f in batch.files}
    assert all(by_path[f.path_str] is f for s in summary.sessions for f in s.files)


def test_instance_numbers_and_first_paths_match_the_full_path(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    again, fresh = _reused_and_fresh(tree, tmp_path, monkeypatch)
    for s, f in zip(again.sessions, fresh.sessions, strict=True):
        for a, b in zip(s.scans.values(), f.scans.values(), strict=True):
            assert a.instance_numbers == b.instance_numbers
            assert a.first_path() == b.first_path()
            assert (a.file_count, a.size) == (b.file_count, b.size)


def _first_dicom(root: Path) -> Path:
    return sorted(root.rglob("*.dcm"))[0]


def _touch(root: Path) -> None:
    os.utime(_first_dicom(root), (OLD + 5, OLD + 5))


def _grow(root: Path) -> None:
    path = _first_dicom(root)
    with open(path, "ab") as f:
        f.write(b"\0\0")
    os.utime(path, (OLD, OLD))  # same mtime, new size


def _add(root: Path) -> None:
    src = _first_dicom(root)
    shutil.copy2(src, src.with_name("copy-of-" + src.name))


def _remove(root: Path) -> None:
    _first_dicom(root).unlink()


def _rename(root: Path) -> None:
    src = _first_dicom(root)
    src.rename(src.with_name("renamed-" + src.name))


def _new_folder(root: Path) -> None:
    (_first_dicom(root).parent / "new-empty-folder").mkdir()


def _replace_folder(root: Path) -> None:
    # Same names, sizes and mtimes, but another folder (new inode).
    folder = _first_dicom(root).parent
    folder.rename(folder.with_name(folder.name + ".old"))
    shutil.copytree(folder.with_name(folder.name + ".old"), folder)
    shutil.rmtree(folder.with_name(folder.name + ".old"))


def _link_folder(root: Path) -> None:
    (root / "link-to-a-study").symlink_to(_first_dicom(root).parent, target_is_directory=True)


def _link_file(root: Path) -> None:
    (root / "link.dcm").symlink_to(_first_dicom(root))


def _broken_link(root: Path) -> None:
    (root / "broken").symlink_to(root / "nowhere")


def _hard_link(root: Path) -> None:
    src = _first_dicom(root)
    os.link(src, root / "hard-link.dcm")


def _fifo(root: Path) -> None:
    os.mkfifo(root / "a-fifo")


def _junk_folder(root: Path) -> None:
    (root / "__MACOSX").mkdir()
    shutil.copy2(_first_dicom(root), root / "__MACOSX" / "x.dcm")


CHANGES = [_touch, _grow, _add, _remove, _rename, _new_folder, _replace_folder]
# Trees the walk has to judge: they never keep a memo.
ODD = [_link_folder, _link_file, _broken_link, _hard_link, _fifo, _junk_folder]


@pytest.mark.parametrize("change", CHANGES + ODD, ids=lambda f: f.__name__.strip("_"))
def test_any_change_takes_the_full_path(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: Callable[[Path], None]
) -> None:
    cache = tmp_path / "cache.sqlite3"
    scan_all([tree], cache_path=cache)
    assert scan_all([tree], cache_path=cache).reused
    change(tree)
    after = scan_all([tree], cache_path=cache)
    assert not after.reused
    fresh = _without_memo(monkeypatch, lambda: scan_all([tree], use_cache=False))
    _assert_same(after, fresh)
    # The changed tree is remembered in turn, unless the walk had to judge it.
    third = scan_all([tree], cache_path=cache)
    assert third.reused == (change in CHANGES)
    _assert_same(third, fresh)


def test_recent_files_keep_no_memo(tree: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache.sqlite3"
    _add(tree)
    new = max(tree.rglob("copy-of-*"))
    os.utime(new, None)  # modified just now: it may still be being written
    scan_all([tree], cache_path=cache)
    assert not scan_all([tree], cache_path=cache).reused


def test_files_named_directly_and_missing_roots_keep_no_memo(tree: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache.sqlite3"
    for roots in ([_first_dicom(tree), tree], [tree, tmp_path / "missing"]):
        scan_all(roots, cache_path=cache)
        assert not scan_all(roots, cache_path=cache).reused


def test_other_roots_or_settings_are_other_memos(tree: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache.sqlite3"
    scan_all([tree], cache_path=cache, routing_patterns=[])
    assert scan_all([tree], cache_path=cache, routing_patterns=[]).reused
    study = _first_dicom(tree).parent.parent
    assert not scan_all([study], cache_path=cache, routing_patterns=[]).reused
    pattern = memo_pattern("StudyDescription", r"(?P<project>\w+)")
    with_pattern = scan_all([tree], cache_path=cache, routing_patterns=[pattern])
    assert not with_pattern.reused
    assert scan_all([tree], cache_path=cache, routing_patterns=[pattern]).reused
    assert scan_all([tree], cache_path=cache, routing_patterns=[]).reused


def memo_pattern(tag: str, regex: str) -> Any:
    from xnat_tui.dicom.routing import Pattern

    return Pattern(tag, regex)


def test_a_memo_from_other_code_is_not_used(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache.sqlite3"
    scan_all([tree], cache_path=cache)
    monkeypatch.setattr(memo, "code_stamp", lambda: [("collect.py", 1, 2)])
    assert not scan_all([tree], cache_path=cache).reused
    assert scan_all([tree], cache_path=cache).reused  # rewritten by this code


def test_a_cancelled_scan_keeps_no_memo(tree: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache.sqlite3"
    cancel = threading.Event()
    cancel.set()
    assert scan_all([tree], cache_path=cache, cancel=cancel).cancelled
    assert not scan_all([tree], cache_path=cache).reused


@pytest.mark.parametrize(
    "damage", ["garbage", "truncated", "empty", "other key", "bit flip", "last byte"]
)
def test_a_damaged_memo_is_ignored(tree: Path, tmp_path: Path, damage: str) -> None:
    cache = tmp_path / "cache.sqlite3"
    scan_all([tree], cache_path=cache)
    (path,) = Path(f"{cache}.trees").iterdir()
    data = path.read_bytes()
    n = int.from_bytes(data[:4], "little")
    if damage == "garbage":
        data = data[: 4 + n] + b"\x00garbage"
    elif damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "empty":
        data = b""
    elif damage in ("bit flip", "last byte"):
        # Deep inside: a patient name, a file's size... must not come back changed.
        at = len(data) - 1 if damage == "last byte" else (4 + n + len(data)) // 2
        data = data[:at] + bytes([data[at] ^ 0x04]) + data[at + 1 :]
    else:
        data = data[:4] + bytes([data[4] ^ 1]) + data[5:]
    path.write_bytes(data)
    assert not scan_all([tree], cache_path=cache).reused
    assert scan_all([tree], cache_path=cache).reused


def test_an_unwritable_cache_folder_only_costs_the_memo(tree: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache.sqlite3"
    Path(f"{cache}.trees").write_text("not a folder")
    first = scan_all([tree], cache_path=cache)
    again = scan_all([tree], cache_path=cache)
    assert not again.reused and again.progress.files_cached == first.progress.files_parsed


def test_the_record_is_what_check_tree_reads(tree: Path) -> None:
    record = memo.TreeRecord(time.time_ns())
    events = list(walk([tree], record=record))
    assert record.ok
    folders = [e.path for e in events if isinstance(e, DirListing)]
    assert sorted(record.paths) == sorted(set(folders))
    assert memo.check(record.paths, record.stamps) is None
    _touch(tree)
    assert memo.check(record.paths, record.stamps) is not None


def test_folders_read_by_a_failed_check_are_not_listed_again(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.unit.dicom.listing_spy import spy_on_c_lister

    record = memo.TreeRecord(time.time_ns())
    list(walk([tree], record=record))
    _add(tree)
    _touch(tree)
    prelisted = memo.check(record.paths, record.stamps)
    assert prelisted  # the leaf folders, the changed ones with their new listing
    leaves = set(prelisted)
    listed = spy_on_c_lister(monkeypatch)
    with_prelisted = list(walk([tree], prelisted=dict(prelisted)))
    assert listed and not leaves & set(listed)
    listed.clear()
    plain = list(walk([tree]))
    assert leaves <= set(listed)
    assert with_prelisted == plain


def test_trees_above_the_limit_keep_no_memo(tree: Path) -> None:
    record = memo.TreeRecord(time.time_ns(), limit=10)
    list(walk([tree], record=record))
    assert not record.ok and not record.stamps


def test_memos_and_rows_unused_for_months_are_pruned(tree: Path, tmp_path: Path) -> None:
    import sqlite3

    from xnat_tui.dicom.cache import PRUNE_DAYS

    cache = tmp_path / "cache.sqlite3"
    scan_all([tree], cache_path=cache)
    assert scan_all([tree], cache_path=cache).reused
    ancient = time.time() - (PRUNE_DAYS + 1) * 86400
    with sqlite3.connect(cache) as db:
        db.execute("UPDATE folders SET used = ?", (ancient,))
    memos = Path(f"{cache}.trees")
    (old_memo,) = memos.iterdir()
    os.utime(old_memo, (ancient, ancient))
    other = tmp_path / "other"
    shutil.copytree(_first_dicom(tree).parent, other)
    scan_all([other], cache_path=cache)  # writes, then prunes
    with sqlite3.connect(cache) as db:
        (n,) = db.execute("SELECT count(*) FROM folders").fetchone()
    assert n == 1
    assert not old_memo.exists() and len(list(memos.iterdir())) == 1  # other's
    assert not scan_all([tree], cache_path=cache).reused


def test_a_duplicate_that_could_not_be_compared_keeps_no_memo(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xnat_tui.dicom import checks

    cache = tmp_path / "cache.sqlite3"
    src = _first_dicom(tree)
    (tree / "zz-copies").mkdir()
    shutil.copy2(src, tree / "zz-copies" / "copy.dcm")

    def kinds(summary: ScanSummary) -> list[str]:
        return [p.kind for s in summary.sessions for p in s.problems if "duplicate" in p.kind]

    def unreadable(a: str, b: str) -> bool:
        raise PermissionError(13, "Permission denied")

    with monkeypatch.context() as m:
        m.setattr(checks, "_same_bytes", unreadable)
        first = scan_all([tree], cache_path=cache)
    assert kinds(first) == ["duplicate-conflict"]
    (problem,) = [p for s in first.sessions for p in s.problems if "duplicate" in p.kind]
    assert "could not be compared (Permission denied)" in problem.detail
    # Readable again: the comparison is made afresh, not taken from a memo.
    again = scan_all([tree], cache_path=cache)
    assert not again.reused and kinds(again) == ["duplicate-identical"]
    assert scan_all([tree], cache_path=cache).reused


def test_files_sharing_an_instance_number_keep_one_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files with one InstanceNumber sort by path text, whether or not a duplicate
    check looked at them ("b/c/y" sorts after "b-c/x" as text, before it as Path)."""
    import pydicom

    from xnat_tui.dicom.synthetic import SeriesSpec, write_study

    study = write_study(tmp_path / "src", patient_id="P1", series=[SeriesSpec("MR", 1, "T1", 1)])
    root = tmp_path / "t"
    for rel, sop in (("b-c/x.dcm", "1.2.3.4.1"), ("b/c/y.dcm", "1.2.3.4.2")):
        ds = pydicom.dcmread(study.paths[0])
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.InstanceNumber = 1
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(root / rel)
    for rel, copy in (("b-c/x.dcm", "z1/x.dcm"), ("b/c/y.dcm", "z2/y.dcm")):
        (root / copy).parent.mkdir()
        shutil.copy2(root / rel, root / copy)  # duplicates, compared at the end
    age_tree(root)
    cache = tmp_path / "cache.sqlite3"
    first = scan_all([root], cache_path=cache)
    again = scan_all([root], cache_path=cache)
    fresh = _without_memo(monkeypatch, lambda: scan_all([root], use_cache=False))
    assert again.reused
    want = [str(root / "b-c/x.dcm"), str(root / "b/c/y.dcm")]
    assert [[f.path_str for f in s.files] for s in (first.sessions + again.sessions)] == [
        want,
        want,
    ]
    _assert_same(again, fresh)


def test_what_an_upload_is_planned_from_is_the_same(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The upload planner's input (files, sizes, mtimes, headers) from a reused result."""
    from xnat_tui.transfer.source import from_dicom

    again, fresh = _reused_and_fresh(tree, tmp_path, monkeypatch)
    assert [from_dicom(s) for s in again.sessions] == [from_dicom(s) for s in fresh.sessions]


def test_an_unusable_routing_pattern_is_reported_on_every_scan(tree: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache.sqlite3"
    bad = memo_pattern("StudyDescription", "(unclosed")
    for _ in range(3):
        summary = scan_all([tree], cache_path=cache, routing_patterns=[bad])
        assert not summary.reused
        assert [p.kind for p in summary.problems].count("config") == 1


def test_memos_beyond_the_budget_go_least_recently_used_first(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xnat_tui.dicom import cache as cache_mod

    cache = tmp_path / "cache.sqlite3"
    memos = Path(f"{cache}.trees")
    # Four copies of one study: four memos of one size.
    roots = [tmp_path / f"copy{i}" for i in range(4)]
    for root in roots:
        shutil.copytree(_first_dicom(tree).parent, root)
    for i, root in enumerate(roots[:3]):
        scan_all([root], cache_path=cache)
        (newest,) = [f for f in memos.iterdir() if f.stat().st_mtime > OLD + 100]
        os.utime(newest, (OLD + i, OLD + i))  # used an hour ago, in this order
    (memos / "x.memo.1.2.tmp").write_bytes(b"left by a writer that died")
    os.utime(memos / "x.memo.1.2.tmp", (OLD, OLD))
    (size,) = {f.stat().st_size for f in memos.glob("*.memo")}
    monkeypatch.setattr(cache_mod, "MEMO_BUDGET", 3 * size + 100)
    scan_all([roots[3]], cache_path=cache)  # writes a fourth, then prunes
    assert len(list(memos.glob("*.memo"))) == 3 and not list(memos.glob("*.tmp"))
    assert not scan_all([roots[0]], cache_path=cache).reused  # the oldest went
    assert scan_all([roots[2]], cache_path=cache).reused
    monkeypatch.setattr(cache_mod, "MEMO_BUDGET", 1)
    scan_all([roots[1]], cache_path=cache)  # evicted above too: rewritten now
    # Beyond any budget, the memo just written stays.
    assert len(list(memos.glob("*.memo"))) == 1
    assert scan_all([roots[1]], cache_path=cache).reused
