from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.unit.transfer.clock import ManualClock, settle
from tests.unit.transfer.fake import Dropped, FakeServer
from tests.unit.transfer.helpers import make_session, request_for
from xnat_tui.transfer import (
    Destination,
    JobState,
    JobStateChanged,
    Journal,
    Overwrite,
    ProgressTick,
    RetryPolicy,
    SeriesState,
    TransferEngine,
    TransferError,
)
from xnat_tui.workflow.planner import Planner

FAST = RetryPolicy(attempts=4, base=0.01, cap=0.05)


async def plan_one(server: FakeServer, journal: Journal, tmp: Path, **kw: object):
    session = make_session(tmp, **kw)  # type: ignore[arg-type]
    plan = await Planner(server, journal).plan([request_for(session)])
    assert plan.ok, plan.to_dict()
    return plan


async def test_upload_commit_verify_and_receipt(tmp_path: Path) -> None:
    server = FakeServer()
    journal = Journal(tmp_path / "j.sqlite3")
    plan = await plan_one(server, journal, tmp_path)
    engine = TransferEngine(server, journal, retry=FAST, receipts_dir=tmp_path / "r")
    events = engine.subscribe()
    await engine.start()
    ids = await engine.submit(plan)
    states = await engine.wait(ids)
    await engine.close()
    assert states == {ids[0]: JobState.VERIFIED}
    [sess] = server.find("PAT1_MR_1")
    assert sess.location == "prearchive" and sess.status == "READY"
    assert {k: len(v) for k, v in sess.scans.items()} == {"1": 3, "2": 3}
    receipt = json.loads((tmp_path / "r" / f"{ids[0]}.json").read_text())
    assert receipt["verified"] is True
    assert [s["method"] for s in receipt["scans"]] == ["md5", "md5"]
    seen = [e async for e in events]
    states_seen = [e.state for e in seen if isinstance(e, JobStateChanged)]
    assert states_seen[-1] is JobState.VERIFIED
    assert JobState.COMMITTING in states_seen
    # Every state change carries the job's size (a UI may see no progress tick).
    sizes = {(e.files_total, e.bytes_total) for e in seen if isinstance(e, JobStateChanged)}
    assert sizes == {(6, sum(s.bytes for s in journal.series(ids[0])))}
    job = journal.job(ids[0])
    assert job.commit_phase == "done" and job.archived is False
    assert all(s.state is SeriesState.SENT for s in journal.series(ids[0]))


async def test_archive_destination(tmp_path: Path) -> None:
    server = FakeServer()
    journal = Journal(tmp_path / "j.sqlite3")
    session = make_session(tmp_path)
    planner = Planner(server, journal)
    reqs = [request_for(session, label="S1", destination=Destination.ARCHIVE)]
    engine = TransferEngine(server, journal, retry=FAST, receipts_dir=tmp_path / "r")
    await engine.start()
    ids = await engine.submit(await planner.plan(reqs))
    assert (await engine.wait(ids))[ids[0]] is JobState.VERIFIED
    await engine.close()
    [sess] = server.find("S1")
    assert sess.location == "archive"
    assert journal.job(ids[0]).archived is True


async def test_transient_errors_are_retried(tmp_path: Path) -> None:
    server = FakeServer()
    server.fail_imports = [
        TransferError("502 Bad Gateway", retriable=True, status=502),
        Dropped("server closed the connection"),
        TimeoutError(),
    ]
    journal = Journal(tmp_path / "j.sqlite3")
    plan = await plan_one(server, journal, tmp_path)
    engine = TransferEngine(server, journal, retry=FAST, receipts_dir=tmp_path / "r")
    await engine.start()
    ids = await engine.submit(plan)
    assert (await engine.wait(ids))[ids[0]] is JobState.VERIFIED
    await engine.close()
    assert server.imports == 5
    attempts = sorted(s.attempts for s in journal.series(ids[0]))
    assert sum(attempts) == 5


async def test_client_errors_are_not_retried(tmp_path: Path) -> None:
    server = FakeServer()
    server.fail_imports = [TransferError("403 Forbidden: no edit permission", status=403)]
    journal = Journal(tmp_path / "j.sqlite3")
    plan = await plan_one(server, journal, tmp_path, series=(("1", "T1"),))
    engine = TransferEngine(server, journal, retry=FAST, receipts_dir=tmp_path / "r")
    await engine.start()
    ids = await engine.submit(plan)
    assert (await engine.wait(ids))[ids[0]] is JobState.FAILED
    await engine.close()
    assert server.imports == 1
    job = journal.job(ids[0])
    assert "403" in job.message and "transfers retry" in job.message
    assert server.commits == 0


async def test_gives_up_after_bounded_retries_then_retry_resumes(tmp_path: Path) -> None:
    server = FakeServer()
    server.fail_imports = [TransferError("503 Service Unavailable", retriable=True, status=503)] * 4
    journal = Journal(tmp_path / "j.sqlite3")
    plan = await plan_one(server, journal, tmp_path, series=(("1", "T1"),))
    engine = TransferEngine(server, journal, retry=FAST, receipts_dir=tmp_path / "r")
    await engine.start()
    ids = await engine.submit(plan)
    assert (await engine.wait(ids))[ids[0]] is JobState.FAILED
    assert "503" in journal.job(ids[0]).message
    assert server.imports == 4
    again = await engine.retry(ids[0])
    assert again == ids
    assert (await engine.wait(ids))[ids[0]] is JobState.VERIFIED
    await engine.close()


async def test_crash_mid_send_resumes_without_resending_acknowledged(tmp_path: Path) -> None:
    server = FakeServer()
    server.chunk_delay = 0.03
    journal = Journal(tmp_path / "j.sqlite3")
    plan = await plan_one(
        server, journal, tmp_path, series=(("1", "A"), ("2", "B"), ("3", "C")), size=1_000_000
    )
    engine = TransferEngine(server, journal, concurrency=1, retry=FAST, receipts_dir=tmp_path / "r")
    await engine.start()
    [jid] = await engine.submit(plan)
    for _ in range(2000):
        if any(s.state is SeriesState.SENT for s in journal.series(jid)):
            break
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.03)  # the next series is mid-stream when we "crash"
    await engine.close()  # like a crash: no state change written for the job
    assert journal.job(jid).state is JobState.SENDING
    imports_before = server.imports
    sent_before = {s.uid for s in journal.series(jid) if s.state is SeriesState.SENT}
    assert 1 <= len(sent_before) < 3
    server.chunk_delay = 0.0

    journal2 = Journal(tmp_path / "j.sqlite3")
    engine2 = TransferEngine(server, journal2, retry=FAST, receipts_dir=tmp_path / "r")
    assert await engine2.start() == [jid]
    assert (await engine2.wait([jid]))[jid] is JobState.VERIFIED
    await engine2.close()
    resent = server.imports - imports_before
    assert resent == 3 - len(sent_before)
    assert len(server.find("PAT1_MR_1")) == 1


async def test_unknown_commit_outcome_is_looked_up_not_repeated(tmp_path: Path) -> None:
    server = FakeServer()
    server.projects["P"].prearchive_code = 4
    server.drop_after_commit = 1
    journal = Journal(tmp_path / "j.sqlite3")
    plan = await plan_one(server, journal, tmp_path)
    engine = TransferEngine(server, journal, retry=FAST, receipts_dir=tmp_path / "r")
    await engine.start()
    ids = await engine.submit(plan)
    assert (await engine.wait(ids))[ids[0]] is JobState.VERIFIED
    await engine.close()
    assert server.commits == 1
    [sess] = server.find("PAT1_MR_1")
    assert sess.location == "archive"


async def _until(predicate: object, what: str) -> None:
    """Wait for a condition the engine reaches without the clock moving (a send starts)."""
    for _ in range(2000):
        if predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"never happened: {what}")


async def test_pause_stops_at_once_and_nothing_moves_until_resume(tmp_path: Path) -> None:
    clock = ManualClock()
    server = FakeServer()
    server.clock = clock
    server.chunk_delay = 0.05
    journal = Journal(tmp_path / "j.sqlite3")
    plan = await plan_one(server, journal, tmp_path, size=3_000_000, files_per_series=2)
    engine = TransferEngine(server, journal, retry=FAST, receipts_dir=tmp_path / "r", clock=clock)
    await engine.start()
    [jid] = await engine.submit(plan)
    await _until(lambda: server.chunks > 0, "a series is mid-stream")
    t0 = clock.now()
    engine.pause(jid)
    states = await asyncio.wait_for(engine.wait([jid]), 30)
    assert states[jid] is JobState.PAUSED
    assert clock.now() == t0  # no time passed: pausing waits for no chunk or tick
    await settle()
    assert all(s.state in (SeriesState.PENDING, SeriesState.SENT) for s in journal.series(jid))
    imports, chunks = server.imports, server.chunks
    await clock.advance(10.0)  # 40 progress ticks, 20 journal polls
    assert (server.imports, server.chunks) == (imports, chunks)  # nothing moves while paused
    server.chunk_delay = 0.0
    engine.resume(jid)
    assert (await asyncio.wait_for(engine.wait([jid]), 30))[jid] is JobState.VERIFIED
    await engine.close()


async def test_cancel(tmp_path: Path) -> None:
    server = FakeServer()
    server.chunk_delay = 0.05
    journal = Journal(tmp_path / "j.sqlite3")
    plan = await plan_one(server, journal, tmp_path, size=3_000_000, files_per_series=2)
    engine = TransferEngine(server, journal, retry=FAST, receipts_dir=tmp_path / "r")
    await engine.start()
    [jid] = await engine.submit(plan)
    await asyncio.sleep(0.1)
    engine.cancel(jid)
    assert (await engine.wait([jid]))[jid] is JobState.CANCELLED
    await engine.close()
    assert server.commits == 0


async def test_vanished_file_fails_its_series_clearly(tmp_path: Path) -> None:
    server = FakeServer()
    journal = Journal(tmp_path / "j.sqlite3")
    plan = await plan_one(server, journal, tmp_path)
    victim = plan.jobs[0].series[1].files[1].path
    victim.unlink()
    engine = TransferEngine(server, journal, retry=FAST, receipts_dir=tmp_path / "r")
    await engine.start()
    [jid] = await engine.submit(plan)
    assert (await engine.wait([jid]))[jid] is JobState.FAILED
    await engine.close()
    msg = journal.job(jid).message
    assert str(victim) in msg and "vanished" in msg
    states = [s.state for s in journal.series(jid)]
    assert states == [SeriesState.SENT, SeriesState.FAILED]  # the rest continued
    assert server.commits == 0


async def test_progress_is_throttled(tmp_path: Path) -> None:
    server = FakeServer()
    server.chunk_delay = 0.04
    journal = Journal(tmp_path / "j.sqlite3")
    plan = await plan_one(server, journal, tmp_path, size=1_500_000, files_per_series=4)
    engine = TransferEngine(
        server, journal, retry=FAST, receipts_dir=tmp_path / "r", progress_interval=0.1
    )
    stream = engine.subscribe()
    await engine.start()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    ids = await engine.submit(plan)
    await engine.wait(ids)
    elapsed = loop.time() - t0
    await engine.close()
    ticks = [e async for e in stream if isinstance(e, ProgressTick)]
    assert ticks, "no progress events"
    assert len(ticks) <= elapsed / 0.1 + 2
    assert ticks[-1].jobs[0].bytes_total == plan.jobs[0].bytes_total


async def test_two_engines_never_run_the_same_job(tmp_path: Path) -> None:
    server = FakeServer()
    server.chunk_delay = 0.02
    journal = Journal(tmp_path / "j.sqlite3")
    plan = await plan_one(server, journal, tmp_path, size=500_000)
    a = TransferEngine(server, journal, retry=FAST, receipts_dir=tmp_path / "r")
    await a.start()
    [jid] = await a.submit(plan)
    b = TransferEngine(
        server, Journal(tmp_path / "j.sqlite3"), retry=FAST, receipts_dir=tmp_path / "r"
    )
    assert await b.start() == []
    server.chunk_delay = 0
    assert (await a.wait([jid]))[jid] is JobState.VERIFIED
    await a.close()
    await b.close()
    assert len(server.find("PAT1_MR_1")) == 1


async def test_merge_with_append(tmp_path: Path) -> None:
    server = FakeServer()
    server.projects["P"].prearchive_code = 4
    journal = Journal(tmp_path / "j.sqlite3")
    first = make_session(tmp_path / "a", series=(("1", "T1"),))
    planner = Planner(server, journal)
    engine = TransferEngine(server, journal, retry=FAST, receipts_dir=tmp_path / "r")
    await engine.start()
    ids = await engine.submit(await planner.plan([request_for(first)]))
    assert (await engine.wait(ids))[ids[0]] is JobState.VERIFIED
    more = make_session(tmp_path / "b", series=(("2", "T2"),))
    planner.refresh()
    reqs = [request_for(more)]  # the same study and label again
    plan = await planner.plan(reqs)
    assert not plan.ok and plan.jobs[0].verdict.value == "merge"
    reqs[0].overwrite = Overwrite.APPEND
    plan = await planner.plan(reqs)
    assert plan.ok
    ids = await engine.submit(plan)
    assert (await engine.wait(ids))[ids[0]] is JobState.VERIFIED
    await engine.close()
    [sess] = server.find("PAT1_MR_1")
    assert set(sess.scans) == {"1", "2"}


async def test_disk_full_fails_fast_with_a_clear_reason(tmp_path: Path) -> None:
    server = FakeServer()
    server.fail_imports = [
        TransferError("java.io.IOException: No space left on device", retriable=True, status=500)
    ]
    journal = Journal(tmp_path / "j.sqlite3")
    plan = await plan_one(server, journal, tmp_path, series=(("1", "T1"),))
    engine = TransferEngine(server, journal, retry=FAST, receipts_dir=tmp_path / "r")
    await engine.start()
    ids = await engine.submit(plan)
    assert (await engine.wait(ids))[ids[0]] is JobState.FAILED
    message = journal.job(ids[0]).message
    assert "out of disk space" in message and f"transfers retry {ids[0]}" in message
    assert server.imports == 1
    assert (await engine.retry(ids[0])) == ids
    assert (await engine.wait(ids))[ids[0]] is JobState.VERIFIED
    await engine.close()


async def test_pause_requested_by_another_process_through_the_journal(tmp_path: Path) -> None:
    clock = ManualClock()
    server = FakeServer()
    server.clock = clock
    server.chunk_delay = 0.05
    journal = Journal(tmp_path / "j.sqlite3")
    plan = await plan_one(server, journal, tmp_path, size=3_000_000, files_per_series=2)
    engine = TransferEngine(server, journal, retry=FAST, receipts_dir=tmp_path / "r", clock=clock)
    await engine.start()
    [jid] = await engine.submit(plan)
    await _until(lambda: server.chunks > 0, "a series is mid-stream")
    await clock.advance(0.5)  # the engine has polled its journal requests once already
    other = Journal(tmp_path / "j.sqlite3")  # e.g. `xnat-tui transfers pause` in a shell
    assert other.holder(jid) == engine.owner
    other.request(jid, "pause")
    t0 = clock.now()
    while engine.snapshot()[0].state is not JobState.PAUSED:
        assert clock.now() - t0 < 0.75, "not seen within a journal poll (0.5 s) and a tick"
        await clock.advance(engine.progress_interval)
    assert (await asyncio.wait_for(engine.wait([jid]), 30))[jid] is JobState.PAUSED
    assert other.job(jid).state is JobState.PAUSED
    await engine.close()


async def test_bandwidth_cap_limits_the_rate() -> None:
    from xnat_tui.transfer.retry import TokenBucket

    clock = ManualClock()
    bucket = TokenBucket(10e6, burst=1e6, clock=clock)  # 10 MB/s, 1 MB at once

    async def send() -> None:
        for _ in range(6):
            await bucket.take(1_000_000)

    task = asyncio.create_task(send())
    await clock.advance(0.45)
    assert not task.done()  # 5 MB beyond the burst need 0.5 s at 10 MB/s
    await clock.advance(0.06)
    assert task.done()
    await task


async def test_paused_jobs_of_an_earlier_process_are_shown_and_resumable(tmp_path: Path) -> None:
    clock = ManualClock()
    server = FakeServer()
    server.clock = clock
    server.chunk_delay = 0.05
    journal = Journal(tmp_path / "j.sqlite3")
    plan = await plan_one(server, journal, tmp_path, size=2_000_000, files_per_series=2)
    first = TransferEngine(server, journal, retry=FAST, receipts_dir=tmp_path / "r", clock=clock)
    await first.start()
    [jid] = await first.submit(plan)
    await _until(lambda: server.chunks > 0, "a series is mid-stream")
    first.pause(jid)
    await first.close()
    server.chunk_delay = 0.0
    second = TransferEngine(server, Journal(tmp_path / "j.sqlite3"), receipts_dir=tmp_path / "r")
    assert await second.start() == []  # paused stays paused
    assert [(p.job_id, p.state) for p in second.snapshot()] == [(jid, JobState.PAUSED)]
    assert second.resume(jid) == [jid]
    assert (await second.wait([jid]))[jid] is JobState.VERIFIED
    await second.close()


async def test_retry_without_vanished_files_when_the_user_accepts_it(tmp_path: Path) -> None:
    server = FakeServer()
    journal = Journal(tmp_path / "j.sqlite3")
    plan = await plan_one(server, journal, tmp_path)
    victim = plan.jobs[0].series[1].files[0].path
    victim.unlink()
    engine = TransferEngine(server, journal, retry=FAST, receipts_dir=tmp_path / "r")
    await engine.start()
    [jid] = await engine.submit(plan)
    assert (await engine.wait([jid]))[jid] is JobState.FAILED
    assert journal.drop_missing_files(jid) == [str(victim)]
    assert [s.file_count for s in journal.series(jid)] == [3, 2]
    assert await engine.retry(jid) == [jid]
    assert (await engine.wait([jid]))[jid] is JobState.VERIFIED
    await engine.close()
    [sess] = server.find("PAT1_MR_1")
    assert {k: len(v) for k, v in sess.scans.items()} == {"1": 3, "2": 2}
