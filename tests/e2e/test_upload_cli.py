"""``xnat-tui upload`` and ``xnat-tui transfers`` as a user runs them, against the sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.transfer.e2e_support import cli, digests, server_state, write_sessions
from xnat_tui.sandbox.server import SandboxThread

pytestmark = pytest.mark.e2e


def test_upload_verifies_then_refuses_a_second_copy(
    sandbox_thread: SandboxThread, tmp_path: Path
) -> None:
    studies = write_sessions(tmp_path / "in", "UPL", 2)
    before = digests(tmp_path / "in")
    url = sandbox_thread.url
    common = ["--server", url, "--user", "alice", "--project", "PILOT"]

    dry = cli("upload", str(tmp_path / "in"), *common, "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)["plan"]
    assert [j["session"] for j in plan["jobs"]] == ["UPL00_MR_1", "UPL01_MR_1"]
    assert all(j["new_subject"] and j["verdict"] == "new" for j in plan["jobs"])
    assert not [e for e in server_state(url, "PILOT")[0] if e[0].startswith("UPL")]  # dry run

    up = cli("upload", str(tmp_path / "in"), *common, "--dest", "archive", "--yes", "--json")
    assert up.returncode == 0, up.stderr
    result = json.loads(up.stdout)
    assert result["ok"] and result["verified"] == 2
    for job in result["jobs"]:
        receipt = json.loads(Path(job["receipt"]).read_text())
        assert receipt["verified"] and {s["method"] for s in receipt["scans"]} == {"md5"}
    archived, _ = server_state(url, "PILOT")
    assert sorted(e for e in archived if e[0].startswith("UPL")) == sorted(
        (f"UPL{i:02d}_MR_1", s.study_instance_uid) for i, s in enumerate(studies)
    )

    again = cli("upload", str(tmp_path / "in"), *common, "--yes", "--json")
    assert again.returncode == 1
    refused = json.loads(again.stdout)["plan"]["jobs"]
    assert {j["verdict"] for j in refused} == {"merge"}
    assert "overwrite=append" in refused[0]["issues"][0]["message"]
    assert len([e for e in server_state(url, "PILOT")[0] if e[0].startswith("UPL")]) == 2

    listing = cli("transfers", "list", "--all", "--json")
    assert listing.returncode == 0
    assert {j["state"] for j in json.loads(listing.stdout)} == {"verified"}
    show = cli("transfers", "show", result["jobs"][0]["id"][:6])
    assert show.returncode == 0 and "verified" in show.stdout and "series" in show.stdout
    assert digests(tmp_path / "in") == before


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    missing = cli("upload", str(tmp_path / "nope"), "--project", "P")
    assert missing.returncode == 2 and "no such file" in missing.stderr
    (tmp_path / "x").mkdir()
    bad = cli("upload", str(tmp_path / "x"), "--project", "P", "--session", "{PatientID")
    assert bad.returncode == 2 and "--session" in bad.stderr
    nojob = cli("transfers", "show", "deadbeef")
    assert nojob.returncode == 1 and "no transfer job" in nojob.stderr


def test_blocked_plans_are_explained(sandbox_thread: SandboxThread, tmp_path: Path) -> None:
    write_sessions(tmp_path / "in", "BLK", 2)
    out = cli(
        "upload",
        str(tmp_path / "in"),
        "--server",
        sandbox_thread.url,
        "--user",
        "alice",
        "--project",
        "STUDY_A",
        "--dry-run",
        "--json",
    )
    assert out.returncode == 1
    jobs = json.loads(out.stdout)["plan"]["jobs"]
    codes = {i["code"] for j in jobs for i in j["issues"]}
    assert {"create-subject", "bulk-upload"} <= codes


def test_anonymized_upload_verifies_against_what_was_sent(
    sandbox_thread: SandboxThread, tmp_path: Path
) -> None:
    import asyncio

    from xnat_tui.xnat.client import XnatClient
    from xnat_tui.xnat.credentials import Credentials

    write_sessions(tmp_path / "in", "ANO", 1, series=1)
    before = digests(tmp_path / "in")
    up = cli(
        "upload",
        str(tmp_path / "in"),
        "--server",
        sandbox_thread.url,
        "--user",
        "alice",
        "--project",
        "PILOT",
        "--dest",
        "archive",
        "--anon",
        "basic",
        "--yes",
        "--json",
    )
    assert up.returncode == 0, up.stderr
    [job] = json.loads(up.stdout)["jobs"]
    receipt = json.loads(Path(job["receipt"]).read_text())
    assert receipt["verified"] and receipt["anonymization"]["profile"] == "basic"
    assert len(receipt["anonymization"]["scripts_sha256"]) == 1

    async def server_digests() -> set[str]:
        async with XnatClient(Credentials(sandbox_thread.url, "alice", "alice")) as c:
            files = await c.session_files(job["result_uri"])
            return {f.digest for fs in files.values() for f in fs}

    on_server = asyncio.run(server_digests())
    assert len(on_server) == 3
    assert not on_server & set(before.values())  # what arrived is not the original bytes
    assert digests(tmp_path / "in") == before  # and the originals were not touched


def _admin(url: str, method: str, path: str, **kw: object) -> int:
    import urllib.request

    data = kw.get("data")
    req = urllib.request.Request(
        url + path,
        method=method,
        data=data if isinstance(data, bytes) else None,
        headers={"Authorization": "Basic YWRtaW46YWRtaW4=", "Content-Type": "text/plain"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return int(resp.status)


def test_xnat_profile_fails_closed_before_sending(
    sandbox_thread: SandboxThread, tmp_path: Path
) -> None:
    write_sessions(tmp_path / "in", "FCL", 1, series=1)
    common = ["--server", sandbox_thread.url, "--user", "alice", "--project", "PILOT"]
    # The site script exists but alice may not read it.
    _admin(
        sandbox_thread.url,
        "PUT",
        "/data/config/anon/script?inbody=true&status=enabled",
        data=b'version "6.1"\n(0010,0010) := "SITE"\n',
    )
    spec = json.dumps({"spec": "error=403:1,only=/data/config/anon"}).encode()
    import urllib.request

    urllib.request.urlopen(
        urllib.request.Request(
            sandbox_thread.url + "/sandbox/faults",
            data=spec,
            method="POST",
            headers={"Content-Type": "application/json"},
        ),
        timeout=10,
    ).close()
    refused = cli("upload", str(tmp_path / "in"), *common, "--anon", "xnat", "--yes")
    _admin(sandbox_thread.url, "DELETE", "/sandbox/faults")
    assert refused.returncode == 1, refused.stderr
    assert "site anon script cannot be read" in refused.stderr
    assert not [e for e in server_state(sandbox_thread.url, "PILOT")[1] if e[0].startswith("FCL")]

    # A script that asks for a variable: not given → usage error naming it, nothing sent.
    _admin(
        sandbox_thread.url,
        "PUT",
        "/data/projects/PILOT/config/anon/projects/PILOT?inbody=true&status=enabled",
        data=b'version "6.1"\ndescribe visit "Visit number"\n(0010,4000) := visit\n',
    )
    missing = cli("upload", str(tmp_path / "in"), *common, "--anon", "xnat", "--yes")
    assert missing.returncode == 2, missing.stderr
    assert "--var visit=" in missing.stderr and "Visit number" in missing.stderr
    archived, pre = server_state(sandbox_thread.url, "PILOT")
    assert not [e for e in archived + pre if e[0].startswith("FCL")]  # type: ignore[operator]


def test_burned_in_series_excluded_under_basic(
    sandbox_thread: SandboxThread, tmp_path: Path
) -> None:
    from xnat_tui.dicom.synthetic import SeriesSpec, write_study

    write_study(
        tmp_path / "in",
        patient_id="BRN01",
        series=[SeriesSpec("MR", 1, "T1", 2), SeriesSpec("OT", 2, "Screen", 1)],
    )
    common = ["--server", sandbox_thread.url, "--user", "alice", "--project", "PILOT"]

    def plan_of(*extra: str) -> dict[str, object]:
        out = cli("upload", str(tmp_path / "in"), *common, "--dry-run", "--json", *extra)
        assert out.returncode == 0, out.stderr
        [job] = json.loads(out.stdout)["plan"]["jobs"]
        return job  # type: ignore[no-any-return]

    job = plan_of("--anon", "basic")
    assert [s["series_number"] for s in job["series"]] == [1]  # type: ignore[index]
    assert [s["series_number"] for s in job["excluded"]] == [2]  # type: ignore[index]
    assert "Secondary Capture" in job["excluded"][0]["reason"]  # type: ignore[index]
    job = plan_of("--anon", "basic", "--include-burned-in", "--retain-dates")
    assert len(job["series"]) == 2 and not job["excluded"]  # type: ignore[arg-type]
    assert job["anonymization"]["options"]["retain_dates"] is True  # type: ignore[index]
    job = plan_of("--anon", "none")
    assert len(job["series"]) == 2  # type: ignore[arg-type]
    assert any(i["code"] == "burned-in" for i in job["issues"])  # type: ignore[union-attr]
    bad = cli("upload", str(tmp_path / "in"), *common, "--var", "novalue", "--dry-run")
    assert bad.returncode == 2 and "NAME=VALUE" in bad.stderr
