"""``xnat-tui upload`` from archives (nested, every format), against the sandbox."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pytest

from tests.fixtures.archives import make_archive
from tests.unit.transfer.e2e_support import cli, digests, server_state, write_sessions
from xnat_tui.sandbox.server import SandboxThread
from xnat_tui.xnat.client import XnatClient
from xnat_tui.xnat.credentials import Credentials

pytestmark = pytest.mark.e2e


async def _server_md5s(url: str, project: str, prefix: str) -> list[str]:
    async with XnatClient(Credentials(url, "alice", "alice")) as client:
        out: list[str] = []
        for e in await client.experiments(project):
            if not e.label.startswith(prefix):
                continue
            uri = (
                f"/data/archive/projects/{project}/subjects/{e.subject_label}/experiments/{e.label}"
            )
            for files in (await client.session_files(uri)).values():
                out += [f.digest for f in files]
        return sorted(out)


def test_upload_from_a_tgz_of_zips_sends_every_file(
    sandbox_thread: SandboxThread, tmp_path: Path
) -> None:
    studies = write_sessions(tmp_path / "src", "ARC", 2)
    zips = [make_archive(s.root, tmp_path / "zips" / f"{s.patient_id}.zip") for s in studies]
    bundle = make_archive([(z.name, z) for z in zips], tmp_path / "in" / "bundle.tgz")
    before = digests(tmp_path / "in")
    url = sandbox_thread.url
    common = ["--server", url, "--user", "alice", "--project", "PILOT"]

    up = cli("upload", str(bundle), *common, "--dest", "archive", "--yes", "--json")
    assert up.returncode == 0, up.stderr
    result = json.loads(up.stdout)
    assert result["ok"] and result["verified"] == 2
    archived, _ = server_state(url, "PILOT")
    assert sorted(e[1] for e in archived if e[0].startswith("ARC")) == sorted(
        s.study_instance_uid for s in studies
    )
    sent = sorted(hashlib.md5(p.read_bytes()).hexdigest() for s in studies for p in s.paths)
    assert asyncio.run(_server_md5s(url, "PILOT", "ARC")) == sent
    assert digests(tmp_path / "in") == before  # nothing written beside the archive
