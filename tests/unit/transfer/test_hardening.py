"""Issue 14 (hostile-input review): changed files, honest verification, literal job ids,
sane bandwidth caps, the disk-full hint said once, and a private journal and receipts."""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.transfer.clock import ManualClock
from tests.unit.transfer.fake import FakeServer
from tests.unit.transfer.helpers import make_session, request_for
from xnat_tui.config import check_bandwidth
from xnat_tui.transfer import (
    EngineMessage,
    JobState,
    Journal,
    JournalError,
    RetryPolicy,
    SeriesPacker,
    SeriesState,
    SourceChanged,
    SourceFile,
    TransferEngine,
    TransferError,
)
from xnat_tui.transfer import packer as packer_module
from xnat_tui.transfer.server import RemoteFile, RemoteSession
from xnat_tui.transfer.verifier import tighten_receipts
from xnat_tui.workflow.planner import Planner

FAST = RetryPolicy(attempts=4, base=0.01, cap=0.05)


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask: without care, files come out 0644 and folders 0755."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def read_json(path: str) -> dict[str, object]:
    data: dict[str, object] = json.loads(Path(path).read_text())
    return data


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def rewrite_same_size(path: Path) -> None:
    """Change a file's bytes in place, keeping its size; its mtime moves on (as an
    editor's save does) even on a file system with coarse timestamps."""
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    before = path.stat()
    path.write_bytes(bytes(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 5_000_000_000))


async def run_one(server: FakeServer, tmp: Path, **kw: object) -> tuple[Journal, str]:
    journal = Journal(tmp / "j.sqlite3")
    session = make_session(tmp / "src")
    plan = await Planner(server, journal).plan([request_for(session)])
    assert plan.ok
    hook = kw.pop("before_send", None)
    if callable(hook):
        hook(session)
    engine = TransferEngine(
        server, journal, retry=FAST, receipts_dir=tmp / "r", clock=ManualClock(), **kw
    )  # type: ignore[arg-type]
    await engine.start()
    [jid] = await engine.submit(plan)
    await engine.wait([jid])
    await engine.close()
    return journal, jid


# ------------------------------------------------------------------ item 7


async def test_packer_refuses_a_file_changed_in_place_with_the_same_size(tmp_path: Path) -> None:
    p = tmp_path / "IM0"
    p.write_bytes(b"x" * 4000)
    st = p.stat()
    src = [SourceFile(p, st.st_size, st.st_mtime, "1.2.1")]
    rewrite_same_size(p)
    packer = SeriesPacker("1.2", src)
    with pytest.raises(SourceChanged) as caught:
        b"".join([c async for c in packer.body()])
    assert str(p) in str(caught.value) and "same size" in str(caught.value)


async def test_large_files_are_restated_before_their_checksum_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(packer_module, "LARGE_FILE", 1000)  # the streamed path, small
    p = tmp_path / "IM0"
    p.write_bytes(b"y" * 4000)
    st = p.stat()
    src = [SourceFile(p, st.st_size, st.st_mtime, "1.2.1")]
    rewrite_same_size(p)
    with pytest.raises(SourceChanged, match="same size"):
        b"".join([c async for c in SeriesPacker("1.2", src).body()])


async def test_an_unchanged_file_with_a_recorded_mtime_is_sent(tmp_path: Path) -> None:
    p = tmp_path / "IM0"
    p.write_bytes(b"z" * 4000)
    st = p.stat()
    # As the scanner records it: mtime_ns / 1e9 (may differ from st_mtime in the last bit).
    src = [SourceFile(p, st.st_size, st.st_mtime_ns / 1e9, "1.2.1")]
    packer = SeriesPacker("1.2", src)
    assert b"".join([c async for c in packer.body()])
    assert len(packer.manifest) == 1


async def test_a_file_changed_after_the_scan_fails_its_series_naming_the_file(
    tmp_path: Path,
) -> None:
    server = FakeServer()
    changed: list[Path] = []

    def change(session: object) -> None:
        path = session.series[1].files[2].path  # type: ignore[attr-defined]
        rewrite_same_size(path)
        changed.append(path)

    journal, jid = await run_one(server, tmp_path, before_send=change)
    job = journal.job(jid)
    assert job.state is JobState.FAILED  # was VERIFIED: sizes matched
    failed = [s for s in journal.series(jid) if s.state is SeriesState.FAILED]
    assert [s.number for s in failed] == [2]
    assert str(changed[0]) in failed[0].message and "changed since it was scanned" in job.message
    assert "scan again" in job.message


class NoDigestServer(FakeServer):
    """Lists sizes but no MD5 digests, as XNAT's prearchive does."""

    async def session_files(self, session: RemoteSession) -> dict[str, list[RemoteFile]]:
        listing = await super().session_files(session)
        return {k: [RemoteFile(f.name, f.size) for f in v] for k, v in listing.items()}


async def test_without_digests_the_job_says_verified_by_size(tmp_path: Path) -> None:
    from xnat_tui.commands._console import job_dict, job_line

    journal, jid = await run_one(NoDigestServer(), tmp_path)
    job = journal.job(jid)
    assert job.state is JobState.VERIFIED
    assert job.message.startswith("verified by size in the prearchive")
    assert job.verified_by == "size"
    receipt = read_json(job.receipt)
    assert receipt["verified_by"] == "size" and "verified by size" in receipt["note"]
    assert "verified by size" in job_line(job, journal.series(jid))
    assert job_dict(job, journal.series(jid))["verified_by"] == "size"


async def test_with_digests_the_job_says_verified_by_md5(tmp_path: Path) -> None:
    journal, jid = await run_one(FakeServer(), tmp_path)
    job = journal.job(jid)
    assert job.message.startswith("verified by MD5")
    assert read_json(job.receipt)["verified_by"] == "md5"


class OneBadDigestServer(FakeServer):
    """Same sizes, one digest different: a content change only MD5 can see."""

    async def session_files(self, session: RemoteSession) -> dict[str, list[RemoteFile]]:
        listing = await super().session_files(session)
        first = next(iter(listing))
        f = listing[first][0]
        listing[first][0] = RemoteFile(f.name, f.size, digest="0" * 32)
        return listing


async def test_digests_are_compared_whenever_the_server_gives_them(tmp_path: Path) -> None:
    journal, jid = await run_one(OneBadDigestServer(), tmp_path)
    job = journal.job(jid)
    assert job.state is JobState.FAILED and "verification failed" in job.message


# ------------------------------------------------------------------ item 11


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf, 1e-300, 0.05, 1e9])
def test_bandwidth_out_of_range_is_refused(tmp_path: Path, bad: float) -> None:
    with pytest.raises(ValueError, match=r"0 \(unlimited\) or 0.1"):
        check_bandwidth(bad)
    with pytest.raises(ValueError):
        TransferEngine(FakeServer(), Journal(tmp_path / "j.sqlite3"), bandwidth_limit_mbps=bad)


@pytest.mark.parametrize("good", [0.0, 0.1, 10.0, 1e6])
def test_bandwidth_in_range_is_kept(good: float) -> None:
    assert check_bandwidth(good) == good


def _journal_with_jobs(tmp: Path, n: int) -> tuple[Journal, list[str]]:
    from xnat_tui.transfer.journal import NewJob
    from xnat_tui.transfer.types import Destination, Overwrite

    journal = Journal(tmp / "j.sqlite3")
    session = make_session(tmp / "src")
    ids = journal.create_jobs(
        [
            NewJob("http://x", "u", "P", "S", f"E{i}", "1.2.3", Destination.PROJECT,
                   Overwrite.NONE, session.series)
            for i in range(n)
        ]
    )  # fmt: skip
    return journal, ids


def test_job_ids_are_matched_literally(tmp_path: Path) -> None:
    journal, [jid] = _journal_with_jobs(tmp_path, 1)
    assert journal.resolve(jid).id == jid
    assert journal.resolve(jid[:3]).id == jid
    for pattern in ("%", "_", jid[:3] + "_", jid[:2] + "%", jid[:4] + "_" + jid[5:], ""):
        with pytest.raises(JournalError, match="no transfer job"):
            journal.resolve(pattern)


# ------------------------------------------------------------------ item 13


async def test_the_disk_full_hint_is_given_once(tmp_path: Path) -> None:
    server = FakeServer()
    server.fail_imports = [
        TransferError("java.io.IOException: No space left on device", retriable=True, status=500)
    ] * 2
    journal = Journal(tmp_path / "j.sqlite3")
    session = make_session(tmp_path / "src")
    plan = await Planner(server, journal).plan([request_for(session)])
    engine = TransferEngine(
        server, journal, retry=FAST, receipts_dir=tmp_path / "r", clock=ManualClock()
    )
    events = engine.subscribe()
    await engine.start()
    [jid] = await engine.submit(plan)
    assert (await engine.wait([jid]))[jid] is JobState.FAILED
    await engine.close()
    message = journal.job(jid).message
    assert message.count("out of disk space") == 1  # both series named with one reason
    assert message.count("free space") == 1 and message.count("transfers retry") == 1
    for s in journal.series(jid):
        assert "out of disk space" in s.message and "transfers retry" not in s.message
    seen = [e async for e in events]
    assert not [e for e in seen if isinstance(e, EngineMessage) and "disk space" in e.text]


# ------------------------------------------------------------------ item 6


def test_the_journal_is_private(tmp_path: Path, umask_022: None) -> None:
    path = tmp_path / "new" / "journal.sqlite3"
    journal = Journal(path)
    journal.create_jobs([])
    assert mode(path.parent) == 0o700
    for suffix in ("", "-wal", "-shm"):
        f = path.with_name(path.name + suffix)
        if f.exists():
            assert mode(f) == 0o600, f
    journal.close()


def test_an_existing_journal_is_tightened_on_open(
    tmp_path: Path, umask_022: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    from xnat_tui.transfer.journal import default_path

    path = default_path()
    Journal(path).close()
    path.chmod(0o644)
    path.parent.chmod(0o755)
    leftover = path.with_name(path.name + "-wal")
    leftover.write_bytes(b"")
    leftover.chmod(0o644)
    journal = Journal()
    assert mode(path) == 0o600 and mode(leftover) == 0o600
    assert mode(path.parent) == 0o700
    journal.close()


async def test_receipts_are_private(tmp_path: Path, umask_022: None) -> None:
    old = tmp_path / "r"
    old.mkdir(mode=0o755)
    (old / "older.json").write_text("{}")
    (old / "older.json").chmod(0o644)
    tighten_receipts(old)
    assert mode(old) == 0o700 and mode(old / "older.json") == 0o600
    journal, jid = await run_one(FakeServer(), tmp_path)
    receipt = Path(journal.job(jid).receipt)
    assert mode(receipt) == 0o600 and mode(receipt.parent) == 0o700
