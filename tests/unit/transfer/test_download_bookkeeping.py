"""A download job's bookkeeping costs the number of scans, not of files, and the final
check of the files on disk runs off the event loop.

A progress tick and every journal flush (one per 64 verified files) walked all of a
job's files: ~10 ms of the event loop each for a 100,000-file job, ~1,600 times over.
The final check stat()ed every file and fsynced every folder on the loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path

import pytest_asyncio

from xnat_tui.sandbox.server import SandboxServer
from xnat_tui.transfer.download import DownloadEngine, LocalFileSystem, _DownloadFile, _DownloadRun
from xnat_tui.transfer.journal import Journal
from xnat_tui.transfer.retry import RetryPolicy
from xnat_tui.transfer.types import JobState
from xnat_tui.workflow import download as dl
from xnat_tui.xnat.client import XnatClient
from xnat_tui.xnat.credentials import Credentials


class CountedFiles(list[_DownloadFile]):
    """A job's file list that counts the walks over it."""

    walks = 0

    def __iter__(self) -> Iterator[_DownloadFile]:
        CountedFiles.walks += 1
        return super().__iter__()


def _run(scans: int, per_scan: int) -> _DownloadRun:
    files = CountedFiles(
        _DownloadFile(f"scan{s}", i, f"/data/experiments/E/scans/{s}/resources/DICOM/files/{i}",
                      Path(f"/out/{s}/{i}.dcm"), 10 + i, "")
        for s in range(scans)
        for i in range(per_scan)
    )  # fmt: skip
    for pos, f in enumerate(files):
        f.pos = pos
    return _DownloadRun("J", "P/S/E", Path("/out"), JobState.SENDING, "", files)


def test_counts_follow_the_marks_without_walking_the_files() -> None:
    run = _run(scans=3, per_scan=50)
    assert run.bytes_total == 3 * sum(10 + i for i in range(50))
    assert run.scan_uri["scan1"] == "/data/experiments/E/scans/1/resources/DICOM/files"
    CountedFiles.walks = 0
    completed: list[str] = []
    for n, f in enumerate(list.__iter__(run.files), start=1):
        run.mark_done(f, "md5")
        run.mark_done(f, "md5")  # a second mark changes nothing
        assert run.progress() == (sum(10 + g.idx for g in run.files[:n]), n)
        completed += run.scans_complete
        run.scans_complete.clear()
        assert run.scans_done() == (n // 50, 3)
    assert completed == ["scan0", "scan1", "scan2"]
    run.mark_undone(run.files[70])
    assert run.progress()[1] == 149 and run.scans_done() == (2, 3)
    assert CountedFiles.walks == 0


def test_files_done_before_a_resume_count_from_the_start() -> None:
    files = [
        _DownloadFile("a", i, f"/r/a/files/{i}", Path(f"/o/{i}"), 100, "", done=i < 3)
        for i in range(3)
    ] + [_DownloadFile("b", 0, "/r/b/files/0", Path("/o/b0"), 7, "", done=False)]
    run = _DownloadRun("J", "L", Path("/o"), JobState.QUEUED, "", files)
    assert run.progress() == (300, 3)
    assert run.scans_done() == (1, 2)
    assert run.scans_complete == ["a"]  # journalled as sent at the next flush


class RecordingFileSystem(LocalFileSystem):
    """Notes the threads the final check ran in."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: set[int] = set()

    def size(self, path: Path) -> int | None:
        self.threads.add(threading.get_ident())
        return super().size(path)

    def sync_dirs(self, folders: Iterable[Path]) -> None:
        self.threads.add(threading.get_ident())
        super().sync_dirs(folders)


@pytest_asyncio.fixture
async def client(sandbox: SandboxServer) -> AsyncIterator[XnatClient]:
    async with XnatClient(Credentials(sandbox.url, "alice", "alice")) as c:
        yield c


def _engine(client: XnatClient, journal: Journal, fs: LocalFileSystem) -> DownloadEngine:
    return DownloadEngine(
        client,
        journal,
        server_url=client.server,
        username="alice",
        retry=RetryPolicy(attempts=2, base=0.0, cap=0.0, jitter=0.0),
        progress_interval=0.01,
        fs=fs,
    )


async def test_the_final_check_of_the_files_runs_off_the_event_loop(
    client: XnatClient, tmp_path: Path
) -> None:
    fs = RecordingFileSystem()
    plan = await dl.plan_request(
        client, project="PILOT", out=tmp_path / "out", sessions=["PIL_900_MR1"]
    )
    eng = _engine(client, Journal(tmp_path / "j.sqlite3"), fs)
    await eng.start(resume=False)
    states = await eng.wait(await eng.submit(plan.downloads))
    await eng.close()
    assert list(states.values()) == [JobState.VERIFIED]
    assert fs.threads and threading.get_ident() not in fs.threads


class HeldCheck(LocalFileSystem):
    """The final check waits in its thread until released."""

    def __init__(self) -> None:
        super().__init__()
        self.checking = threading.Event()
        self.release = threading.Event()

    def sync_dirs(self, folders: Iterable[Path]) -> None:
        self.checking.set()
        self.release.wait(10)
        super().sync_dirs(folders)


async def test_a_cancel_during_the_final_check_stands(client: XnatClient, tmp_path: Path) -> None:
    fs = HeldCheck()
    journal = Journal(tmp_path / "j.sqlite3")
    plan = await dl.plan_request(
        client, project="PILOT", out=tmp_path / "out", sessions=["PIL_900_MR1"]
    )
    eng = _engine(client, journal, fs)
    await eng.start(resume=False)
    [job] = await eng.submit(plan.downloads)
    await asyncio.to_thread(fs.checking.wait, 10)
    assert journal.job(job).state is JobState.VERIFYING
    [check] = [t for t in asyncio.all_tasks() if t.get_name() == f"download-verify-{job}"]
    assert eng.cancel(job) == [job]
    fs.release.set()
    await check  # the check ends after the cancel, and must not overwrite it
    states = await eng.wait([job])
    await eng.close()
    assert states == {job: JobState.CANCELLED}
    assert journal.job(job).state is JobState.CANCELLED
    assert "cancelled by the user; 7 of 7 file(s) complete" in journal.job(job).message
