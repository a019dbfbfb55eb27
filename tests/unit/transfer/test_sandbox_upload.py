"""The engine against the real sandbox server through the real client."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.unit.transfer.helpers import request_for
from xnat_tui.dicom.scan import scan_all
from xnat_tui.dicom.synthetic import SeriesSpec, write_study
from xnat_tui.sandbox.server import SandboxServer
from xnat_tui.transfer import (
    Destination,
    JobState,
    Journal,
    RetryPolicy,
    TransferEngine,
)
from xnat_tui.transfer.source import from_dicom
from xnat_tui.transfer.xnat_port import XnatPort
from xnat_tui.workflow.planner import Planner
from xnat_tui.xnat.client import XnatClient
from xnat_tui.xnat.credentials import Credentials


def _digests(root: Path) -> dict[Path, str]:
    return {p: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.dcm"))}


async def test_upload_to_sandbox_archive_and_verify(sandbox: SandboxServer, tmp_path: Path) -> None:
    study = write_study(
        tmp_path / "in",
        patient_id="SUBJ01",
        series=[SeriesSpec("MR", 1, "T1", 3), SeriesSpec("MR", 2, "T2", 2)],
    )
    before = _digests(tmp_path / "in")
    summary = scan_all([tmp_path / "in"], use_cache=False, workers=1)
    [session] = [from_dicom(s) for s in summary.sessions]
    async with XnatClient(Credentials(sandbox.url, "alice", "alice")) as client:
        port = XnatPort(client)
        journal = Journal(tmp_path / "j.sqlite3")
        planner = Planner(port, journal)
        plan = await planner.plan(
            [request_for(session, project="PILOT", destination=Destination.ARCHIVE)]
        )
        assert plan.ok, plan.to_dict()
        engine = TransferEngine(
            port, journal, retry=RetryPolicy(base=0.05), receipts_dir=tmp_path / "r"
        )
        await engine.start()
        ids = await engine.submit(plan)
        states = await engine.wait(ids)
        await engine.close()
        job = journal.job(ids[0])
        assert states[ids[0]] is JobState.VERIFIED, job.message
        assert job.archived is True
        exp = await client.find_experiment("PILOT", "SUBJ01_MR_1")
        assert exp is not None and exp.study_uid == study.study_instance_uid
        receipt = engine.receipt(ids[0])
        assert receipt is not None
        assert [(c.scan_id, c.server_files, c.passed) for c in receipt.scans] == [
            ("1", 3, True),
            ("2", 2, True),
        ]
        assert {c.method for c in receipt.scans} == {"md5"}
    assert _digests(tmp_path / "in") == before
