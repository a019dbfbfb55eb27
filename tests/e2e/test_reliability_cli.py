"""Crash safety of ``xnat-tui upload`` run as a real process: kill -9, Ctrl-C, disk full."""

from __future__ import annotations

import json
import os
import random
import signal
import time
import urllib.request
from pathlib import Path

import pytest

from tests.unit.transfer.e2e_support import cli, digests, server_state, spawn, write_sessions
from xnat_tui.sandbox.server import SandboxThread
from xnat_tui.transfer import JobState, Journal, SeriesState

pytestmark = pytest.mark.e2e


def set_faults(url: str, spec: str) -> None:
    req = urllib.request.Request(
        f"{url}/sandbox/faults",
        data=json.dumps({"spec": spec}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as reply:
        assert reply.status == 200


def wait_for(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached")


def jobs_for(prefix: str) -> list:  # type: ignore[type-arg]
    j = Journal()
    try:
        return [job for job in j.jobs() if job.subject.startswith(prefix)]
    finally:
        j.close()


def assert_each_once(url: str, prefix: str, uids: dict[str, str]) -> None:
    archived, prearchive = server_state(url, "PILOT")
    mine = sorted(e for e in archived if e[0].startswith(prefix))
    assert mine == sorted(uids.items()), mine
    assert not [p for p in prearchive if p[1] in uids.values()], prearchive


def test_kill_9_at_any_point_then_resume_gives_each_session_exactly_once(
    sandbox_thread: SandboxThread, tmp_path: Path
) -> None:
    url = sandbox_thread.url
    # Slow imports and commits so the kill lands before, during and after sending.
    set_faults(url, "latency=80ms,only=/data/services/import,only=/data/prearchive")
    # Random kill points (before, during and after sending), reproducible from the seed.
    seed = int(os.environ.get("XNAT_TUI_TEST_SEED", time.time_ns() % 100_000))
    rng = random.Random(seed)
    delays = [0.0, rng.uniform(0.05, 0.5), rng.uniform(0.5, 1.2)]
    for round_, delay in enumerate(delays):
        prefix = f"K{round_}X"
        studies = write_sessions(tmp_path / prefix, prefix, 4)
        uids = {f"{s.patient_id}_MR_1": s.study_instance_uid for s in studies}
        before = digests(tmp_path / prefix)
        proc = spawn(
            "upload",
            str(tmp_path / prefix),
            "--server",
            url,
            "--user",
            "alice",
            "--project",
            "PILOT",
            "--dest",
            "archive",
            "--yes",
            "--jobs",
            "2",
        )
        try:
            wait_for(lambda prefix=prefix: len(jobs_for(prefix)) == 4)
            time.sleep(delay)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        resumed = cli("transfers", "resume", "--json", "--yes")
        where = f"seed {seed}, killed {delay:.2f}s after the jobs were journalled"
        assert resumed.returncode == 0, (where, resumed.stderr)
        assert {j.state for j in jobs_for(prefix)} == {JobState.VERIFIED}, where
        assert_each_once(url, prefix, uids)
        assert digests(tmp_path / prefix) == before
    set_faults(url, "")


def test_ctrl_c_leaves_a_consistent_journal_and_resume_finishes(
    sandbox_thread: SandboxThread, tmp_path: Path
) -> None:
    url = sandbox_thread.url
    studies = write_sessions(tmp_path / "in", "INT", 3)
    uids = {f"{s.patient_id}_MR_1": s.study_instance_uid for s in studies}
    set_faults(url, "latency=150ms,only=/data/services/import")
    proc = spawn(
        "upload",
        str(tmp_path / "in"),
        "--server",
        url,
        "--user",
        "alice",
        "--project",
        "PILOT",
        "--dest",
        "archive",
        "--yes",
        "--jobs",
        "1",
    )

    def one_sent() -> bool:
        j = Journal()
        try:
            return any(
                s.state is SeriesState.SENT for job in jobs_for("INT") for s in j.series(job.id)
            )
        finally:
            j.close()

    wait_for(one_sent)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "transfers resume" in err
    j = Journal()
    jobs = jobs_for("INT")
    assert jobs and all(job.state.active for job in jobs)
    assert not [s for job in jobs for s in j.series(job.id) if s.state is SeriesState.SENDING]
    assert all(job.owner == "" for job in jobs)  # leases released on a clean stop
    j.close()
    set_faults(url, "")
    resumed = cli("transfers", "resume", "--yes")
    assert resumed.returncode == 0, resumed.stderr
    assert_each_once(url, "INT", uids)


def test_disk_full_is_a_clear_error_and_the_job_can_be_retried(
    sandbox_thread: SandboxThread, tmp_path: Path
) -> None:
    url = sandbox_thread.url
    studies = write_sessions(tmp_path / "in", "DSK", 1)
    before = digests(tmp_path / "in")
    set_faults(url, "disk-full,only=/data/services/import")
    up = cli(
        "upload",
        str(tmp_path / "in"),
        "--server",
        url,
        "--user",
        "alice",
        "--project",
        "PILOT",
        "--dest",
        "archive",
        "--yes",
    )
    assert up.returncode == 1
    assert "out of disk space" in up.stderr and "transfers retry" in up.stderr
    # The hint is given once: not per series, again as an error, and again in the summary.
    assert up.stderr.count("free space") == 1, up.stderr
    assert up.stderr.count("transfers retry") == 1, up.stderr
    [job] = jobs_for("DSK")
    assert job.state is JobState.FAILED
    set_faults(url, "")
    again = cli("transfers", "retry", job.id, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["verified"] == 1
    assert_each_once(url, "DSK", {"DSK00_MR_1": studies[0].study_instance_uid})
    assert digests(tmp_path / "in") == before


def test_a_dropped_ssh_connection_does_not_stop_the_upload(
    sandbox_thread: SandboxThread, tmp_path: Path
) -> None:
    url = sandbox_thread.url
    studies = write_sessions(tmp_path / "in", "HUP", 2)
    uids = {f"{s.patient_id}_MR_1": s.study_instance_uid for s in studies}
    set_faults(url, "latency=150ms,only=/data/services/import")
    proc = spawn(
        "upload",
        str(tmp_path / "in"),
        "--server",
        url,
        "--user",
        "alice",
        "--project",
        "PILOT",
        "--dest",
        "archive",
        "--yes",
        "--jobs",
        "1",
    )
    try:
        wait_for(lambda: len(jobs_for("HUP")) == 2)
        proc.send_signal(signal.SIGHUP)  # what the terminal sends when SSH drops
        _, err = proc.communicate(timeout=60)
    finally:
        set_faults(url, "")
    assert proc.returncode == 0, err
    assert {j.state for j in jobs_for("HUP")} == {JobState.VERIFIED}
    assert_each_once(url, "HUP", uids)
