"""``xnat-tui copy`` / ``move`` killed with SIGKILL mid-transfer, then finished by
``xnat-tui transfers resume``: one session in the destination (no duplicate, nothing
left in its prearchive), every file as in the source, and for a move the source
deleted exactly once, after the copy was verified against it.

The demo's PIL_900/PIL_900_MR1 (two scans) goes from PILOT (alice owns it) into
STUDY_A as subject SA_001; imports are slowed down so the kill lands after the first
scan was acknowledged and before the second one was.
"""

from __future__ import annotations

import signal

import pytest

from tests.e2e.test_copy_cli import _files
from tests.e2e.test_reliability_cli import set_faults, wait_for
from tests.unit.transfer.e2e_support import cli, server_state, spawn
from xnat_tui.sandbox.server import SandboxThread
from xnat_tui.transfer import JobState, Journal, SeriesState
from xnat_tui.transfer.journal import JobRecord
from xnat_tui.transfer.kinds import JobKind

pytestmark = pytest.mark.e2e

SESSION = "PIL_900_MR1"


def _copy_jobs() -> list[JobRecord]:
    j = Journal()
    try:
        return j.jobs(kinds=[JobKind.COPY, JobKind.MOVE])
    finally:
        j.close()


def _one_scan_sent() -> bool:
    j = Journal()
    try:
        return any(s.state is SeriesState.SENT for job in _copy_jobs() for s in j.series(job.id))
    finally:
        j.close()


def _kill_then_resume(url: str, command: str, label: str) -> JobRecord:
    """Kill ``command`` mid-copy, check nothing was deleted yet, resume; the finished job."""
    source = _files(url, "PILOT", SESSION)
    # Each import waits, so a scan is acknowledged well before the next one is.
    set_faults(url, "latency=400ms,only=/data/services/import")
    proc = spawn(
        command, "--server", url, "--user", "alice", "--from", "PILOT", "--to", "STUDY_A",
        "--session", SESSION, "--subject-label", "SA_001", "--session-label", label,
        "--dest", "archive", "--jobs", "1", "--yes",
    )  # fmt: skip
    try:
        wait_for(_one_scan_sent)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    jobs = _copy_jobs()
    assert len(jobs) == 1 and jobs[0].state.active, jobs  # killed mid-transfer
    j = Journal()
    states = [s.state for s in j.series(jobs[0].id)]
    j.close()
    assert SeriesState.SENT in states and len(set(states)) > 1, states  # not all sent
    set_faults(url, "")
    assert _files(url, "PILOT", SESSION) == source  # nothing deleted mid-copy
    resumed = cli("transfers", "resume", "--yes")
    assert resumed.returncode == 0, resumed.stderr
    (job,) = _copy_jobs()
    assert job.state is JobState.VERIFIED, job.message
    assert _files(url, "STUDY_A", label) == source
    return job


def _assert_once(url: str, label: str, prearchive_before: list[tuple[str, str, str]]) -> None:
    archived, prearchive = server_state(url, "STUDY_A")
    assert [e for e, _ in archived].count(label) == 1, archived
    assert prearchive == prearchive_before  # no half session left to archive later


def test_copy_killed_then_resumed_gives_one_verified_session(
    sandbox_thread: SandboxThread,
) -> None:
    url = sandbox_thread.url
    source = _files(url, "PILOT", SESSION)
    before = server_state(url, "STUDY_A")[1]
    job = _kill_then_resume(url, "copy", "COPY_K9")
    assert "match the source by md5" in job.message
    _assert_once(url, "COPY_K9", before)
    assert _files(url, "PILOT", SESSION) == source  # a copy keeps its source
    again = cli("transfers", "resume", "--yes")  # nothing left: no second copy
    assert again.returncode == 0 and "nothing to resume" in again.stderr
    _assert_once(url, "COPY_K9", before)


def test_move_killed_then_resumed_deletes_the_source_once_after_verifying(
    sandbox_thread: SandboxThread,
) -> None:
    url = sandbox_thread.url
    before = server_state(url, "STUDY_A")[1]
    job = _kill_then_resume(url, "move", "MOVE_K9")
    assert f"source PILOT/{SESSION} deleted" in job.message
    _assert_once(url, "MOVE_K9", before)
    assert _files(url, "PILOT", SESSION) == {}
    j = Journal()
    steps = [(s.step, s.phase, s.detail) for s in j.steps(job.id)]
    j.close()
    deletes = [s for s in steps if s[0] == "delete-source"]
    # Started once, only after every scan matched the source, and done once.
    assert [(s, p) for s, p, _ in deletes] == [("delete-source", "start"), ("delete-source", "end")]
    assert "match the source by md5" in deletes[0][2]
    assert deletes[1][2] == "deleted"
