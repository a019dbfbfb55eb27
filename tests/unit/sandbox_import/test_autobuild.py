"""Idle RECEIVING sessions are built (and auto-archived) in the background (§5.6)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp

from tests.fixtures.sandbox import SandboxFactory
from tests.unit.sandbox_import.helpers import series_files, stream_zip_bytes
from xnat_tui.sandbox.prearchive_store import prearchive_of
from xnat_tui.sandbox.server import SandboxServer


async def upload(sb: SandboxServer, **params: str) -> str:
    headers = {
        "Authorization": aiohttp.encode_basic_auth("admin", "admin"),
        "Content-Type": "application/zip",
    }
    body = stream_zip_bytes(series_files(1, patient=params.pop("patient")))
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.post(sb.url + "/data/services/import", params=params, data=body) as r:
            assert r.status == 200
            return (await r.text()).strip()


async def wait_for(cond: Callable[[], bool], limit: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while not cond():
        assert loop.time() < end, "condition not reached"
        await asyncio.sleep(0.05)


async def test_idle_sessions_are_built_and_auto_archived(sandbox_factory: SandboxFactory) -> None:
    # 1 s: under load the four uploads must not outlast the idle time before the first
    # check (with 0.3 s this test failed on a busy 2-core machine).
    sb = await sandbox_factory(autobuild_interval=1.0)
    pre = prearchive_of(sb.store)

    def status(name: str) -> str | None:
        return next((s.status for s in pre.sessions() if s.name == name), None)

    await upload(sb, patient="AB1", PROJECT_ID="PILOT")
    assert status("AB1") == "RECEIVING"
    await upload(sb, patient="AB2", PROJECT_ID="STUDY_A", SUBJECT_ID="SA_001")
    await upload(sb, patient="AB3", PROJECT_ID="STUDY_A", prevent_auto_commit="true")
    await upload(sb, patient="AB4", PROJECT_ID="STUDY_A", SOURCE="uploader")
    await wait_for(lambda: status("AB1") == "READY" and status("AB2") is None)
    assert sb.store.find_experiment("STUDY_A", "AB2") is not None
    await asyncio.sleep(1.5)  # AB3 and AB4 idle past the interval too
    assert status("AB3") == "RECEIVING"
    assert status("AB4") == "RECEIVING"


async def test_default_interval_leaves_fresh_sessions_alone(sandbox: SandboxServer) -> None:
    await upload(sandbox, patient="AB5", PROJECT_ID="PILOT")
    await asyncio.sleep(0.3)
    rows = [s for s in prearchive_of(sandbox.store).sessions() if s.name == "AB5"]
    assert [s.status for s in rows] == ["RECEIVING"]
