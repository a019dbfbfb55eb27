"""The router makes several workflows' engines one: events merged, actions by kind."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from tests.ui.fakes import FakeEngine
from tests.unit.transfer.test_journal import new_job
from xnat_tui.transfer.events import JobStateChanged, ProgressTick
from xnat_tui.transfer.journal import Journal
from xnat_tui.transfer.kinds import JobKind
from xnat_tui.transfer.types import JobState
from xnat_tui.workflow.jobs import JobAction, JobRouter


def held(engine: FakeEngine, job_id: str, label: str) -> None:
    engine.labels[job_id] = label
    engine.states[job_id] = JobState.SENDING


async def test_actions_reach_the_engine_of_the_jobs_kind(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    up_id, down_id = journal.create_jobs(
        [new_job(tmp_path), replace(new_job(tmp_path), kind=JobKind.DOWNLOAD)]
    )
    uploads, downloads = FakeEngine(), FakeEngine()
    held(uploads, up_id, "P/S/E")
    router = JobRouter(journal)
    router.attach([JobKind.UPLOAD], uploads)
    router.attach([JobKind.DOWNLOAD], downloads)
    # Not yet adopted by its engine: the journal's kind decides.
    downloads.labels[down_id] = "P/S/E"
    await router.act(JobAction.RETRY, down_id)
    assert downloads.calls == [("retry", down_id)] and uploads.calls == []
    await router.act(JobAction.PAUSE, up_id)
    assert uploads.calls == [("pause", up_id)]
    await router.act(JobAction.PAUSE_ALL, None)
    assert ("pause", None) in uploads.calls and ("pause", None) in downloads.calls
    await router.close()
    assert ("close", None) in uploads.calls and ("close", None) in downloads.calls


async def test_events_of_every_engine_arrive_on_one_stream_with_summed_ticks(
    tmp_path: Path,
) -> None:
    router = JobRouter(Journal(tmp_path / "j.sqlite3"))
    stream = router.subscribe()
    uploads, downloads = FakeEngine(), FakeEngine()
    router.attach([JobKind.UPLOAD], uploads)
    router.attach([JobKind.DOWNLOAD, JobKind.COPY], downloads)
    held(uploads, "u1", "up")
    held(downloads, "d1", "down")
    uploads.progress("u1", 10, 100)
    got = await anext(stream)
    assert isinstance(got, ProgressTick) and (got.bytes_sent, got.bytes_total) == (10, 100)
    downloads.progress("d1", 5, 50)
    got = await anext(stream)
    # Overall figures cover both engines' latest ticks; the jobs are this tick's.
    assert isinstance(got, ProgressTick) and (got.bytes_sent, got.bytes_total) == (15, 150)
    assert [p.job_id for p in got.jobs] == ["d1"]
    downloads.set_state("d1", JobState.VERIFIED)
    got = await anext(stream)
    assert isinstance(got, JobStateChanged) and got.job_id == "d1"
    assert len(router.engines) == 2
    await router.close()
