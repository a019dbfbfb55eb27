"""The download engine against the sandbox: verified per-file downloads, resume, faults."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import sqlite3
import threading
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any, BinaryIO

import pytest
import pytest_asyncio

from tests.fixtures.md5_lanes import lanes_per_call
from xnat_tui.sandbox.server import SandboxServer
from xnat_tui.sandbox.store import Store
from xnat_tui.transfer import download
from xnat_tui.transfer.download import PART, DownloadEngine, LocalFileSystem
from xnat_tui.transfer.events import JobProgress, JobStateChanged
from xnat_tui.transfer.journal import Journal
from xnat_tui.transfer.kinds import JobKind
from xnat_tui.transfer.retry import RetryPolicy
from xnat_tui.transfer.types import JobState
from xnat_tui.workflow import download as dl
from xnat_tui.workflow.jobs import builder_for
from xnat_tui.workflow.upload import job_report
from xnat_tui.xnat import download_ops, md5
from xnat_tui.xnat.client import XnatClient
from xnat_tui.xnat.credentials import Credentials

FAST = RetryPolicy(attempts=4, base=0.0, cap=0.0, jitter=0.0)


@pytest_asyncio.fixture
async def client(sandbox: SandboxServer) -> AsyncIterator[XnatClient]:
    async with XnatClient(Credentials(sandbox.url, "alice", "alice")) as c:
        yield c


def server_files(sandbox: SandboxServer, label: str) -> dict[str, bytes]:
    return archive_bytes(sandbox.store, label)


def archive_bytes(store: Store, label: str) -> dict[str, bytes]:
    """scan id/name → bytes of an archived session, straight from the sandbox's store."""
    row = next(r for r in store.list_experiments() if r["label"] == label)
    out: dict[str, bytes] = {}
    for scan in store.list_scans(row["id"]):
        for res in store.list_resources(row["id"], int(scan["pk"])):
            for f in store.list_files(int(res["id"])):
                out[f"{scan['scan_id']}/{f['name']}"] = store.file_path(f).read_bytes()
    return out


def corrupt_a_file(store: Store, label: str) -> str:
    """Flips the last byte of a session's first file on the server, keeping its size
    and its listed digest: only the MD5 can tell. Its key, as :func:`archive_bytes`'."""
    row = next(r for r in store.list_experiments() if r["label"] == label)
    scan = store.list_scans(row["id"])[0]
    res = store.list_resources(row["id"], int(scan["pk"]))[0]
    stored = store.file_path(store.list_files(int(res["id"]))[0])
    data = bytearray(stored.read_bytes())
    data[-1] ^= 0xFF
    stored.write_bytes(bytes(data))
    return f"{scan['scan_id']}/{stored.name}"


def local_files(out: Path) -> dict[str, bytes]:
    """The same keys from an xnat-layout download folder."""
    found: dict[str, bytes] = {}
    for p in out.rglob("*"):
        if p.is_file():
            scan = p.relative_to(out).parts[2].split("-", 1)[0]
            found[f"{scan}/{p.name}"] = p.read_bytes()
    return found


async def pilot_plan(client: XnatClient, out: Path) -> dl.DownloadPlan:
    """The plan most tests download: session PIL_900_MR1 (7 files in 2 scans) into ``out``."""
    return await dl.plan_request(client, project="PILOT", out=out, sessions=["PIL_900_MR1"])


def engine(client: XnatClient, journal: Journal, **kw: object) -> DownloadEngine:
    return DownloadEngine(
        client,
        journal,
        server_url=client.server,
        username="alice",
        retry=FAST,
        progress_interval=0.01,
        **kw,  # type: ignore[arg-type]
    )


async def started(client: XnatClient, tmp_path: Path) -> DownloadEngine:
    """An engine on a journal of its own in ``tmp_path``, running, with nothing queued."""
    eng = engine(client, Journal(tmp_path / "j.sqlite3"))
    await eng.start(resume=False)
    return eng


async def run_plan(eng: DownloadEngine, plan: dl.DownloadPlan) -> dict[str, JobState]:
    await eng.start(resume=False)
    ids = await eng.submit(plan.downloads)
    return await eng.wait(ids)


async def test_a_session_arrives_byte_for_byte_verified_by_md5(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path
) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    out = tmp_path / "out"
    plan = await pilot_plan(client, out)
    assert plan.files == 7
    eng = engine(client, journal)
    events: list[object] = []
    stream = eng.subscribe()
    states = await run_plan(eng, plan)
    stream.close()
    events = [e async for e in stream]
    await eng.close()
    assert list(states.values()) == [JobState.VERIFIED]
    assert local_files(out) == server_files(sandbox, "PIL_900_MR1")
    assert not list(out.rglob(f"*{PART}"))
    job = journal.jobs(kinds=[JobKind.DOWNLOAD])[0]
    assert "7 file(s) verified (7 by MD5)" in job.message
    assert len(journal.done_files(job.id)) == 7
    assert all(len(d) == 32 for d in journal.done_files(job.id).values())
    changes = [e for e in events if isinstance(e, JobStateChanged)]
    assert changes and all(e.kind is JobKind.DOWNLOAD for e in changes)
    # The first path is XNAT's own zip layout.
    first = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.dcm"))[0]
    assert first.startswith("PIL_900_MR1/scans/1-localizer/resources/DICOM/files/")
    # Its receipt speaks of a download, not of an upload's destination and sent series.
    report = job_report(journal, job.id)
    assert f"downloaded into {out}" in report and "destination" not in report
    series = report.split("Series:")[1].split("Log:")[0].split("\n")
    assert [line.split()[-1] for line in series if line.strip()] == ["received", "received"]
    assert " fetch end " in report and "sending" not in report and " send " not in report


async def test_a_rerun_skips_verified_files_and_replaces_a_damaged_one(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    plan = await dl.plan_request(client, project="PILOT", out=out, scan_types=["T1_MPRAGE_sag"])
    assert plan.files == 4
    eng = engine(client, Journal(tmp_path / "j.sqlite3"))
    assert list((await run_plan(eng, plan)).values()) == [JobState.VERIFIED]
    await eng.close()
    damaged = sorted(out.rglob("*.dcm"))[0]
    damaged.write_bytes(b"\0" * damaged.stat().st_size)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.dcm") if p != damaged}
    eng = engine(client, Journal(tmp_path / "j.sqlite3"))  # a second run of the command
    assert list((await run_plan(eng, plan)).values()) == [JobState.VERIFIED]
    await eng.close()
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.dcm") if p != damaged} == before
    assert local_files(out) == {
        k: v for k, v in server_files(sandbox, "PIL_900_MR1").items() if k.startswith("2/")
    }


async def test_a_rerun_fetches_again_a_file_the_listing_gives_no_digest_for(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path
) -> None:
    """Without an MD5 nothing tells a file already there (same size, other bytes) from
    the server's: it is fetched again, never kept as verified."""
    out = tmp_path / "out"
    plan = await dl.plan_request(client, project="PILOT", out=out, scan_types=["T1_MPRAGE_sag"])
    plans = _without(plan.downloads, digest="")
    for n in (1, 2):
        eng = engine(client, Journal(tmp_path / "j.sqlite3"))
        await eng.start(resume=False)
        states = await eng.wait(await eng.submit(plans))
        await eng.close()
        assert list(states.values()) == [JobState.VERIFIED]
        assert "4 by size only" in eng.journal.jobs()[-1].message
        if n == 1:
            altered = sorted(out.rglob("*.dcm"))[0]
            altered.write_bytes(b"\0" * altered.stat().st_size)
    assert local_files(out) == {
        k: v for k, v in server_files(sandbox, "PIL_900_MR1").items() if k.startswith("2/")
    }


# Threaded: blocking connections in worker threads (the default); on the loop: the
# client's aiohttp session (used behind a proxy).
BOTH_PATHS = pytest.mark.parametrize("threaded", [True, False], ids=["threads", "loop"])
# Threads taking one file per hop, or chains of 3 (PIL_900_MR1's 7 files with one
# worker, 2 slots: chained while 6 are left), or the event loop's aiohttp path.
ALL_PATHS = pytest.mark.parametrize(
    ("threaded", "chain"),
    [(True, 1), (True, 3), (False, 1)],
    ids=["threads", "chains", "loop"],
    indirect=["chain"],
)


@pytest.fixture
def chain(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(download, "CHAIN", request.param)
    return int(request.param)


@ALL_PATHS
async def test_dropped_connections_and_5xx_are_retried_and_ranges_resume(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path, threaded: bool, chain: int
) -> None:
    out = tmp_path / "out"
    plan = await pilot_plan(client, out)
    sandbox.faults.configure("cut=0.4,error=503:0.2,ranges,only=/data/experiments,seed=3")
    jobs = 1 if chain > 1 else 8
    eng = engine(client, Journal(tmp_path / "j.sqlite3"), threaded=threaded, concurrency=jobs)
    assert list((await run_plan(eng, plan)).values()) == [JobState.VERIFIED]
    await eng.close()
    assert sandbox.faults.stats["cut"] > 0 and sandbox.faults.stats["error-503"] > 0
    assert local_files(out) == server_files(sandbox, "PIL_900_MR1")


async def test_every_body_cut_fails_cleanly_with_parts_only(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    plan = await dl.plan_request(client, project="STUDY_A", out=out)
    sandbox.faults.configure("cut")
    eng = engine(client, Journal(tmp_path / "j.sqlite3"))
    states = await run_plan(eng, plan)
    await eng.close()
    assert list(states.values()) == [JobState.FAILED]
    job = eng.journal.jobs(kinds=[JobKind.DOWNLOAD])[0]
    assert "5 of 5 file(s) failed" in job.message and "gave up after 4 tries" in job.message
    assert not [p for p in out.rglob("*") if p.is_file() and not p.name.endswith(PART)]
    # What arrived before each cut (about half) is kept, for the resume to continue.
    listed = {f.local: f.size or 0 for d in plan.downloads for f in d.files}
    parts = {p.with_suffix(""): p.stat().st_size for p in out.rglob(f"*{PART}")}
    assert sorted(parts) == sorted(listed)
    assert all(0 < parts[p] < listed[p] for p in parts)
    # The Range switch lets the retry continue the .part files where they stopped.
    sandbox.faults.configure("ranges")
    eng = engine(client, Journal(eng.journal.path))
    await eng.start(resume=False)
    assert await eng.retry(job.id) == [job.id]
    assert (await eng.wait([job.id]))[job.id] is JobState.VERIFIED
    await eng.close()
    assert not list(out.rglob(f"*{PART}"))


@ALL_PATHS
async def test_an_expired_session_is_renewed_mid_download(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path, threaded: bool, chain: int
) -> None:
    out = tmp_path / "out"
    plan = await dl.plan_request(client, project="PILOT", out=out)
    sandbox.faults.configure("expire-sessions=0.3,seed=1")
    eng = engine(client, Journal(tmp_path / "j.sqlite3"), concurrency=1, threaded=threaded)
    assert list((await run_plan(eng, plan)).values()) == [JobState.VERIFIED]
    await eng.close()
    assert sandbox.faults.stats["expire-sessions"] > 0 and client.relogins > 0


class FullDisk(LocalFileSystem):
    """Room for ``budget`` bytes, then ENOSPC, like a disk that fills up."""

    def __init__(self, budget: int) -> None:
        super().__init__()
        self.budget = budget

    def open_part(self, path: Path, *, append: bool) -> BinaryIO:
        handle = super().open_part(path, append=append)
        fs = self

        class Limited:
            def write(self, data: bytes) -> int:
                if len(data) > fs.budget:
                    raise OSError(errno.ENOSPC, "No space left on device")
                fs.budget -= len(data)
                return handle.write(data)

            def __getattr__(self, name: str) -> object:
                return getattr(handle, name)

        return Limited()  # type: ignore[return-value]


async def test_a_full_disk_stops_the_job_with_a_clear_message(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    plan = await pilot_plan(client, out)
    one = plan.downloads[0].files[0].size or 0
    eng = engine(client, Journal(tmp_path / "j.sqlite3"), fs=FullDisk(one * 2), concurrency=1)
    states = await run_plan(eng, plan)
    await eng.close()
    assert list(states.values()) == [JobState.FAILED]
    job = eng.journal.jobs(kinds=[JobKind.DOWNLOAD])[0]
    assert "the local disk is full" in job.message and "transfers retry" in job.message
    complete = [p for p in out.rglob("*") if p.is_file() and not p.name.endswith(PART)]
    assert len(complete) == 2  # what fitted is whole and verified; nothing else looks done
    for p in complete:
        assert hashlib.md5(p.read_bytes()).hexdigest() in set(
            eng.journal.done_files(job.id).values()
        )
    # Space freed: a retry fetches only the rest.
    eng = engine(client, Journal(eng.journal.path))
    await eng.start(resume=False)
    await eng.retry(job.id)
    assert (await eng.wait([job.id]))[job.id] is JobState.VERIFIED
    await eng.close()
    assert local_files(out) == server_files(sandbox, "PIL_900_MR1")


@BOTH_PATHS
async def test_html_instead_of_a_file_is_never_saved(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path, threaded: bool
) -> None:
    out = tmp_path / "out"
    plan = await dl.plan_request(client, project="STUDY_A", out=out)
    # A proxy or SSO page answering 200 where every file should be.
    sandbox.faults.configure("html")
    eng = engine(client, Journal(tmp_path / "j.sqlite3"), threaded=threaded)
    states = await run_plan(eng, plan)
    await eng.close()
    assert list(states.values()) == [JobState.FAILED]
    job = eng.journal.jobs(kinds=[JobKind.DOWNLOAD])[0]
    assert "sent an HTML page" in job.message
    assert not [p for p in out.rglob("*") if p.is_file()]  # not even a .part
    # A file gone from the server (404) fails that file by name, not the whole run.
    sandbox.faults.configure("error=404:1,only=/data/experiments/")
    eng = await started(client, tmp_path)
    await eng.retry(job.id)
    assert (await eng.wait([job.id]))[job.id] is JobState.FAILED
    await eng.close()
    assert "no longer on the server" in eng.journal.job(job.id).message


async def test_pause_resume_cancel_and_the_registered_builder(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    plan = await dl.plan_request(client, project="PILOT", out=out)
    eng = await started(client, tmp_path)
    sandbox.faults.configure("latency=50ms")
    ids = await eng.submit(plan.downloads)
    assert eng.pause(ids[0]) == ids
    assert (await eng.wait(ids))[ids[0]] is JobState.PAUSED
    snapshot = {p.job_id: p for p in eng.snapshot()}
    assert isinstance(snapshot[ids[0]], JobProgress)
    assert snapshot[ids[0]].kind is JobKind.DOWNLOAD
    sandbox.faults.clear()
    assert eng.resume(ids[0]) == ids
    assert (await eng.wait(ids))[ids[0]] is JobState.VERIFIED
    await eng.close()
    assert builder_for(JobKind.DOWNLOAD) is dl.build


async def test_closing_never_waits_on_a_stalled_server(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path
) -> None:
    import asyncio

    out = tmp_path / "out"
    plan = await dl.plan_request(client, project="PILOT", out=out)
    sandbox.faults.configure("latency=60s,only=/data/experiments/")
    eng = engine(client, Journal(tmp_path / "j.sqlite3"), concurrency=2)
    await eng.start(resume=False)
    [job_id] = await eng.submit(plan.downloads)
    for _ in range(3000):  # until both requests have reached the stalling server
        if sandbox.faults.stats["latency"] >= 2:
            break
        await asyncio.sleep(0.01)
    threads = list(eng._pool._threads)
    await eng.close()
    for thread in threads:  # blocked in a read of the stalled answer until aborted
        await asyncio.to_thread(thread.join, 20)
        assert not thread.is_alive()
    assert eng.journal.job(job_id).state is JobState.SENDING  # resumable as it was
    assert not [p for p in out.rglob("*") if p.is_file() and not p.name.endswith(PART)]


@pytest.mark.parametrize("chain", [1, 3], ids=["alone", "chains"], indirect=True)
async def test_files_queued_behind_a_stalled_one_come_after_pause_and_resume(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path, chain: int
) -> None:
    """--jobs 1: more files are handed to the worker pool than it has connections (so a
    worker goes straight on to the next), or chained to the stalled one. Paused while the
    first one stalls: one request reached the server, none of the queued files is lost,
    and the resumed job gets every file to the last byte."""
    out = tmp_path / "out"
    plan = await pilot_plan(client, out)
    sandbox.faults.configure("latency=60s,only=/data/experiments/")
    journal = Journal(tmp_path / "j.sqlite3")
    eng = engine(client, journal, concurrency=1)
    await eng.start(resume=False)
    [job_id] = await eng.submit(plan.downloads)
    for _ in range(3000):  # until the first file's request has reached the stalling server
        if sandbox.faults.stats["latency"] >= 1:
            break
        await asyncio.sleep(0.01)
    assert eng.pause(job_id) == [job_id]
    await eng.close()  # the stalled read ends here; the queued files must not start
    assert sandbox.faults.stats["latency"] == 1
    assert journal.job(job_id).state is JobState.PAUSED

    sandbox.faults.clear()
    again = engine(client, journal, concurrency=1)
    await again.start()
    assert again.resume(job_id) == [job_id]
    assert (await again.wait([job_id]))[job_id] is JobState.VERIFIED
    await again.close()
    assert local_files(out) == server_files(sandbox, "PIL_900_MR1")
    assert not list(out.rglob(f"*{PART}"))


# ---- several first tries per hop to a worker thread: every check and fault as alone


def count_hops(eng: DownloadEngine) -> list[object]:
    hops: list[object] = []
    submit = eng._pool.submit

    def counted(fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        hops.append(fn)
        return submit(fn, *args, **kwargs)

    eng._pool.submit = counted  # type: ignore[method-assign]
    return hops


async def test_a_clean_session_takes_fewer_hops_than_files(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(download, "CHAIN", 3)  # 7 files, 2 slots: chains while 6 are left
    out = tmp_path / "out"
    plan = await pilot_plan(client, out)
    eng = engine(client, Journal(tmp_path / "j.sqlite3"), concurrency=1)
    hops = count_hops(eng)
    assert list((await run_plan(eng, plan)).values()) == [JobState.VERIFIED]
    await eng.close()
    assert local_files(out) == server_files(sandbox, "PIL_900_MR1")
    assert len(hops) < plan.files == 7


@pytest.mark.parametrize(
    ("pure_md5", "chained"),
    [(False, False), (True, False), (False, True)],
    ids=["md5-lanes", "hashlib", "one-worker-chain"],
)
async def test_a_file_whose_bytes_differ_from_its_digest_is_refused(
    sandbox: SandboxServer,
    client: XnatClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pure_md5: bool,
    chained: bool,
) -> None:
    """Same size, other bytes: only the MD5 sees it, on either MD5 (the vector lanes
    eight files share, or hashlib); the file is never left looking complete. In one
    worker's chain of all seven, the file's MD5 is settled once the next file has
    arrived: found wrong then, it fails alone; the next, already there, is placed."""
    if pure_md5:
        monkeypatch.setenv("XNAT_TUI_PURE_MD5", "1")
    elif not chained and not md5.lanes_usable():
        pytest.skip("no MD5 kernel built for this CPU")
    if chained:
        monkeypatch.setattr(download, "CHAIN", 7)
    kernel_calls = lanes_per_call(monkeypatch)
    wrong = corrupt_a_file(sandbox.store, "PIL_900_MR1")
    out = tmp_path / "out"
    plan = await pilot_plan(client, out)
    eng = engine(client, Journal(tmp_path / "j.sqlite3"), concurrency=1 if chained else 8)
    states = await run_plan(eng, plan)
    await eng.close()
    assert list(states.values()) == [JobState.FAILED]
    job = eng.journal.jobs(kinds=[JobKind.DOWNLOAD])[0]
    assert job.message.startswith(f"1 of 7 file(s) failed ({wrong.split('/')[-1]}: MD5 ")
    assert "does not match the listing's" in job.message
    assert job.message.endswith(
        "run the same download again: it lists the files anew ('xnat-tui transfers retry "
        f"{job.id}' would check them against this job's list)"
    )
    assert not list(out.rglob(f"*{PART}"))
    want = {k: v for k, v in server_files(sandbox, "PIL_900_MR1").items() if k != wrong}
    assert local_files(out) == want, "the others arrived, verified; the wrong one is absent"
    # Eight files at once: the engine checks them on the vector lanes unless told not to
    # (one worker: hashlib, where one lane would be slower).
    assert bool(kernel_calls) is not (pure_md5 or chained)


class SyncLog(LocalFileSystem):
    """Notes, per .part, when its bytes were synced and when it was renamed."""

    def __init__(self) -> None:
        super().__init__()
        self.synced: set[int] = set()
        self.log: dict[str, list[str]] = {}

    def sync(self, handle: BinaryIO) -> None:
        super().sync(handle)
        self.synced.add(id(handle))

    def finish(self, handle: BinaryIO, part: Path, final: Path) -> None:
        self.log.setdefault(str(part), []).append(
            "rename synced" if id(handle) in self.synced else "rename unsynced"
        )
        super().finish(handle, part, final)


@pytest.mark.parametrize("threaded", [True, False], ids=["threads", "event-loop"])
async def test_every_file_is_synced_before_its_rename_and_a_wrong_one_never_renamed(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path, threaded: bool
) -> None:
    """The final name only ever holds bytes on disk that match the digest: each .part
    is synced, then checked, then renamed (the MD5 is settled after the sync)."""
    wrong = corrupt_a_file(sandbox.store, "PIL_900_MR1")
    fs = SyncLog()
    out = tmp_path / "out"
    plan = await pilot_plan(client, out)
    eng = engine(client, Journal(tmp_path / "j.sqlite3"), fs=fs, threaded=threaded)
    states = await run_plan(eng, plan)
    await eng.close()
    assert list(states.values()) == [JobState.FAILED]
    arrived = local_files(out)
    assert wrong not in arrived and len(arrived) == plan.files - 1
    assert fs.log == {f"{p}{PART}": ["rename synced"] for p in out.rglob("*") if p.is_file()}, (
        "each good file renamed once, after its sync; the wrong one never"
    )


async def test_files_listed_without_a_size_are_still_resumed_by_md5(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path
) -> None:
    """A listing row may have no Size: such a file is checked by its MD5 and count, and
    so it is when a later run resumes the job from the journal (it once read the size
    back as 0 bytes and refused every such file)."""
    out = tmp_path / "out"
    plan = await pilot_plan(client, out)
    unsized = _without(plan.downloads, size=None)
    journal = Journal(tmp_path / "j.sqlite3")
    first = engine(client, journal)
    ids = await first.submit(unsized)
    await first.close()  # before any file: the next run finds the job in the journal
    assert not [p for p in out.rglob("*") if p.is_file()]
    again = engine(client, journal)
    assert await again.start(resume=True) == ids
    assert (await again.wait(ids))[ids[0]] is JobState.VERIFIED, journal.job(ids[0]).message
    await again.close()
    assert local_files(out) == server_files(sandbox, "PIL_900_MR1")


async def test_a_journal_from_before_the_size_mark_still_takes_downloads(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path
) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    with journal._tx() as db:  # the table as earlier versions made it
        db.execute(
            "CREATE TABLE download_files(job_id TEXT NOT NULL, series_uid TEXT NOT NULL,"
            " idx INTEGER NOT NULL, uri TEXT NOT NULL, expected_md5 TEXT NOT NULL DEFAULT '',"
            " PRIMARY KEY(job_id, series_uid, idx))"
        )
    out = tmp_path / "out"
    plan = await pilot_plan(client, out)
    eng = engine(client, journal)
    assert list((await run_plan(eng, plan)).values()) == [JobState.VERIFIED]
    await eng.close()
    assert local_files(out) == server_files(sandbox, "PIL_900_MR1")


async def download_new_resource(
    sandbox: SandboxServer,
    client: XnatClient,
    tmp_path: Path,
    resource: str,
    files: dict[str, bytes],
    threaded: bool,
) -> Path:
    """Adds ``resource`` with ``files`` (name → bytes) to the first scan of PIL_900_MR1,
    downloads that resource (verified), and returns the output folder."""
    store = sandbox.store
    row = next(r for r in store.list_experiments() if r["label"] == "PIL_900_MR1")
    scan = store.list_scans(row["id"])[0]
    res = store.get_or_create_resource(row["id"], int(scan["pk"]), resource)
    for i, (name, data) in enumerate(files.items()):
        stored = store.data_dir / resource / f"{i}.bin"
        stored.parent.mkdir(parents=True, exist_ok=True)
        stored.write_bytes(data)
        store.add_file(res, name, stored)
    out = tmp_path / "out"
    plan = await dl.plan_request(
        client, project="PILOT", out=out, sessions=["PIL_900_MR1"], resource=resource
    )
    eng = engine(client, Journal(tmp_path / "j.sqlite3"), threaded=threaded)
    states = await run_plan(eng, plan)
    await eng.close()
    assert list(states.values()) == [JobState.VERIFIED], eng.journal.job(list(states)[0]).message
    return out


ODD_NAMES = {
    "sub dir/my file.txt": b"a space, in a subfolder\n",
    "pct%41.txt": b"a percent sign\n",
    "hash#x.txt": b"a hash sign\n",
    "caf\u00e9 \u00fc.txt": b"letters beyond ASCII\n",
}


@pytest.mark.parametrize("threaded", [True, False], ids=["threads", "event-loop"])
async def test_file_names_with_spaces_percent_hash_and_accents_arrive_as_named(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path, threaded: bool
) -> None:
    """The listing's URI joins the file's path as it is (XNAT does not encode it): each
    request must encode it, and the local name must be the name, not a decoding of it."""
    out = await download_new_resource(sandbox, client, tmp_path, "EXTRA", ODD_NAMES, threaded)
    files = next(out.rglob("EXTRA")) / "files"
    got = {p.relative_to(files).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert got == ODD_NAMES


def change_a_file(store: Store, label: str) -> str:
    """A new version of a session's first file on the server (new bytes, new digest)."""
    row = next(r for r in store.list_experiments() if r["label"] == label)
    scan = store.list_scans(row["id"])[0]
    res = store.list_resources(row["id"], int(scan["pk"]))[0]
    first = store.list_files(int(res["id"]))[0]
    stored = store.file_path(first)
    stored.write_bytes(stored.read_bytes() + b"a new version")
    store.add_file(int(res["id"]), first["name"], stored)  # size and MD5 taken anew
    return f"{scan['scan_id']}/{first['name']}"


async def test_asking_again_for_a_paused_session_resumes_it(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    plan = await pilot_plan(client, out)
    eng = await started(client, tmp_path)
    sandbox.faults.configure("latency=50ms")
    ids = await eng.submit(plan.downloads)
    eng.pause(ids[0])
    assert (await eng.wait(ids))[ids[0]] is JobState.PAUSED
    sandbox.faults.clear()
    assert await eng.submit(plan.downloads) == ids  # the same request: the same job, going
    assert (await eng.wait(ids))[ids[0]] is JobState.VERIFIED
    await eng.close()
    assert local_files(out) == server_files(sandbox, "PIL_900_MR1")


async def test_a_file_changed_on_the_server_since_an_unfinished_run_is_fetched_anew(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path
) -> None:
    """The unfinished job knows the old digest; the new request, the new one: it replaces
    the old job (which says so) instead of failing on the old digest."""
    out = tmp_path / "out"
    journal = Journal(tmp_path / "j.sqlite3")
    old_plan = await pilot_plan(client, out)
    first = engine(client, journal)
    (old,) = await first.submit(old_plan.downloads)
    await first.close()  # unfinished: nothing fetched yet
    change_a_file(sandbox.store, "PIL_900_MR1")
    plan = await pilot_plan(client, out)
    again = engine(client, journal)  # as the command does: plan, resume, submit
    assert await again.start(resume=True) == [old]
    (new,) = await again.submit(plan.downloads)
    assert new != old
    states = await again.wait([old, new])
    await again.close()
    assert states == {old: JobState.CANCELLED, new: JobState.VERIFIED}, journal.job(new).message
    assert f"replaced by {new}" in journal.job(old).message
    assert again.replaced == {old: new}
    assert local_files(out) == server_files(sandbox, "PIL_900_MR1")


async def test_two_requests_for_other_scans_of_one_session_both_arrive(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path
) -> None:
    """Scan 1, then scan 2 of the same session into the same folder, the first still
    running: two jobs, not the second folded into the first."""
    out = tmp_path / "out"
    full = await pilot_plan(client, out)
    (session,) = full.downloads
    assert len(session.scans) >= 2
    one, two = (replace(session, scans=(s,)) for s in session.scans[:2])
    eng = await started(client, tmp_path)
    sandbox.faults.configure("latency=50ms")
    (a,) = await eng.submit([one])
    (b,) = await eng.submit([two])
    sandbox.faults.clear()
    assert a != b
    assert await eng.wait([a, b]) == {a: JobState.VERIFIED, b: JobState.VERIFIED}
    await eng.close()
    want = {s.scan_id for s in session.scans[:2]}
    assert {k for k in local_files(out) if k.split("/")[0] in want} == {
        k for k in server_files(sandbox, "PIL_900_MR1") if k.split("/")[0] in want
    }


def _leave(path: Path, data: bytes) -> None:
    """A file left from an earlier run."""
    path.write_bytes(data)


def _without(
    plans: list[download.PlannedDownload], **blank: object
) -> list[download.PlannedDownload]:
    """The plans with every file's ``size`` or ``digest`` set as given (a listing
    without them)."""
    return [
        replace(
            p,
            scans=tuple(
                replace(s, files=tuple(replace(f, **blank) for f in s.files))
                for s in p.scans  # type: ignore[arg-type]
            ),
        )
        for p in plans
    ]


@pytest.mark.parametrize(
    ("blank", "part"),
    [
        # No size listed, and a .part longer than the file: Range past its end (416).
        ({"size": None}, lambda data: data + b"stale tail"),
        # No digest: a .part of an older version would be continued into a mix that only
        # the size could check.
        ({"digest": ""}, lambda data: b"OLDVERSION" + data[10:-100]),
    ],
    ids=["part-longer-than-the-file", "part-of-an-old-version"],
)
@pytest.mark.parametrize("threaded", [True, False], ids=["threads", "event-loop"])
async def test_a_part_that_cannot_be_continued_is_fetched_again_whole(
    sandbox: SandboxServer,
    client: XnatClient,
    tmp_path: Path,
    blank: dict[str, object],
    part: Any,
    threaded: bool,
) -> None:
    sandbox.faults.configure("ranges")  # a server that honours Range
    out = tmp_path / "out"
    plan = await pilot_plan(client, out)
    expected = server_files(sandbox, "PIL_900_MR1")
    first = plan.downloads[0].scans[0].files[0]
    first.local.parent.mkdir(parents=True)
    data = expected[f"{plan.downloads[0].scans[0].scan_id}/{first.local.name}"]
    _leave(Path(f"{first.local}{PART}"), part(data))
    eng = engine(client, Journal(tmp_path / "j.sqlite3"), threaded=threaded)
    states = await run_plan(eng, dl.DownloadPlan(_without(plan.downloads, **blank)))
    await eng.close()
    assert list(states.values()) == [JobState.VERIFIED], eng.journal.job(list(states)[0]).message
    assert local_files(out) == expected


@pytest.mark.parametrize("threaded", [True, False], ids=["threads", "event-loop"])
async def test_a_file_name_at_the_file_systems_limit_is_downloaded(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path, threaded: bool
) -> None:
    """252 characters: the name fits, NAME.part would not (255 bytes)."""
    long_names = {
        "x" * 248 + ".dcm": b"\0" * 128 + b"DICM" + b"long",
        "\u00e9" * 125 + ".txt": b"2",
    }
    out = await download_new_resource(sandbox, client, tmp_path, "LONG", long_names, threaded)
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == long_names


CATALOG = (
    '<?xml version="1.0" encoding="UTF-8"?><cat:Catalog xmlns:cat="http://nrg.wustl.edu/catalog"'
    ' ID="x" description="simplified"><cat:sets>'
    '<cat:entrySet ID="{id}" description="Project: PILOT, subject: PIL_900, label: PIL_900_MR1">'
    '<cat:sets><cat:entrySet ID="RAW" description="RAW"><cat:entries>'
    '<cat:entry URI="/archive/experiments/{id}/scans/{scan}/resources/DICOM/files"'
    ' name="PIL_900_MR1/{scan}/DICOM"/>'
    '<cat:entry URI="/archive/experiments/{id}/resources/NOTES/files"'
    ' name="PIL_900_MR1/resources/NOTES"/>'
    "</cat:entries></cat:entrySet></cat:sets></cat:entrySet></cat:sets></cat:Catalog>"
)


async def test_a_catalog_with_a_session_resource_downloads_it_too(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path
) -> None:
    """Session resources are catalog entries as scans' are (§A.5: {label}/resources/{res})."""
    store = sandbox.store
    row = next(r for r in store.list_experiments() if r["label"] == "PIL_900_MR1")
    scan = store.list_scans(row["id"])[0]
    notes = store.get_or_create_resource(row["id"], None, "NOTES")
    stored = store.data_dir / "notes.txt"
    stored.write_bytes(b"reading notes\n")
    store.add_file(notes, "sub/notes.txt", stored)
    out = tmp_path / "out"
    catalog = CATALOG.format(id=row["id"], scan=scan["scan_id"])
    plan = await dl.plan_catalog(client, catalog, out=out)
    eng = engine(client, Journal(tmp_path / "j.sqlite3"))
    assert list((await run_plan(eng, plan)).values()) == [JobState.VERIFIED]
    await eng.close()
    got = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert got.pop("PIL_900_MR1/resources/NOTES/sub/notes.txt") == b"reading notes\n"
    scan_files = {
        k: v
        for k, v in server_files(sandbox, "PIL_900_MR1").items()
        if k.startswith(f"{scan['scan_id']}/")
    }
    assert {f"{scan['scan_id']}/{k.rsplit('/', 1)[1]}": v for k, v in got.items()} == scan_files


async def test_files_failing_for_one_reason_are_reported_as_one(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path
) -> None:
    """Seven files refused by the server: one line for the reason (naming a few of them),
    not seven that differ only in the file's name."""
    out = tmp_path / "out"
    plan = await pilot_plan(client, out)
    sandbox.faults.configure("error=500:1.0,only=/data/experiments")
    eng = engine(client, Journal(tmp_path / "j.sqlite3"))
    states = await run_plan(eng, plan)
    await eng.close()
    message = eng.journal.job(list(states)[0]).message
    assert list(states.values()) == [JobState.FAILED]
    assert "7 of 7 file(s) failed (7 file(s) (" in message, message
    assert message.count("Cannot download") == 1, message


class HeldFirstWrite(LocalFileSystem):
    """The first .part opened for ``target`` blocks in its first write until released;
    every open and that write's end are logged in order."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target
        self.blocked = threading.Event()
        self.release = threading.Event()
        self.log: list[str] = []

    def open_part(self, path: Path, *, append: bool) -> BinaryIO:
        handle = super().open_part(path, append=append)
        if not str(path).startswith(self.target):
            return handle
        self.log.append("open")
        if self.blocked.is_set():
            return handle
        fs = self

        class Held:
            def __getattr__(self, name: str) -> Any:
                return getattr(handle, name)

            def write(self, data: Any) -> int:
                fs.blocked.set()
                fs.release.wait(30)
                n = handle.write(data)
                fs.log.append("late write done")
                return n

        return Held()  # type: ignore[return-value]


async def test_a_file_is_not_tried_again_while_a_paused_tries_thread_still_writes_it(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path
) -> None:
    """Pause, then resume, while a worker thread is still in a write of the first try:
    the second try of that file waits until the thread has left it (else both write one
    .part, and the late write lands in the file the second try verified)."""
    out = tmp_path / "out"
    plan = await pilot_plan(client, out)
    target = str(plan.downloads[0].scans[0].files[0].local)
    fs = HeldFirstWrite(target)
    eng = engine(client, Journal(tmp_path / "j.sqlite3"), fs=fs)
    await eng.start(resume=False)
    (job,) = await eng.submit(plan.downloads)
    await asyncio.to_thread(fs.blocked.wait, 30)
    eng.pause(job)
    assert (await eng.wait([job]))[job] is JobState.PAUSED
    eng.resume(job)
    # The other six files arrive meanwhile; the held one must not be tried again yet.
    for _ in range(3000):
        if eng.snapshot()[0].files_sent >= plan.files - 1:
            break
        await asyncio.sleep(0.01)
    assert fs.log == ["open"], fs.log
    fs.release.set()
    assert (await eng.wait([job]))[job] is JobState.VERIFIED
    await eng.close()
    # The first try's thread ran on to the end of its file; the second found it there,
    # verified, or fetched it again: either way only after that thread had left it.
    assert fs.log[:2] == ["open", "late write done"], fs.log
    assert local_files(out) == server_files(sandbox, "PIL_900_MR1")


async def test_a_file_name_with_control_characters_is_served_and_saved_harmlessly(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path
) -> None:
    """The sandbox must answer for such a name (its header refused it: a 500), and the
    saved name carries no control character."""
    data = b"a name with an escape sequence and a bell\n"
    out = await download_new_resource(
        sandbox, client, tmp_path, "ODD", {"esc\x1b[31mred\x07.txt": data}, True
    )
    [saved] = [p for p in out.rglob("*") if p.is_file()]
    assert saved.read_bytes() == data
    assert not any(ord(c) < 32 or ord(c) == 127 for c in saved.name), saved.name


async def test_files_held_paused_by_another_process_are_refused_with_what_to_do(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path
) -> None:
    """Another process keeps its paused job: a second job for the same files would write
    the same .part files the moment it resumes there. The request is refused, saying to
    resume it there or cancel it, not to 'pause' it."""
    journal = Journal(tmp_path / "j.sqlite3")
    plan = await dl.plan_request(client, project="PILOT", out=tmp_path / "out")
    holder = engine(client, journal)
    await holder.start(resume=False)
    [jid] = await holder.submit(plan.downloads)
    holder.pause(jid)
    other = engine(client, Journal(tmp_path / "j.sqlite3"))  # another process's engine
    other.owner = "elsewhere"
    await other.start()
    (tmp_path / "link").symlink_to(tmp_path / "out")  # the same folder, another path
    via_link = await dl.plan_request(client, project="PILOT", out=tmp_path / "link")
    with pytest.raises(download.DownloadBusy):
        await other.submit(via_link.downloads)
    with pytest.raises(download.DownloadBusy) as refused:
        await other.submit(plan.downloads)
    await other.close()
    await holder.close()
    assert f"is paused into {tmp_path / 'out'} in another xnat-tui (job {jid})" in str(
        refused.value
    )
    assert refused.value.hint == (
        f"resume it there, or 'xnat-tui transfers cancel {jid}', then ask again"
    )
    assert len(journal.jobs()) == 1


async def test_no_other_process_can_journal_a_job_between_the_busy_check_and_the_lease(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path
) -> None:
    """Two identical commands started together: had the second journalled its job after
    the first one's check and before its lease, both would have passed and written the
    same .part files. The check and the lease are one journal step to other processes."""
    path = tmp_path / "j.sqlite3"
    plan = await dl.plan_request(client, project="PILOT", out=tmp_path / "out")
    first = engine(client, Journal(path))
    await first.start(resume=False)
    other = Journal(path)  # another process's
    other._db.execute("PRAGMA busy_timeout=0")  # fails at once where it would wait
    slipped: list[str] = []
    check = first._refuse_overlaps

    def other_asks_meanwhile(plans: Any, real: Any) -> None:
        check(plans, real)
        try:
            slipped.extend(other.create_jobs([first._new_job(plans[0])]))
        except sqlite3.OperationalError as exc:
            assert "locked" in str(exc)

    first._refuse_overlaps = other_asks_meanwhile  # type: ignore[method-assign]
    await first.submit(plan.downloads)
    await first.close()
    assert slipped == []
    assert len(Journal(path).jobs()) == len(plan.downloads)


async def test_a_failed_renewal_says_so_once_and_what_to_do(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path
) -> None:
    """The password changed meanwhile: the session expires and cannot be renewed."""
    out = tmp_path / "out"
    plan = await pilot_plan(client, out)
    client.credentials = replace(client.credentials, password="changed meanwhile")
    sandbox.faults.expire_sessions()
    journal = Journal(tmp_path / "j.sqlite3")
    eng = engine(client, journal)
    [(jid, state)] = (await run_plan(eng, plan)).items()
    await eng.close()
    assert state is JobState.FAILED
    message = journal.job(jid).message
    assert message.lower().count("logging in again failed") == 1, message
    assert message.endswith(f"Log in again, then 'xnat-tui transfers retry {jid}'")


class HoldsThird(LocalFileSystem):
    """Writes two files, then holds the third before its .part exists."""

    def __init__(self) -> None:
        super().__init__()
        self.opened = 0
        self.holding = threading.Event()
        self.release = threading.Event()

    def open_part(self, path: Path, *, append: bool) -> BinaryIO:
        self.opened += 1
        if self.opened == 3:
            self.holding.set()
            self.release.wait(30)
        return super().open_part(path, append=append)


@pytest.mark.parametrize("chain", [3, 100], ids=["chained", "one-by-one"])
async def test_a_cancel_counts_the_files_a_worker_finished_before_it(
    sandbox: SandboxServer,
    client: XnatClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    chain: int,
) -> None:
    """One worker, cancelled while it holds the third file (in a chain of three, or
    given files one at a time): what it saved is said complete, the files it finished
    after the cancel too (the one it was writing, the one waiting for its MD5). They
    were counted as none: a chain's results were dropped; then as only those settled
    at the moment of the cancel."""
    monkeypatch.setattr(download, "CHAIN", chain)
    out = tmp_path / "out"
    plan = await pilot_plan(client, out)
    fs = HoldsThird()
    journal = Journal(tmp_path / "j.sqlite3")
    eng = engine(client, journal, fs=fs, concurrency=1)
    stream = eng.subscribe()
    await eng.start(resume=False)
    [jid] = await eng.submit(plan.downloads)
    assert await asyncio.to_thread(fs.holding.wait, 30)
    eng.cancel(jid)
    # No count yet: the worker is still on the third file (and the second, by MD5), and
    # the job stays this process's until then (a retry elsewhere would be overwritten).
    assert journal.job(jid).message == "cancelled by the user; the files under way are finishing"
    assert journal.holder(jid) == eng.owner
    fs.release.set()
    assert (await eng.wait([jid]))[jid] is JobState.CANCELLED
    await eng.close()
    saved = sorted(p.name for p in out.rglob("*") if p.is_file())
    assert len(saved) == 3 and not any(name.endswith(".part") for name in saved)
    assert "3 of 7 file(s) complete" in journal.job(jid).message
    assert journal.holder(jid) is None
    stream.close()
    last = [e async for e in stream if isinstance(e, JobStateChanged)][-1]
    assert (last.state, last.files_sent) == (JobState.CANCELLED, 3)


async def test_a_cancel_while_a_chain_renews_its_session_counts_the_file_it_finished(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second file of a chain meets a 401 while the first waits for its MD5: the
    first is settled before the renewal is awaited, so a cancel during the renewal
    still counts it (it was saved, and left uncounted and unmarked)."""
    monkeypatch.setattr(download, "CHAIN", 3)
    out = tmp_path / "out"
    plan = await pilot_plan(client, out)
    journal = Journal(tmp_path / "j.sqlite3")
    eng = engine(client, journal, concurrency=1)
    await eng.start(resume=False)
    assert eng.fetcher is not None
    real_get = eng.fetcher.get
    gets = 0

    def get(uri: str, headers: dict[str, str], generation: int, **kw: Any) -> Any:
        nonlocal gets
        gets += 1
        if gets == 2:
            raise download_ops.NeedLogin(generation)
        return real_get(uri, headers, generation, **kw)

    renewing = asyncio.Event()

    async def relogin(generation: int) -> None:  # a renewal that has not answered yet
        renewing.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(eng.fetcher, "get", get)
    monkeypatch.setattr(client, "_relogin", relogin)
    [jid] = await eng.submit(plan.downloads)
    await asyncio.wait_for(renewing.wait(), 30)
    eng.cancel(jid)
    await eng.wait([jid])
    await eng.close()
    saved = [p for p in out.rglob("*") if p.is_file()]
    assert first_scan_file(plan) in saved and not any(p.name.endswith(PART) for p in saved)
    assert f"; {len(saved)} of 7 file(s) complete" in journal.job(jid).message


@pytest.mark.skipif(not md5.lanes_usable(), reason="no MD5 kernel built for this CPU")
async def test_a_short_file_leaves_no_md5_queued_on_a_buffer_used_again(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A body shorter than listed fails before its MD5 is settled: its bytes' queued
    hashing must go with it (else the batch later hashes a buffer the next file has
    filled, beside other files' bytes)."""
    monkeypatch.setattr(download, "CHAIN", 7)
    row = next(r for r in sandbox.store.list_experiments() if r["label"] == "PIL_900_MR1")
    scan = sandbox.store.list_scans(row["id"])[0]
    res = sandbox.store.list_resources(row["id"], int(scan["pk"]))[0]
    stored = sandbox.store.file_path(sandbox.store.list_files(int(res["id"]))[0])
    stored.write_bytes(stored.read_bytes()[:-100])  # the listing keeps the old size
    plan = await dl.plan_request(
        client, project="PILOT", out=tmp_path / "out", sessions=["PIL_900_MR1"]
    )
    eng = engine(client, Journal(tmp_path / "j.sqlite3"), concurrency=2)
    assert list((await run_plan(eng, plan)).values()) == [JobState.FAILED]
    await eng.close()
    lanes = lanes_per_call(monkeypatch)
    later = md5.Md5()
    later.update(bytes(1 << 16))  # the next batch: nothing of the failed file joins it
    assert lanes and set(lanes) == {1}
    assert later.hexdigest() == hashlib.md5(bytes(1 << 16)).hexdigest()


class CountsParts(LocalFileSystem):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[str] = []

    def open_part(self, path: Path, *, append: bool) -> BinaryIO:
        self.written.append(str(path))
        return super().open_part(path, append=append)


def first_scan_file(plan: dl.DownloadPlan) -> Path:
    return plan.downloads[0].scans[0].files[0].local


async def test_a_whole_part_left_by_a_crash_is_kept_when_its_md5_is_the_listings(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path
) -> None:
    """A process killed between a file's fsync and its rename (a file waits as .part
    for its MD5 until the thread's next one is in) leaves it whole: the next run checks
    it and renames it, instead of fetching it again."""
    out = tmp_path / "out"
    plan = await pilot_plan(client, out)
    first = first_scan_file(plan)
    want = server_files(sandbox, "PIL_900_MR1")
    key = f"{plan.downloads[0].scans[0].scan_id}/{first.name}"
    first.parent.mkdir(parents=True)
    download.part_of(first).write_bytes(want[key])
    plan = await pilot_plan(client, out)
    fs = CountsParts()
    eng = engine(client, Journal(tmp_path / "j.sqlite3"), fs=fs)
    assert list((await run_plan(eng, plan)).values()) == [JobState.VERIFIED]
    await eng.close()
    assert local_files(out) == want
    assert str(download.part_of(first)) not in fs.written, "fetched again"
    assert len(fs.written) == 6
