"""``xnat-tui copy`` / ``xnat-tui move`` as a user runs them, against the sandbox.

Demo roles: alice owns PILOT (PIL_900/PIL_900_MR1: a localizer and a T1) and is a
member of STUDY_A; STUDY_B (admin only) has a series filter dropping localizers and a
project anonymization script.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.unit.transfer.e2e_support import cli
from xnat_tui.sandbox.server import SandboxThread
from xnat_tui.xnat import download_ops
from xnat_tui.xnat.client import XnatClient
from xnat_tui.xnat.credentials import Credentials

pytestmark = pytest.mark.e2e


def _files(url: str, project: str, label: str, user: str = "admin") -> dict[str, list[str]]:
    """scan ID -> sorted MD5s of a session's DICOM files ({} when it does not exist)."""

    async def go() -> dict[str, list[str]]:
        async with XnatClient(Credentials(url, user, user)) as client:
            found = await client.find_experiment(project, label)
            if found is None:
                return {}
            out: dict[str, list[str]] = {}
            for f in await download_ops.session_files(client, found.id):
                out.setdefault(f.scan_id, []).append(f.digest)
            return {k: sorted(v) for k, v in out.items()}

    return asyncio.run(go())


def test_copy_streams_verifies_and_keeps_the_source(
    sandbox_thread: SandboxThread, tmp_path: Path
) -> None:
    url = sandbox_thread.url
    source = _files(url, "PILOT", "PIL_900_MR1")
    assert source
    common = ["--server", url, "--user", "alice", "--from", "PILOT", "--to", "STUDY_A"]
    # STUDY_A does not let uploads create subjects: the planner says so, as for uploads.
    blocked = cli("copy", *common, "--session", "PIL_900_MR1", "--dry-run")
    assert blocked.returncode == 1
    assert "project STUDY_A does not allow creating subjects" in blocked.stderr
    common += ["--subject-label", "SA_001"]
    dry = cli("copy", *common, "--session", "PIL_900_MR1", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    job = json.loads(dry.stdout)["plan"]["jobs"][0]
    assert (job["subject"], job["session"], job["verdict"]) == ("SA_001", "PIL_900_MR1", "new")
    assert _files(url, "STUDY_A", "PIL_900_MR1") == {}  # a dry run copies nothing

    done = cli(
        "copy", *common, "--session", "PIL_900_MR1", "--session-label", "{routing.session}_C",
        "--dest", "archive", "--yes", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] and result["verified"] == 1
    message = result["jobs"][0]["message"]
    assert "match the source by md5" in message, message
    assert _files(url, "STUDY_A", "PIL_900_MR1_C") == source
    assert _files(url, "PILOT", "PIL_900_MR1") == source  # a copy keeps the source
    listing = cli("transfers", "list", "--all", "--json")
    assert [j.get("kind") for j in json.loads(listing.stdout)] == ["copy"]


def test_move_refused_up_front_without_delete_rights(sandbox_thread: SandboxThread) -> None:
    url = sandbox_thread.url
    common = ["--server", url, "--user", "alice", "--from", "STUDY_A", "--to", "PILOT"]
    no_yes = cli("move", *common, "--session", "SA_002_MR1")
    assert no_yes.returncode == 2 and "--yes" in no_yes.stderr
    refused = cli("move", *common, "--session", "SA_002_MR1", "--yes")
    assert refused.returncode == 1
    assert "may not delete in project STUDY_A" in refused.stderr
    assert _files(url, "STUDY_A", "SA_002_MR1")
    assert _files(url, "PILOT", "SA_002_MR1") == {}


def test_move_copies_verifies_then_deletes(sandbox_thread: SandboxThread) -> None:
    url = sandbox_thread.url
    source = _files(url, "PILOT", "PIL_900_MR1")
    common = ["--server", url, "--user", "alice", "--from", "PILOT", "--to", "STUDY_A"]
    moved = cli(
        "move", *common, "--subject", "PIL_900", "--subject-label", "SA_001",
        "--dest", "archive", "--yes", "--json",
    )  # fmt: skip
    assert moved.returncode == 0, moved.stderr
    result = json.loads(moved.stdout)
    assert result["ok"], result
    assert "source PILOT/PIL_900_MR1 deleted" in result["jobs"][0]["message"]
    assert _files(url, "STUDY_A", "PIL_900_MR1") == source
    assert _files(url, "PILOT", "PIL_900_MR1") == {}


def test_copy_reports_what_the_destination_changes(sandbox_thread: SandboxThread) -> None:
    url = sandbox_thread.url
    common = ["--server", url, "--user", "admin", "--from", "PILOT", "--to", "STUDY_B"]
    dry = cli("copy", *common, "--all", "--dry-run", "--json", password="admin")
    assert dry.returncode == 0, dry.stderr
    out = json.loads(dry.stdout)
    notes = " ".join(out["differences"])
    assert "STUDY_B has its own series import filter" in notes
    assert "STUDY_B has a project anonymization script" in notes
    dropped = out["plan"]["jobs"][0]["dropped"]
    assert len(dropped) == 1 and "ocali" in json.dumps(dropped).lower()
    text = cli("copy", *common, "--all", "--dry-run", password="admin")
    assert "note: STUDY_B has its own series import filter" in text.stderr


def test_share_and_change_primary(sandbox_thread: SandboxThread) -> None:
    url = sandbox_thread.url
    common = ["--server", url, "--user", "alice", "--from", "PILOT", "--to", "STUDY_A"]
    shared = cli("copy", *common, "--session", "PIL_900_MR1", "--share", "--yes")
    assert shared.returncode == 0, shared.stderr
    assert "shared into STUDY_A as PIL_900/PIL_900_MR1" in shared.stderr
    clash = cli(
        "move", *common, "--session", "PIL_900_MR1", "--change-primary", "--yes",
        "--session-label", "SA_002_MR1",
    )  # fmt: skip
    assert clash.returncode == 1 and "already used in STUDY_A: SA_002_MR1" in clash.stderr
    assert _files(url, "PILOT", "PIL_900_MR1")


def test_move_refuses_a_session_only_shared_into_the_source(sandbox_thread: SandboxThread) -> None:
    url = sandbox_thread.url
    into_a = ["--server", url, "--user", "alice", "--from", "PILOT", "--to", "STUDY_A"]
    shared = cli("copy", *into_a, "--session", "PIL_900_MR1", "--share", "--yes")
    assert shared.returncode == 0, shared.stderr
    source = _files(url, "PILOT", "PIL_900_MR1")
    out_of_a = ["--server", url, "--user", "admin", "--from", "STUDY_A", "--to", "PILOT"]
    refused = cli("move", *out_of_a, "--session", "PIL_900_MR1", "--yes", password="admin")
    assert refused.returncode == 1
    assert "only shared into STUDY_A: PIL_900_MR1 (from PILOT)" in refused.stderr
    assert "nothing was moved" in refused.stderr
    assert _files(url, "PILOT", "PIL_900_MR1") == source
