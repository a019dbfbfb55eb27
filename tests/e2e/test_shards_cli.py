"""Job arrays: ``xnat-tui upload --shard I/N`` on N nodes sends every session once.

Real uploads to the sandbox, each shard with its own journal (as each node of a Slurm
array has), then ``transfers list --all`` over all the journals.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.transfer.e2e_support import cli, write_sessions
from xnat_tui.sandbox.server import SandboxThread

pytestmark = pytest.mark.e2e


def test_three_shards_upload_every_session_exactly_once(
    sandbox_thread: SandboxThread, tmp_path: Path
) -> None:
    studies = write_sessions(tmp_path / "tree", "SHD", 7, series=1, files=2)
    every = {s.study_instance_uid for s in studies}
    sent: list[str] = []
    journals: list[Path] = []
    for index in range(3):
        journal = tmp_path / f"node-{index}.sqlite3"
        journals.append(journal)
        run = cli(
            "upload", str(tmp_path / "tree"), "--server", sandbox_thread.url, "--user", "alice",
            "--project", "PILOT", "--shard", f"{index}/3", "--journal", str(journal),
            "--yes", "--json",
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        result = json.loads(run.stdout)
        sent += [job["study_instance_uid"] for job in result["jobs"]]
        assert all(job["state"] == "verified" for job in result["jobs"])
    assert sorted(sent) == sorted(every)  # all of them, none twice

    listed = cli("transfers", "list", "--all", "--json", *[f"--journal={j}" for j in journals])
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert sorted(r["study_instance_uid"] for r in rows) == sorted(every)
    assert {r["journal"] for r in rows} <= {str(j) for j in journals}


def test_a_bad_shard_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "tree").mkdir()
    run = cli("upload", str(tmp_path / "tree"), "--project", "P", "--shard", "3/3")
    assert run.returncode == 2
    assert "0 <= I < N" in run.stderr
    run = cli("upload", "", "--project", "P")
    assert run.returncode == 2 and "empty path" in run.stderr
