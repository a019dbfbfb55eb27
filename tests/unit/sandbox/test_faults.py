"""Fault injection: statuses, latency, dropped uploads, disk full, session expiry."""

from __future__ import annotations

import time

import aiohttp
import pytest

from tests.fixtures.sandbox import SandboxFactory
from tests.unit.sandbox.helpers import Api
from xnat_tui.sandbox.faults import DISK_FULL_MESSAGE, FaultSpecError, parse_spec
from xnat_tui.sandbox.server import SandboxServer


def test_parse_spec_grammar() -> None:
    config = parse_spec(
        "error=503:0.25, error=500:0.1; latency=150ms,drop=0.5,disk-full,"
        "expire-sessions=0.2,only=/data/services/import,only=/data/prearchive,seed=7"
    )
    assert config.errors == [(503, 0.25), (500, 0.1)]
    assert config.latency == pytest.approx(0.15)
    assert (config.drop, config.disk_full, config.expire_rate) == (0.5, 1.0, 0.2)
    assert config.only == ["/data/services/import", "/data/prearchive"]
    assert config.seed == 7
    assert parse_spec("latency=2").latency == 2.0
    assert parse_spec("expire-sessions").expire_now
    assert parse_spec("") == parse_spec(None)


@pytest.mark.parametrize(
    "spec",
    ["bogus", "error=200:0.1", "error=abc", "drop=2", "latency=fast", "only=data", "seed=x"],
)
def test_parse_spec_rejects_bad_input(spec: str) -> None:
    with pytest.raises(FaultSpecError):
        parse_spec(spec)


async def test_bad_spec_fails_start(sandbox_factory: SandboxFactory) -> None:
    with pytest.raises(FaultSpecError):
        await sandbox_factory(faults="error=nope")


async def _statuses(api: Api, n: int) -> list[int]:
    return [(await api.get("/data/auth", user="alice")).status for _ in range(n)]


async def test_error_rate_is_seeded_and_deterministic(sandbox_factory: SandboxFactory) -> None:
    runs = []
    for _ in range(2):
        server = await sandbox_factory(demo=True, faults="error=503:0.3,seed=42")
        api = Api(server.url)
        runs.append(await _statuses(api, 40))
        await api.close()
    assert runs[0] == runs[1]
    assert set(runs[0]) == {200, 503}
    assert 4 <= runs[0].count(503) <= 20


async def test_error_body_and_scope(sandbox: SandboxServer, api: Api) -> None:
    sandbox.faults.configure("error=503:1,only=/data/services/import")
    assert (await api.get("/data/projects", user="alice")).status == 200
    r = await api.post("/data/services/import", user="alice", data=b"x")
    assert r.status == 503
    assert "Injected fault" in r.text and r.content_type == "text/html"
    sandbox.faults.clear()
    assert (await api.get("/data/auth", user="alice")).status == 200


async def test_latency(sandbox: SandboxServer, api: Api) -> None:
    sandbox.faults.configure("latency=250ms")
    start = time.monotonic()
    assert (await api.get("/data/auth", user="alice")).status == 200
    assert time.monotonic() - start >= 0.25


async def test_drop_aborts_the_connection_mid_body(sandbox: SandboxServer, api: Api) -> None:
    sandbox.faults.configure("drop=1,only=/data/services/import")
    body = b"\0" * (4 << 20)
    with pytest.raises(aiohttp.ClientError):
        await api.post(
            "/data/services/import?import-handler=DICOM-zip&PROJECT_ID=PILOT",
            user="alice",
            data=body,
            headers={"Content-Type": "application/zip"},
        )
    assert sandbox.faults.stats["drop"] == 1
    # The server itself is fine afterwards.
    assert (await api.get("/data/auth", user="alice")).status == 200


async def test_disk_full_answers_like_tomcat(sandbox: SandboxServer, api: Api) -> None:
    sandbox.faults.configure("disk-full")
    assert (await api.get("/data/projects", user="alice")).status == 200  # no body: unaffected
    r = await api.post(
        "/data/services/import?import-handler=DICOM-zip&PROJECT_ID=PILOT",
        user="alice",
        data=b"PK" + b"\0" * 1000,
        headers={"Content-Type": "application/zip"},
    )
    assert r.status == 500
    assert DISK_FULL_MESSAGE in r.text
    assert "No space left on device" in r.text


async def test_expire_sessions_now_and_by_rate(sandbox: SandboxServer, api: Api) -> None:
    sid = (await api.get("/data/JSESSION", user="alice")).text
    assert (await api.get("/data/auth", cookies={"JSESSIONID": sid})).status == 200
    sandbox.faults.configure("expire-sessions")
    assert (await api.get("/data/auth", cookies={"JSESSIONID": sid})).status == 401
    sid = (await api.get("/data/JSESSION", user="alice")).text
    sandbox.faults.configure("expire-sessions=1")
    assert (await api.get("/data/auth", cookies={"JSESSIONID": sid})).status == 401
    # Basic credentials still work: the client can log in again.
    assert (await api.get("/data/auth", user="alice")).status == 200


async def test_admin_route(sandbox: SandboxServer, api: Api) -> None:
    r = await api.post("/sandbox/faults", json={"spec": "error=502:1,only=/data/projects"})
    assert r.status == 200 and r.json() == {"spec": "error=502:1,only=/data/projects"}
    assert (await api.get("/data/projects", user="alice")).status == 502
    state = await api.get("/sandbox/faults")
    assert state.json()["stats"] == {"error-502": 1}
    bad = await api.post("/sandbox/faults", json={"spec": "explode"})
    assert bad.status == 400 and "unknown fault" in bad.text
    assert sandbox.faults.spec == "error=502:1,only=/data/projects"  # unchanged
    assert (await api.post("/sandbox/faults", data=b"not json")).status == 400
    assert (await api.delete("/sandbox/faults")).json() == {"spec": ""}
    assert (await api.get("/data/projects", user="alice")).status == 200
    sid = (await api.get("/data/JSESSION", user="alice")).text
    expired = await api.post("/sandbox/expire-sessions")
    assert expired.json()["expired"] >= 1
    assert (await api.get("/data/auth", cookies={"JSESSIONID": sid})).status == 401
