"""The engine against a misbehaving sandbox: 5xx, dropped connections, expiring sessions."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.sandbox import SandboxFactory
from tests.unit.transfer.e2e_support import digests, write_sessions
from xnat_tui.dicom.scan import scan_all
from xnat_tui.transfer import (
    Destination,
    JobState,
    JobStateChanged,
    Journal,
    RetryPolicy,
    SeriesState,
    SeriesStateChanged,
    TransferEngine,
)
from xnat_tui.transfer.source import from_dicom
from xnat_tui.transfer.xnat_port import XnatPort
from xnat_tui.workflow.login import connection_for
from xnat_tui.workflow.targets import LabelRules
from xnat_tui.workflow.upload import UploadSession, UploadSettings
from xnat_tui.xnat.client import XnatClient
from xnat_tui.xnat.credentials import Credentials

pytestmark = pytest.mark.e2e
FAST = RetryPolicy(attempts=8, base=0.02, cap=0.2)


async def _plan(client: XnatClient, journal: Journal, root: Path):  # type: ignore[no-untyped-def]
    sessions = [from_dicom(s) for s in scan_all([root], use_cache=False, workers=1).sessions]
    uploads = UploadSession(
        connection_for(client, url=client.server, owned=False),
        journal,
        settings=UploadSettings(destination=Destination.ARCHIVE),
    )
    rules = LabelRules("{PatientID}", "{subject}_{Modality}_{n}")
    plan = await uploads.plan(await uploads.requests_for(sessions, rules, project="PILOT"))
    assert plan.ok, plan.to_dict()
    return plan


async def test_flaky_server_every_job_completes_and_verifies(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sandbox = await sandbox_factory()
    write_sessions(tmp_path / "in", "FLK", 4)
    before = digests(tmp_path / "in")
    async with XnatClient(Credentials(sandbox.url, "alice", "alice")) as client:
        journal = Journal(tmp_path / "j.sqlite3")
        plan = await _plan(client, journal, tmp_path / "in")
        sandbox.faults.configure("error=503:0.1,error=500:0.05,drop=0.08,seed=7")
        engine = TransferEngine(XnatPort(client), journal, retry=FAST, receipts_dir=tmp_path / "r")
        stream = engine.subscribe()
        await engine.start()
        ids = await engine.submit(plan)
        states = await engine.wait(ids)
        await engine.close()
        stats = dict(sandbox.faults.stats)
        sandbox.faults.clear()
        assert set(states.values()) == {JobState.VERIFIED}, [journal.job(i).message for i in ids]
        retried = [e async for e in stream if isinstance(e, SeriesStateChanged) and e.attempt > 1]
        assert stats.get("drop", 0) + stats.get("error-503", 0) + stats.get("error-500", 0) > 0
        assert retried or stats  # faults met the uploads, not only the listings
        exps = await client.experiments("PILOT")
        labels = [e.label for e in exps if e.label.startswith("FLK")]
        assert sorted(labels) == [f"FLK{i:02d}_MR_1" for i in range(4)]
        for jid in ids:
            assert all(s.state is SeriesState.SENT for s in journal.series(jid))
    assert digests(tmp_path / "in") == before


async def test_session_expiry_mid_batch_relogs_in_transparently(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sandbox = await sandbox_factory()
    write_sessions(tmp_path / "in", "EXP", 3)
    async with XnatClient(Credentials(sandbox.url, "alice", "alice")) as client:
        journal = Journal(tmp_path / "j.sqlite3")
        plan = await _plan(client, journal, tmp_path / "in")
        relogins = client.relogins
        engine = TransferEngine(
            XnatPort(client), journal, concurrency=2, retry=FAST, receipts_dir=tmp_path / "r"
        )
        stream = engine.subscribe()
        await engine.start()
        ids = await engine.submit(plan)
        sent = 0
        ended: set[str] = set()
        async for event in stream:
            if isinstance(event, SeriesStateChanged) and event.state is SeriesState.SENT:
                sent += 1
                if sent in (1, 3):
                    # Every HTTP session on the server dies before the next request.
                    sandbox.faults.configure("expire-sessions")
            if isinstance(event, JobStateChanged) and event.state.finished:
                ended.add(event.job_id)
            # Every series sent, or every job over (a failure is then reported by the
            # assertion below instead of waiting here until the test times out).
            if sent == 6 or ended >= set(ids):
                break
        states = await engine.wait(ids)
        await engine.close()
        sandbox.faults.clear()
        assert set(states.values()) == {JobState.VERIFIED}, [journal.job(i).message for i in ids]
        assert client.relogins > relogins


async def test_file_vanishing_mid_upload_is_reported_and_the_rest_continues(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sandbox = await sandbox_factory()
    [study] = write_sessions(tmp_path / "in", "VAN", 1, series=3)
    victim = study.series[2].paths[1]
    async with XnatClient(Credentials(sandbox.url, "alice", "alice")) as client:
        journal = Journal(tmp_path / "j.sqlite3")
        plan = await _plan(client, journal, tmp_path / "in")
        engine = TransferEngine(
            XnatPort(client), journal, concurrency=1, retry=FAST, receipts_dir=tmp_path / "r"
        )
        stream = engine.subscribe()
        await engine.start()
        [jid] = await engine.submit(plan)
        async for event in stream:
            if isinstance(event, SeriesStateChanged) and event.state is SeriesState.SENT:
                victim.unlink()  # gone while the upload is under way
                break
        states = await engine.wait([jid])
        await engine.close()
        assert states[jid] is JobState.FAILED
        message = journal.job(jid).message
        assert str(victim) in message and "vanished" in message
        assert [s.state for s in journal.series(jid)] == [
            SeriesState.SENT,
            SeriesState.SENT,
            SeriesState.FAILED,
        ]
        # Not committed: nothing half-done reached the archive.
        assert not [e for e in await client.experiments("PILOT") if e.label.startswith("VAN")]


class LosesCommitAnswers(XnatPort):
    """The commit reaches the server, its answer is lost (connection dropped)."""

    commits = 0

    async def commit(self, uri: str, *, auto_archive: bool | None):  # type: ignore[no-untyped-def]
        type(self).commits += 1
        await super().commit(uri, auto_archive=auto_archive)
        raise ConnectionResetError("connection dropped before the answer")


async def test_a_lost_commit_answer_is_looked_up_on_the_server_not_repeated(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sandbox = await sandbox_factory()
    write_sessions(tmp_path / "in", "LCA", 1)
    async with XnatClient(Credentials(sandbox.url, "alice", "alice")) as client:
        journal = Journal(tmp_path / "j.sqlite3")
        plan = await _plan(client, journal, tmp_path / "in")
        engine = TransferEngine(
            LosesCommitAnswers(client), journal, retry=FAST, receipts_dir=tmp_path / "r"
        )
        await engine.start()
        [jid] = await engine.submit(plan)
        states = await engine.wait([jid])
        await engine.close()
        assert states[jid] is JobState.VERIFIED, journal.job(jid).message
        assert LosesCommitAnswers.commits == 1
        job = journal.job(jid)
        assert job.archived and "/archive/" in job.result_uri
        exps = [e for e in await client.experiments("PILOT") if e.label.startswith("LCA")]
        assert len(exps) == 1
        steps = [(s.step, s.phase) for s in journal.steps(jid)]
        assert ("commit", "begin") in steps and ("commit", "end") in steps
