"""Routing decides the project: ``xnat-tui upload --project P`` and ``--routed``, dry runs
against the demo sandbox (alice: owner of PILOT, member of STUDY_A).

The tree is real DICOM on disk; routing is XNAT's own form, ``Project: X Subject: S
Session: E`` in PatientComments, which the scanner reads as the server's receiver would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.unit.transfer.e2e_support import cli
from xnat_tui.dicom.synthetic import SeriesSpec, write_study
from xnat_tui.sandbox.server import SandboxThread

pytestmark = pytest.mark.e2e


def tree(root: Path) -> dict[str, str]:
    """Three sessions: routed to STUDY_A, routed to PILOT, not routed. Folder -> uid."""
    comments = {
        "TO_A": "Project: STUDY_A Subject: SA_001 Session: SA_001_RT",
        "TO_PILOT": "Project: PILOT Subject: RTP_01 Session: RTP_01_MR",
        "PLAIN": "",
    }
    out = {}
    for folder, text in comments.items():
        written = write_study(
            root / folder,
            patient_id=f"RT_{folder}",
            series=[SeriesSpec("MR", 1, "T1", 2)],
            extra={"PatientComments": text} if text else None,
        )
        out[folder] = written.study_instance_uid
    return out


def dry_run(url: str, root: Path, *target: str, json_out: bool = True) -> Any:
    args = ["upload", str(root), "--server", url, "--user", "alice", *target, "--dry-run"]
    return cli(*args, *(["--json"] if json_out else []))


def jobs_by_folder(stdout: str, uids: dict[str, str]) -> dict[str, dict[str, Any]]:
    jobs = json.loads(stdout)["plan"]["jobs"]
    by_uid = {j["study_instance_uid"]: j for j in jobs}
    assert set(by_uid) == set(uids.values())
    return {folder: by_uid[uid] for folder, uid in uids.items()}


def test_project_dry_run_names_the_routed_project_of_each_disagreeing_session(
    sandbox_thread: SandboxThread, tmp_path: Path
) -> None:
    uids = tree(tmp_path / "in")
    out = dry_run(sandbox_thread.url, tmp_path / "in", "--project", "PILOT")
    assert out.returncode == 0, out.stderr
    jobs = jobs_by_folder(out.stdout, uids)
    assert {f: j["project"] for f, j in jobs.items()} == dict.fromkeys(uids, "PILOT")
    assert jobs["TO_A"]["routed_project"] == "STUDY_A"
    assert jobs["TO_A"]["routed_elsewhere"] is True
    assert any(i["code"] == "routed" and "STUDY_A" in i["message"] for i in jobs["TO_A"]["issues"])
    assert (jobs["TO_PILOT"]["routed_project"], jobs["TO_PILOT"]["routed_elsewhere"]) == (
        "PILOT",
        False,
    )
    assert (jobs["PLAIN"]["routed_project"], jobs["PLAIN"]["routed_elsewhere"]) == (None, False)
    # Routing labels are used, whichever project is chosen; the plain one gets templates.
    assert (jobs["TO_A"]["subject"], jobs["TO_A"]["session"]) == ("SA_001", "SA_001_RT")
    assert (jobs["PLAIN"]["subject"], jobs["PLAIN"]["session"]) == ("RT_PLAIN", "RT_PLAIN_MR_1")


def test_routed_sends_each_session_where_routed_and_refuses_the_unrouted_one(
    sandbox_thread: SandboxThread, tmp_path: Path
) -> None:
    uids = tree(tmp_path / "in")
    out = dry_run(sandbox_thread.url, tmp_path / "in", "--routed")
    assert out.returncode == 1, out.stderr
    jobs = jobs_by_folder(out.stdout, uids)
    a, pilot, plain = jobs["TO_A"], jobs["TO_PILOT"], jobs["PLAIN"]
    assert (a["project"], a["subject"], a["session"], a["ok"]) == (
        "STUDY_A",
        "SA_001",
        "SA_001_RT",
        True,
    )
    assert a["verdict"] == "new" and not a["new_subject"] and not a["routed_elsewhere"]
    assert (pilot["project"], pilot["subject"], pilot["session"], pilot["ok"]) == (
        "PILOT",
        "RTP_01",
        "RTP_01_MR",
        True,
    )
    assert plain["ok"] is False and plain["project"] == ""
    assert [i["code"] for i in plain["issues"]] == ["no-routing"]
    assert "names no project" in plain["issues"][0]["message"]
    assert "PLAIN" in Path(plain["source"]).parts
    # Without --json, the refusal is printed with the folder it came from.
    text = dry_run(sandbox_thread.url, tmp_path / "in", "--routed", json_out=False)
    assert text.returncode == 1
    refusal = text.stderr[text.stderr.index(str(tmp_path / "in" / "PLAIN")) :]
    assert "names no project" in refusal.splitlines()[1]
    refused_line = text.stderr.splitlines()[
        text.stderr.splitlines().index(
            next(
                line for line in text.stderr.splitlines() if str(tmp_path / "in" / "PLAIN") in line
            )
        )
        - 1
    ]
    assert refused_line.startswith("NO (no project: not routed)")
