"""``xnat-tui transfers`` covers every workflow's jobs: ``list`` names each job's
direction, and ``resume`` hands a job to the engine of its kind (not the upload one)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from tests.fixtures.sandbox import SandboxThread
from tests.ui.fakes import FakeEngine
from tests.unit.transfer.test_journal import new_job
from xnat_tui.cli import main
from xnat_tui.config import Config
from xnat_tui.transfer.journal import Journal
from xnat_tui.transfer.kinds import JobKind
from xnat_tui.transfer.types import JobState
from xnat_tui.workflow import jobs
from xnat_tui.workflow.login import Connection


class VerifyingEngine(FakeEngine):
    """Stands in for another workflow's engine: adopting a job finishes it."""

    def adopt(self, job_id: str) -> bool:
        self.calls.append(("adopt", job_id))
        self.journal.set_state(job_id, JobState.VERIFIED, "verified by MD5")
        self.labels[job_id] = job_id
        self.states[job_id] = JobState.VERIFIED
        return True


def test_list_names_each_jobs_direction(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    journal = Journal()
    up, down = journal.create_jobs(
        [new_job(state), replace(new_job(state), kind=JobKind.DOWNLOAD, label="E2")]
    )
    journal.close()
    assert main(["transfers", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(up in line and "↑ upload" in line for line in lines)
    assert any(down in line and "↓ download" in line for line in lines)
    assert main(["transfers", "list", "--json"]) == 0
    kinds = {j["id"]: j["kind"] for j in json.loads(capsys.readouterr().out)}
    assert kinds == {up: "upload", down: "download"}


def test_resume_runs_a_job_with_the_engine_of_its_kind(
    state: Path,
    sandbox_thread: SandboxThread,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("XNAT_PASS", "alice")
    built: list[VerifyingEngine] = []

    async def build(connection: Connection, journal: Journal, config: Config) -> VerifyingEngine:
        engine = VerifyingEngine()
        engine.journal = journal  # type: ignore[attr-defined]
        built.append(engine)
        return engine

    jobs._load_workflows()  # the real modules register theirs first; the fake replaces it
    monkeypatch.setitem(jobs._BUILDERS, JobKind.DOWNLOAD, build)
    journal = Journal()
    job = replace(
        new_job(state), server=sandbox_thread.url, username="alice", kind=JobKind.DOWNLOAD
    )
    [jid] = journal.create_jobs([job])
    journal.close()
    code = main(["transfers", "resume", jid, "--yes", "--json"])
    assert [c for c in built[0].calls if c[0] == "adopt"] == [("adopt", jid)]
    assert Journal().job(jid).state is JobState.VERIFIED
    result = json.loads(capsys.readouterr().out)
    assert [j["id"] for j in result["jobs"]] == [jid] and code == 0
