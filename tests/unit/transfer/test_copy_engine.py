"""The copy engine against the sandbox: faults, a failed verification, a crash and resume,
and routing strings rewritten for the destination."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pydicom

from xnat_tui.dicom.synthetic import SeriesSpec, write_study
from xnat_tui.sandbox.server import SandboxServer
from xnat_tui.transfer.copy_engine import CopyEngine
from xnat_tui.transfer.copy_routing import RoutingRewrite
from xnat_tui.transfer.journal import Journal, NewJob
from xnat_tui.transfer.plan import PlannedJob
from xnat_tui.transfer.retry import RetryPolicy
from xnat_tui.transfer.types import Destination, JobState, SeriesState
from xnat_tui.workflow import copy as copying
from xnat_tui.workflow.login import connection_for
from xnat_tui.xnat import Credentials, XnatClient
from xnat_tui.xnat.models import RemoteFile


async def _plan(
    client: XnatClient, journal: Journal, *, move: bool
) -> tuple[copying.CopySession, list[copying.Source], object]:
    session = copying.CopySession(
        connection_for(client, url=client.server, owned=False),
        journal,
        settings=copying.CopySettings(destination=Destination.ARCHIVE),
    )
    sources = await session.sources("PILOT", sessions=["PIL_900_MR1"])
    targets = session.targets(sources, subject_template="SA_001")
    plan = await session.plan(session.requests(sources, targets, "STUDY_A", move=move))
    return session, sources, plan


def _engine(client: XnatClient, journal: Journal, reader: object | None = None) -> CopyEngine:
    return CopyEngine(
        connection_for(client, url=client.server, owned=False).port,
        journal,
        reader or copying.source_reader(client),  # type: ignore[arg-type]
        retry=RetryPolicy(attempts=6, base=0.0, cap=0.0, jitter=0.0),
    )


@contextlib.asynccontextmanager
async def moving(
    sandbox: SandboxServer, tmp_path: Path
) -> AsyncIterator[tuple[XnatClient, Journal, object, copying.SourceReader]]:
    """A planned move of PIL_900_MR1 to STUDY_A, with the reader its engine will use
    (a test swaps in a fault)."""
    journal = Journal(tmp_path / "journal.sqlite3")
    async with XnatClient(Credentials(sandbox.url, "alice", "alice")) as client:
        _, _, plan = await _plan(client, journal, move=True)
        yield client, journal, plan, copying.source_reader(client)


async def _run_one(
    client: XnatClient, journal: Journal, plan: object, reader: object | None = None
) -> tuple[JobState, str]:
    """The plan's one job run to its end by an engine over ``reader``: state, message."""
    engine = _engine(client, journal, reader)
    await engine.start()
    [job_id] = await engine.submit(plan)  # type: ignore[arg-type]
    states = await engine.wait([job_id])
    await engine.close()
    return states[job_id], journal.job(job_id).message


async def test_failed_verification_never_deletes_the_source(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    async with moving(sandbox, tmp_path) as (client, journal, plan, reader):
        real = reader.list_dest

        async def one_file_short(uri: str) -> dict[str, list[RemoteFile]]:
            # The destination loses a file after the upload's own check (a fault).
            listed = await real(uri)
            first = sorted(listed)[-1]
            listed[first] = listed[first][1:]
            return listed

        reader.list_dest = one_file_short  # type: ignore[method-assign]
        state, message = await _run_one(client, journal, plan, reader)
        assert state is JobState.FAILED
        assert "copied" in message and "the source was NOT deleted" in message
        assert await client.find_experiment("PILOT", "PIL_900_MR1") is not None
        [job] = journal.jobs()
        assert not [s for s in journal.steps(job.id) if s.step == "delete-source"]


async def test_cut_downloads_are_retried_and_the_copy_verified(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    sandbox.faults.configure("cut=0.2")  # a fifth of the file reads drop mid-body
    journal = Journal(tmp_path / "journal.sqlite3")
    async with XnatClient(Credentials(sandbox.url, "alice", "alice")) as client:
        _, sources, plan = await _plan(client, journal, move=False)
        engine = _engine(client, journal)
        await engine.start()
        [job_id] = await engine.submit(plan)  # type: ignore[arg-type]
        states = await engine.wait([job_id])
        await engine.close()
        assert states[job_id] is JobState.VERIFIED, journal.job(job_id).message
        assert "match the source by md5" in journal.job(job_id).message


async def test_crash_mid_copy_resumes_without_resending_acknowledged_scans(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    journal = Journal(tmp_path / "journal.sqlite3")
    async with XnatClient(Credentials(sandbox.url, "alice", "alice")) as client:
        _, _, plan = await _plan(client, journal, move=True)
        first = _engine(client, journal)
        first.concurrency = 1
        await first.start()
        [job_id] = await first.submit(plan)  # type: ignore[arg-type]
        # The journal is what a killed process leaves behind: watch it, not the engine.
        while not any(s.state is SeriesState.SENT for s in journal.series(job_id)):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        # The process dies: tasks stop where they are, nothing more is journalled.
        await first.close()
        sent_before = {s.uid: s.attempts for s in journal.series(job_id)}
        assert journal.job(job_id).state.active
        second = _engine(client, journal)
        resumed = await second.start(resume=True)
        assert resumed == [job_id]
        states = await second.wait([job_id])
        await second.close()
        assert states[job_id] is JobState.VERIFIED, journal.job(job_id).message
        after = {s.uid: s.attempts for s in journal.series(job_id)}
        acknowledged = [u for u, n in sent_before.items() if n and after[u] == n]
        assert acknowledged  # the scan acknowledged before the crash was not sent again
        assert await client.find_experiment("PILOT", "PIL_900_MR1") is None  # moved
        assert await client.find_experiment("STUDY_A", "PIL_900_MR1") is not None


def test_routing_strings_are_rewritten_for_the_destination(tmp_path: Path) -> None:
    study = write_study(
        tmp_path,
        patient_id="P1",
        series=[SeriesSpec("MR", 1, "T1", 1)],
        study_description="xnat://PILOT/PIL_900/PIL_900_MR1",
        extra={"PatientComments": "Project: PILOT Subject: PIL_900 Session: PIL_900_MR1"},
    )
    data = study.series[0].paths[0].read_bytes()
    out = RoutingRewrite("STUDY_A", "SA_001", "SA_001_MR1")(data)
    ds = pydicom.dcmread(io.BytesIO(out))
    assert ds.StudyDescription == "xnat://STUDY_A/SA_001/SA_001_MR1"
    assert ds.PatientComments == "Project: STUDY_A Subject: SA_001 Session: SA_001_MR1"
    assert ds.PixelData == pydicom.dcmread(io.BytesIO(data)).PixelData
    plain = write_study(tmp_path / "b", patient_id="P2", series=[SeriesSpec("MR", 1, "T1", 1)])
    raw = plain.series[0].paths[0].read_bytes()
    assert RoutingRewrite("STUDY_A", "S", "E")(raw) is raw  # untouched, byte for byte


async def test_copy_and_move_jobs_share_one_engine_in_the_router(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # The Transfers panel and 'transfers resume' ask for each kind's engine; a copy and a
    # move must land on one engine (the remote source is bound once per process).
    from xnat_tui.config import Config
    from xnat_tui.transfer.kinds import JobKind
    from xnat_tui.workflow.jobs import JobRouter

    journal = Journal(tmp_path / "journal.sqlite3")
    async with XnatClient(Credentials(sandbox.url, "alice", "alice")) as client:
        connection = connection_for(client, url=client.server, owned=False)
        router = JobRouter(journal)
        try:
            copy = await router.ensure(JobKind.COPY, connection, Config())
            move = await router.ensure(JobKind.MOVE, connection, Config())
            assert copy is move and isinstance(copy, CopyEngine)
            assert router.engines == [copy]
        finally:
            await router.close()
        assert copy.closed
        # Closed engines are not handed out again.
        again = await copying._build(connection, journal, Config())
        assert again is not copy
        await again.close()


async def test_a_failed_anonymized_copy_can_be_retried_by_the_routers_engine(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # 'transfers retry' and the panel's retry build the engine from the journal: a failed
    # job's anonymization must be prepared too, or its retry fails as 'not prepared'.
    from xnat_tui.config import Config

    journal = Journal(tmp_path / "journal.sqlite3")
    async with XnatClient(Credentials(sandbox.url, "admin", "admin")) as client:
        connection = connection_for(client, url=client.server, owned=False)
        session = copying.CopySession(
            connection, journal, settings=copying.CopySettings(anonymization="xnat")
        )
        sources = await session.sources("PILOT", everything=True)
        targets = session.targets(sources)
        plan = await session.plan(session.requests(sources, targets, "STUDY_B", move=False))
        [jid] = journal.create_jobs(  # journalled as the engine would, never started
            [_new_job(client.server, "admin", plan.sendable[0])]
        )
        journal.set_state(jid, JobState.FAILED, "import refused (a fault)")
        engine = await copying._build(connection, journal, Config())
        try:
            assert isinstance(engine, CopyEngine) and engine.anonymizers is not None
            assert engine.anonymizers.transform_for(journal.job(jid)) is not None
        finally:
            await engine.close()


def _new_job(server: str, user: str, p: PlannedJob) -> NewJob:
    r = p.request
    return NewJob(
        server=server, username=user, project=r.project, subject=r.subject, label=r.label,
        study_uid=r.session.study_instance_uid, destination=r.destination,
        overwrite=r.overwrite, series=p.series, anonymization=r.anonymization,
        anon_options=r.anon_options.for_profile(r.anonymization), kind=r.kind,
        params=dict(r.params),
    )  # fmt: skip


async def test_a_delete_the_server_answers_404_while_still_listing_it_fails_the_move(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """A move never says 'deleted' (nor 'already gone') of a source still there."""
    async with moving(sandbox, tmp_path) as (client, journal, plan, reader):
        real = reader.delete_source

        async def misspelt(src: dict[str, str]) -> bool:  # a subject label the server lacks
            return await real({**src, "subject": "NO_SUCH_SUBJECT"})

        reader.delete_source = misspelt  # type: ignore[method-assign]
        state, message = await _run_one(client, journal, plan, reader)
        assert state is JobState.FAILED
        assert "could not be deleted" in message and "still lists it" in message
        assert "source PILOT/PIL_900_MR1 deleted" not in message
        assert await client.find_experiment("PILOT", "PIL_900_MR1") is not None


async def test_a_copy_into_a_project_that_anonymizes_on_arrival_is_verified_by_count(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """STUDY_B's own script rewrites what arrives: the copy differs from the source by
    MD5, as the plan's notes say, and is checked by count (it used to fail)."""
    journal = Journal(tmp_path / "journal.sqlite3")
    async with XnatClient(Credentials(sandbox.url, "admin", "admin")) as client:
        session = copying.CopySession(
            connection_for(client, url=client.server, owned=False),
            journal,
            settings=copying.CopySettings(destination=Destination.ARCHIVE),
        )
        notes = await session.differences("PILOT", "STUDY_B")
        assert any("verified by count" in n for n in notes)
        sources = await session.sources("PILOT", sessions=["PIL_900_MR1"])
        checked = await session.check(sources, session.targets(sources), "STUDY_B", move=False)
        state, message = await _run_one(client, journal, checked.plan)
        assert state is JobState.VERIFIED, message
        assert "match the source by count" in message


def test_a_destination_that_may_rewrite_on_arrival_is_still_checked_by_md5_where_it_did_not() -> (
    None
):
    from xnat_tui.transfer.copy_engine import SourceFileInfo, _compare_scan
    from xnat_tui.transfer.journal import ManifestEntry

    have = [SourceFileInfo("2", f"/f{i}", 10, f"{i:032x}") for i in range(2)]
    sent = [ManifestEntry(f"f{i}", "", 10, 0, f"{i:032x}") for i in range(2)]
    same = [RemoteFile(f"f{i}", 10, digest=f"{i:032x}") for i in range(2)]
    other = [RemoteFile(f"f{i}", 10, digest=f"{i + 7:032x}") for i in range(2)]
    assert _compare_scan("2", have, same, sent, rewritten=True).method == "md5"
    rewritten = _compare_scan("2", have, other, sent, rewritten=True)
    assert (rewritten.method, rewritten.passed) == ("count", True)
    corrupt = _compare_scan("2", have, other, sent, rewritten=False)
    assert (corrupt.method, corrupt.passed) == ("md5", False)
