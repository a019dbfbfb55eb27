"""The DICOM send engine: per-instance statuses, retries, the journal and resumes,
and the REST look-up against the sandbox's receiver (issue 16, 3-5)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom
import pytest

from xnat_tui.dicom.scan import scan_all
from xnat_tui.dicom.synthetic import SeriesSpec, write_study
from xnat_tui.transfer.cstore import DicomDestination, DicomSendError, StoreResult
from xnat_tui.transfer.events import EngineMessage, JobStateChanged
from xnat_tui.transfer.journal import Journal
from xnat_tui.transfer.retry import RetryPolicy
from xnat_tui.transfer.source import from_dicom
from xnat_tui.transfer.types import JobState
from xnat_tui.workflow.send import SendSettings, engine_for, journal_jobs, plan
from xnat_tui.workflow.targets import LabelRules
from xnat_tui.xnat.client import XnatClient
from xnat_tui.xnat.credentials import Credentials

DEST = DicomDestination("XNAT", "127.0.0.1", 11112)
FAST = RetryPolicy(attempts=3, base=0.0, jitter=0.0)


class FakeReceiver:
    """Answers C-STOREs from a script: sop uid -> statuses to give, in turn."""

    def __init__(self, script: dict[int, list[int | None]] | None = None) -> None:
        self.script = script or {}
        self.stored: list[str] = []  # SOP instance UIDs answered with success/warning
        self.calls = 0
        self.lock = threading.Lock()
        self.refuse_opens = False

    def opener(self, destination: DicomDestination, contexts: Any, timeout: float) -> Any:
        if self.refuse_opens:
            raise DicomSendError(f"{destination}: connection refused: nothing listens")
        return _FakeLink(self)


class _FakeLink:
    def __init__(self, rx: FakeReceiver) -> None:
        self.rx = rx
        self.alive = True

    def store(
        self, payload: Path | Any, sop_class: str, ts: str, sop_instance: str = ""
    ) -> StoreResult:
        uid = str(pydicom.dcmread(payload, stop_before_pixels=True).SOPInstanceUID)
        with self.rx.lock:
            n = self.rx.calls
            self.rx.calls += 1
            statuses = self.rx.script.get(n)
            status: int | None = 0
            if statuses is not None:
                status = statuses.pop(0) if statuses else 0
            if status is None:
                self.alive = False
                return StoreResult(None, "no C-STORE response (the association was aborted)")
            if status == 0 or 0xB000 <= status <= 0xBFFF:
                self.rx.stored.append(uid)
            return StoreResult(status, f"0x{status:04X}")

    def release(self) -> None:
        self.alive = False


def held_at_second(
    rx: FakeReceiver, loop: asyncio.AbstractEventLoop, second: asyncio.Event, gate: threading.Event
) -> Any:
    """An opener whose receiver holds the second instance until ``gate`` is set, and
    sets ``second`` when it has it."""

    def opener(destination: DicomDestination, contexts: Any, timeout: float) -> Any:
        link = rx.opener(destination, contexts, timeout)
        store = link.store

        def slow_store(payload: Any, sop_class: str, ts: str, sop_instance: str = "") -> Any:
            if rx.calls == 1:
                loop.call_soon_threadsafe(second.set)
                gate.wait(30)
            return store(payload, sop_class, ts, sop_instance)

        link.store = slow_store
        return link

    return opener


def journalled(tmp_path: Path, n: int = 5, **settings: Any) -> tuple[Journal, list[str]]:
    write_study(tmp_path / "src", patient_id="P1", series=[SeriesSpec("MR", 1, "T1", n)])
    sources = [from_dicom(s) for s in scan_all([tmp_path / "src"]).sessions]
    s = SendSettings(DEST, **{"routing": "none", **settings})
    journal = Journal(tmp_path / "journal.sqlite3")
    return journal, journal_jobs(journal, plan(sources, s, LabelRules()), s)


async def run(journal: Journal, ids: list[str], rx: FakeReceiver, **kw: Any) -> Any:
    engine = engine_for(journal, retry=FAST, opener=rx.opener, **kw)
    messages: list[str] = []
    stream = engine.subscribe()
    await engine.start(resume=False)
    engine.queue(ids)
    await engine.wait(ids)
    await engine.close()
    async for event in stream:
        if isinstance(event, EngineMessage):
            messages.append(event.text)
    return engine, messages


async def test_statuses_retries_and_per_instance_failures(tmp_path: Path) -> None:
    journal, [jid] = journalled(tmp_path)
    # One association, so calls are in order: instance 0 is out of resources once (a
    # retry at the end of the queue stores it), instance 1 gets a warning (stored),
    # instance 2 is refused three times (the policy's attempts): it fails alone.
    rx = FakeReceiver({0: [0xA700], 1: [0xB000], 2: [0xC000], 6: [0xC000], 7: [0xC000]})
    _engine, messages = await run(journal, [jid], rx)
    job = journal.job(jid)
    assert job.state is JobState.FAILED
    assert "4 sent, 1 failed, 0 remaining" in job.message
    assert "instance 3 of series" in job.message and "0xC000" in job.message
    assert len(journal.done_files(jid)) == 4 and len(set(rx.stored)) == 4
    assert any("retry 1" in m for m in messages)
    assert any("gave up" in m for m in messages)


async def test_dropped_association_then_retry_sends_only_the_rest(tmp_path: Path) -> None:
    journal, [jid] = journalled(tmp_path)
    rx = FakeReceiver({2: [None]})  # the third instance: the association drops
    rx_opens = rx.opener

    def opener(destination: DicomDestination, contexts: Any, timeout: float) -> Any:
        if rx.calls >= 3:  # the receiver has gone away
            rx.refuse_opens = True
        return rx_opens(destination, contexts, timeout)

    engine = engine_for(journal, retry=FAST, opener=opener)
    await engine.start(resume=False)
    engine.queue([jid])
    await engine.wait([jid])
    assert journal.job(jid).state is JobState.FAILED
    assert "connection refused" in journal.job(jid).message
    assert len(journal.done_files(jid)) == 2
    rx.refuse_opens = False
    rx_opens_fixed: Callable[..., Any] = rx.opener
    engine.opener = rx_opens_fixed
    assert await engine.retry(jid) == [jid]
    await engine.wait([jid])
    await engine.close()
    assert journal.job(jid).state is JobState.VERIFIED
    # Every instance once: none that was acknowledged went twice.
    assert len(rx.stored) == 5 and len(set(rx.stored)) == 5


async def test_a_new_process_resumes_only_unacknowledged_instances(tmp_path: Path) -> None:
    journal, [jid] = journalled(tmp_path)
    series = journal.series(jid)[0].uid
    # What a kill -9 after two acknowledgements leaves: SENDING, two files done.
    journal.set_state(jid, JobState.SENDING, "sending")
    journal.files_done(jid, [(series, 0), (series, 1)])
    rx = FakeReceiver()
    engine = engine_for(journal, retry=FAST, opener=rx.opener)
    assert await engine.start(resume=True) == [jid]
    await engine.wait([jid])
    await engine.close()
    assert journal.job(jid).state is JobState.VERIFIED
    sent = {str(pydicom.dcmread(f.path).SOPInstanceUID) for f in journal.files(jid, series)[2:]}
    assert sorted(rx.stored) == sorted(sent)


@pytest.mark.parametrize("project", ["PILOT", "NOPE"])
async def test_rest_lookup_after_idle_finds_session_or_unassigned(
    sandbox_factory: Any, tmp_path: Path, project: str
) -> None:
    server = await sandbox_factory(dicom_port=0)
    write_study(tmp_path / "src", patient_id="P1", series=[SeriesSpec("MR", 1, "T1", 3)])
    sources = [from_dicom(s) for s in scan_all([tmp_path / "src"]).sessions]
    dest = DicomDestination("XNAT", "127.0.0.1", server.dicom.port)
    settings = SendSettings(dest, routing="site", idle_seconds=0.0)
    items = plan(
        sources, settings, LabelRules("SUBJ_1", "SUBJ_1_MR", explicit=True), project=project
    )
    journal = Journal(tmp_path / "journal.sqlite3")
    async with XnatClient(Credentials(server.url, "admin", "admin")) as client:
        ids = journal_jobs(journal, items, settings, server=client.server, username="admin")
        engine = engine_for(journal, client=client, retry=FAST)  # the job says 0 s
        await engine.start(resume=False)
        engine.queue(ids)
        await engine.wait(ids)
        triage = engine.triage(ids[0])
        await engine.close()
    job = journal.job(ids[0])
    if project == "PILOT":
        assert job.state is JobState.VERIFIED, job.message
        assert "verified: 3 instance(s) in prearchive PILOT/SUBJ_1_MR" in job.message
    else:
        assert job.state is JobState.FAILED
        assert "landed as Unassigned" in job.message
        assert triage and "/Unassigned/" in triage[0]


async def test_pause_asked_by_another_process_stops_the_send_and_retry_says_queued(
    tmp_path: Path,
) -> None:
    """`xnat-tui transfers pause` (another process) reaches the process sending the job
    through the journal: it pauses with what was acknowledged kept; a failed send's
    retry is announced as queued again (the Transfers panel's row moves at once)."""
    journal, [jid] = journalled(tmp_path)
    gate = threading.Event()  # the receiver answers the second instance only when set
    rx = FakeReceiver()
    loop = asyncio.get_running_loop()
    second = asyncio.Event()

    opener = held_at_second(rx, loop, second, gate)

    sender = engine_for(journal, retry=FAST, opener=opener, progress_interval=0.05)
    events = sender.subscribe()
    await sender.start(resume=False)
    sender.queue([jid])
    await asyncio.wait_for(second.wait(), 30)
    other = engine_for(Journal(tmp_path / "journal.sqlite3"), retry=FAST, opener=rx.opener)
    assert other.pause(jid) == [jid]
    assert journal.job(jid).state is JobState.SENDING  # asked, not done behind its back

    async def paused() -> None:
        async for event in events:
            if isinstance(event, JobStateChanged) and event.state is JobState.PAUSED:
                return

    await asyncio.wait_for(paused(), 20)  # without the request polled: TimeoutError
    gate.set()
    assert await asyncio.wait_for(sender.wait([jid]), 30) == {jid: JobState.PAUSED}
    await sender.close()
    await other.close()
    assert journal.job(jid).state is JobState.PAUSED
    assert len(journal.done_files(jid)) < 5  # the rest was left for a resume

    # The same job failed: retry announces it queued before sending the rest.
    journal.set_state(jid, JobState.FAILED, "receiver went away")
    again = engine_for(journal, retry=FAST, opener=rx.opener)
    seen = again.subscribe()
    assert await again.retry(jid) == [jid]
    await again.wait([jid])
    await again.close()
    states = [e.state async for e in seen if isinstance(e, JobStateChanged)]
    assert states[0] is JobState.QUEUED and states[-1] is JobState.VERIFIED
    assert len(set(rx.stored)) == 5 == len(journal.done_files(jid))


async def test_closing_while_an_instance_is_in_flight_keeps_its_acknowledgement(
    tmp_path: Path,
) -> None:
    """Pause, then quit at once (the TUI's quit, Ctrl+C) while the receiver is still
    answering an instance: its 0x0000 is journalled before the engine is closed, so a
    resume does not send it to the receiver a second time."""
    journal, [jid] = journalled(tmp_path)
    gate = threading.Event()
    rx = FakeReceiver()
    loop = asyncio.get_running_loop()
    second = asyncio.Event()

    opener = held_at_second(rx, loop, second, gate)

    sender = engine_for(journal, retry=FAST, opener=opener)
    await sender.start(resume=False)
    sender.queue([jid])
    await asyncio.wait_for(second.wait(), 30)
    sender.pause(jid)
    closing = asyncio.create_task(sender.close())
    for _ in range(20):  # let the close cancel everything it holds (no clock involved)
        await asyncio.sleep(0)
    gate.set()  # the receiver answers the instance in flight only now
    await asyncio.wait_for(closing, 30)
    stored = set(rx.stored)
    done = len(Journal(tmp_path / "journal.sqlite3").done_files(jid))
    assert len(stored) == 2 and done == len(stored)  # none of them to be sent again
