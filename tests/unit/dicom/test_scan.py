"""The scanner end to end: layouts, grouping, streaming, cache, cancellation, async."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.dicom import DicomFactory, SmallTree
from xnat_tui.config import Defaults
from xnat_tui.dicom.model import ScanBatch, ScanSummary, Session
from xnat_tui.dicom.scan import ScanThread, scan, scan_all, scan_async
from xnat_tui.dicom.synthetic import DemoTree, SeriesSpec, write_bulk_tree


def _shape(sessions: list[Session]) -> list[Any]:
    """Everything the user sees about sessions and scans, minus file paths."""
    return [
        (
            s.study_instance_uid,
            s.patient_id,
            s.patient_name,
            s.study_date,
            s.study_description,
            s.accession_number,
            s.modalities,
            s.modality,
            s.routing,
            [
                (
                    sc.series_instance_uid,
                    sc.series_number,
                    sc.series_description,
                    sc.modality,
                    sc.file_count,
                    sc.size,
                    sc.instance_numbers,
                    sorted(f.sop_instance_uid for f in sc.files),
                    [(p.kind, p.detail.split(":")[0]) for p in sc.problems],
                )
                for sc in s.sorted_scans()
            ],
            [p.kind for p in s.problems],
        )
        for s in sessions
    ]


def _left_behind(before: set[int], within: float = 5.0) -> set[int]:
    """Worker processes started since ``before`` that are still alive after ``within`` s.

    Killed workers are reaped within milliseconds, but a machine running the suite on
    every core may take longer to schedule that; a worker really left behind would
    wait for work forever and still be there.
    """
    deadline = time.monotonic() + within
    while (left := _children() - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _children() -> set[int]:
    """Live descendant processes of this one that do work (read from /proc).

    multiprocessing's resource tracker and fork server live as long as this process,
    by design (idle, they exit with it); they are not workers, but the workers they
    fork are counted.
    """
    parent: dict[int, int] = {}
    helper: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if fields[0] == "Z":
            continue
        parent[int(entry)] = int(fields[1])
        helper_like = b"resource_tracker" in cmdline or b"forkserver" in cmdline
        if helper_like and int(fields[1]) == os.getpid():
            helper.add(int(entry))  # its forked workers share the cmdline but not the parent
    out: set[int] = set()
    frontier = {os.getpid()}
    while frontier:
        frontier = {pid for pid, ppid in parent.items() if ppid in frontier}
        out |= frontier
    return out - helper


def test_demo_tree_sessions_scans_and_routing(demo_tree: DemoTree) -> None:
    summary = scan_all(
        [demo_tree.root], use_cache=False, routing_patterns=Defaults().routing_patterns
    )
    assert not summary.cancelled
    by_pid = {s.patient_id: s for s in summary.sessions}
    assert set(by_pid) == {s.patient_id for s in demo_tree.studies}
    for written in demo_tree.studies:
        session = by_pid[written.patient_id]
        assert session.study_instance_uid == written.study_instance_uid
        assert session.file_count == len(written.paths)
        assert session.modalities == written.modalities
        assert {sc.series_instance_uid for sc in session.scans.values()} == {
            ws.series_instance_uid for ws in written.series
        }
        if written.routing:
            r = session.routing_proposal
            assert r is not None and (r.project, r.subject, r.session) == written.routing
        else:
            assert session.routing == []
    petct = by_pid["DEMO003"]
    assert petct.modality == "PT" and petct.modalities == ["CT", "PT"]
    assert petct.root == demo_tree.root / "flat" / "PETCT_DEMO003"
    assert by_pid["DEMO004"].root == by_pid["DEMO005"].root == demo_tree.root / "mixed"
    assert by_pid["DEMO001"].fields["StudyDate"] == "20240115"
    assert by_pid["DEMO001"].fields["Modality"] == "MR"
    assert {p.kind for p in summary.problems} == {"junk", "not-dicom", "dicomdir"}


def test_grouping_is_independent_of_file_order_and_layout(
    tmp_path: Path, dicom_tree: SmallTree
) -> None:
    nested = scan_all([dicom_tree.root], use_cache=False)
    # Same files, flat in one folder under random names, and given as a shuffled list.
    flat = tmp_path / "flat"
    flat.mkdir()
    paths = dicom_tree.paths
    rng = random.Random(7)
    rng.shuffle(paths)
    copies = []
    for i, p in enumerate(paths):
        copies.append(flat / f"{rng.randrange(10**9):09d}_{i}")
        shutil.copy(p, copies[-1])
    deep = tmp_path / "deep"
    for i, p in enumerate(paths):
        d = deep.joinpath(*[f"d{j}" for j in range(i % 25)])
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, d / f"f{i}.dcm")
    as_flat = scan_all([flat], use_cache=False)
    as_list = scan_all(list(reversed(copies)), use_cache=False)
    as_deep = scan_all([deep], use_cache=False)
    assert _shape(nested.sessions) == _shape(as_flat.sessions)
    assert _shape(nested.sessions) == _shape(as_list.sessions)
    assert _shape(nested.sessions) == _shape(as_deep.sessions)
    assert [s.patient_id for s in nested.sessions] == ["SUBJ01", "SUBJ02", "SUBJ03"]
    assert [len(s.scans) for s in nested.sessions] == [2, 1, 2]
    assert as_deep.sessions[0].root is not None


def test_results_stream_in_batches_with_progress(tmp_path: Path) -> None:
    write_bulk_tree(tmp_path / "bulk", 600, files_per_series=50)
    events = list(
        scan([tmp_path / "bulk"], use_cache=False, workers=2, batch_interval=0.01, chunk=32)
    )
    batches = [e for e in events if isinstance(e, ScanBatch)]
    summary = events[-1]
    assert isinstance(summary, ScanSummary)
    assert all(isinstance(e, ScanBatch) for e in events[:-1])
    assert len([b for b in batches if b.files]) >= 2, "results must arrive in several batches"
    assert sum(len(b.files) for b in batches) == 600
    parsed = [b.progress.files_parsed for b in batches]
    assert parsed == sorted(parsed)
    p = summary.progress
    assert (p.files_seen, p.files_parsed, p.files_dicom) == (600, 600, 600)
    assert p.walk_done and p.fraction == 1.0
    assert p.bytes_read > 0 and p.rate > 0
    assert sum(s.file_count for s in summary.sessions) == 600


def test_rescan_uses_the_cache_and_notices_changes(
    tmp_path: Path, dicom_tree: SmallTree, dicom_factory: DicomFactory
) -> None:
    cache = tmp_path / "cache.sqlite3"
    old = time.time() - 60  # the cache ignores files modified in the last seconds
    for p in dicom_tree.paths:
        os.utime(p, (old, old))
    first = scan_all([dicom_tree.root], cache_path=cache)
    assert first.progress.files_cached == 0
    second = scan_all([dicom_tree.root], cache_path=cache)
    assert second.progress.files_cached == len(dicom_tree.paths)
    assert second.progress.bytes_read == 0
    assert _shape(second.sessions) == _shape(first.sessions)

    # A rewritten file (new mtime) is read again; a new file is found.
    changed = dicom_tree.paths[0]
    changed.write_bytes(changed.read_bytes())
    os.utime(changed, (old + 5, old + 5))
    dicom_factory(dicom_tree.root / "new", patient_id="NEW")
    third = scan_all([dicom_tree.root], cache_path=cache)
    assert third.progress.files_cached == len(dicom_tree.paths) - 1
    assert "NEW" in {s.patient_id for s in third.sessions}


def test_a_broken_cache_file_does_not_break_the_scan(tmp_path: Path, dicom_tree: SmallTree) -> None:
    cache = tmp_path / "cache.sqlite3"
    cache.write_bytes(b"this is not sqlite" * 100)
    summary = scan_all([dicom_tree.root], cache_path=cache)
    assert len(summary.sessions) == 3


def test_cache_lives_in_the_xdg_cache_dir(dicom_tree: SmallTree) -> None:
    from xnat_tui.config import cache_dir

    scan_all([dicom_tree.root])
    assert (cache_dir() / "scan-cache.sqlite3").exists()


def test_cancel_mid_scan_leaves_no_worker_processes(tmp_path: Path) -> None:
    write_bulk_tree(tmp_path / "bulk", 3000, files_per_series=100)
    before = _children()
    cancel = threading.Event()
    events = []
    for event in scan(
        [tmp_path / "bulk"],
        use_cache=False,
        workers=2,
        cancel=cancel,
        batch_interval=0.01,
        chunk=16,
        inline_limit=0,
    ):
        events.append(event)
        if isinstance(event, ScanBatch) and event.progress.files_parsed > 0:
            assert _children() - before, "the pool should be running"
            cancel.set()
    summary = events[-1]
    assert isinstance(summary, ScanSummary) and summary.cancelled
    assert summary.progress.files_parsed < 3000
    assert _left_behind(before) == set()
    assert multiprocessing.active_children() == []


def test_a_killed_worker_does_not_lose_files(tmp_path: Path) -> None:
    import signal

    write_bulk_tree(tmp_path / "bulk", 2000, files_per_series=100)
    before = _children()
    killed = False
    summary = None
    for event in scan(
        [tmp_path / "bulk"],
        use_cache=False,
        workers=2,
        batch_interval=0.01,
        chunk=16,
        inline_limit=0,
    ):
        if not killed and isinstance(event, ScanBatch) and event.progress.files_parsed:
            os.kill(min(_children() - before), signal.SIGKILL)
            killed = True
        if isinstance(event, ScanSummary):
            summary = event
    assert killed and summary is not None
    assert summary.progress.files_dicom == 2000
    assert sum(s.file_count for s in summary.sessions) == 2000
    assert _left_behind(before) == set()


def test_closing_the_generator_also_kills_the_workers(tmp_path: Path) -> None:
    write_bulk_tree(tmp_path / "bulk", 2000, files_per_series=100)
    before = _children()
    gen = scan(
        [tmp_path / "bulk"],
        use_cache=False,
        workers=2,
        batch_interval=0.01,
        chunk=16,
        inline_limit=0,
    )
    for event in gen:
        if isinstance(event, ScanBatch) and event.progress.files_parsed > 0:
            break
    gen.close()
    assert _left_behind(before) == set()


async def test_async_scan_keeps_the_event_loop_responsive(tmp_path: Path) -> None:
    write_bulk_tree(tmp_path / "bulk", 2000, files_per_series=100)
    late: list[float] = []
    stop = False

    async def ticker() -> None:
        while not stop:
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            late.append(time.perf_counter() - t - 0.005)

    tick = asyncio.create_task(ticker())
    summary = None
    t0 = time.perf_counter()
    async for event in scan_async([tmp_path / "bulk"], use_cache=False, workers=2):
        if isinstance(event, ScanSummary):
            summary = event
    took = time.perf_counter() - t0
    stop = True
    await tick
    assert summary is not None and summary.progress.files_dicom == 2000
    # A scan running on the loop would keep it blocked for most of the scan. A busy
    # machine delays single ticks now and then, but not for most of the time.
    blocked = sum(x for x in late if x > 0.05)
    assert blocked < took / 2, f"event loop blocked {blocked:.2f} s of {took:.2f} s"
    assert max(late) < 1.0


async def test_async_scan_cancelled_by_breaking_out(tmp_path: Path) -> None:
    write_bulk_tree(tmp_path / "bulk", 2000, files_per_series=100)
    before = _children()
    agen = scan_async(
        [tmp_path / "bulk"],
        use_cache=False,
        workers=2,
        batch_interval=0.01,
        chunk=16,
        inline_limit=0,
    )
    async for event in agen:
        if isinstance(event, ScanBatch) and event.progress.files_parsed:
            break
    await agen.aclose()
    assert _left_behind(before) == set()


async def test_cancelling_the_consuming_task_stops_the_scan(tmp_path: Path) -> None:
    write_bulk_tree(tmp_path / "bulk", 2000, files_per_series=100)
    before = _children()
    started = asyncio.Event()

    async def consume() -> None:
        async for event in scan_async(
            [tmp_path / "bulk"],
            use_cache=False,
            workers=2,
            batch_interval=0.01,
            chunk=16,
            inline_limit=0,
        ):
            if isinstance(event, ScanBatch) and event.progress.files_parsed:
                started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _left_behind(before) == set()


def test_scan_thread_delivers_events_and_cancels(tmp_path: Path, dicom_tree: SmallTree) -> None:
    events: list[object] = []
    t = ScanThread([dicom_tree.root], events.append, use_cache=False).start()
    assert t.join(timeout=30)
    assert t.error is None and t.summary is not None
    assert isinstance(events[-1], ScanSummary)
    assert len(t.summary.sessions) == 3

    write_bulk_tree(tmp_path / "bulk", 2000, files_per_series=100)
    before = _children()
    started = threading.Event()

    def on_event(event: object) -> None:
        if isinstance(event, ScanBatch) and event.progress.files_parsed:
            started.set()
            t.cancel_event.wait(10)  # hold the scan until the test has cancelled it

    t = ScanThread(
        [tmp_path / "bulk"],
        on_event,
        use_cache=False,
        workers=2,
        batch_interval=0.01,
        chunk=16,
        inline_limit=0,
    )
    t.start()
    assert started.wait(30)
    t.cancel()
    assert t.join(timeout=30)
    assert t.summary is not None and t.summary.cancelled
    assert _left_behind(before) == set()


@pytest.mark.parametrize("layout", ["nested", "flat"])
def test_mixed_studies_in_one_folder(
    tmp_path: Path, dicom_factory: DicomFactory, layout: str
) -> None:
    for pid in ("A", "B", "C"):
        dicom_factory(
            tmp_path / "one",
            patient_id=pid,
            layout=layout,
            series=[SeriesSpec("MR", 1, f"T1_{pid}", 2)],
        )
    summary = scan_all([tmp_path / "one"], use_cache=False)
    assert [(s.patient_id, s.file_count) for s in summary.sessions] == [
        ("A", 2),
        ("B", 2),
        ("C", 2),
    ]


def test_a_huge_folder_is_listed_in_parts_and_cached_whole(
    tmp_path: Path, dicom_factory: DicomFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xnat_tui.dicom import walk

    monkeypatch.setattr(walk, "PART", 7)
    study = dicom_factory(tmp_path / "flat", layout="flat", series=[SeriesSpec("MR", 1, "T1", 30)])
    old = time.time() - 60
    for p in study.paths:
        os.utime(p, (old, old))
    parts = [e for e in walk.walk([tmp_path / "flat"]) if isinstance(e, walk.DirListing)]
    assert [len(p.files) for p in parts] == [7, 7, 7, 7, 2]
    assert [p.last for p in parts] == [False] * 4 + [True]

    cache = tmp_path / "cache.sqlite3"
    events = list(scan([tmp_path / "flat"], cache_path=cache, batch_interval=0))
    seen = [e.progress.files_seen for e in events if isinstance(e, ScanBatch)]
    assert seen[0] < 30, "progress must move before the whole folder is listed"
    again = scan_all([tmp_path / "flat"], cache_path=cache)
    assert again.progress.files_cached == 30
    assert again.sessions[0].file_count == 30


def test_scanner_and_workers_start_without_importing_pydicom() -> None:
    """pydicom costs ~0.3 s to import; the fast path must not pay it (CLI, workers)."""
    import subprocess
    import sys

    code = (
        "import sys, xnat_tui.dicom.scan, xnat_tui.dicom.worker, xnat_tui.commands.scan;"
        "sys.exit('pydicom' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
