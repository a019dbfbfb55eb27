"""A client that hangs up mid-request is one log line, not a traceback (issue 14, item 13).

Real server errors keep their traceback."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import pytest

from tests.unit.sandbox.helpers import Api, basic
from xnat_tui.sandbox import import_routes
from xnat_tui.sandbox.server import SandboxServer


def _tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]


async def _wait_for(predicate: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)


async def test_client_gone_mid_upload_is_one_line(
    sandbox: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    reader, writer = await asyncio.open_connection("127.0.0.1", sandbox.port)
    head = (
        "POST /data/services/import?PROJECT_ID=PILOT HTTP/1.1\r\nHost: sandbox\r\n"
        f"Authorization: {basic('alice')['Authorization']}\r\n"
        "Content-Type: application/zip\r\nContent-Length: 10000000\r\n\r\n"
    )
    writer.write(head.encode() + b"PK" * 50_000)
    await writer.drain()
    tmp = sandbox.data_dir / "tmp"
    await _wait_for(lambda: tmp.exists() and any(tmp.glob("upload-*")))
    writer.transport.abort()
    await _wait_for(lambda: any("went away" in r.getMessage() for r in caplog.records))
    await asyncio.sleep(0.1)
    gone = [r for r in caplog.records if "went away" in r.getMessage()]
    assert len(gone) == 1
    assert "POST /data/services/import" in gone[0].getMessage()
    assert _tracebacks(caplog) == []
    assert not any(tmp.glob("upload-*"))


async def test_real_errors_keep_their_traceback(
    api: Api,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(*args: object) -> object:
        raise RuntimeError("a real bug")

    monkeypatch.setattr(import_routes, "read_upload", broken)
    caplog.set_level(logging.INFO)
    r = await api.request("POST", "/data/services/import", user="alice")
    assert r.status == 500
    assert "a real bug" not in r.text and "Traceback" not in r.text
    records = _tracebacks(caplog)
    assert len(records) == 1 and records[0].exc_info is not None
    assert records[0].exc_info[0] is RuntimeError

    async def reset(*args: object) -> object:
        raise ConnectionResetError("an outbound connection failed")  # client still here

    caplog.clear()
    monkeypatch.setattr(import_routes, "read_upload", reset)
    r = await api.request("POST", "/data/services/import", user="alice")
    assert r.status == 500
    assert [rec.exc_info[0] for rec in _tracebacks(caplog) if rec.exc_info] == [
        ConnectionResetError
    ]
    assert not any("went away" in rec.getMessage() for rec in caplog.records)


async def test_client_gone_mid_file_download_leaves_no_traceback(
    sandbox: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A file is sent by sendfile(2): a client that hangs up part way through is no error
    of the server's, and the next client is served."""
    caplog.set_level(logging.DEBUG)
    store = sandbox.store
    row = next(r for r in store.list_experiments() if r["label"] == "PIL_900_MR1")
    res = store.get_or_create_resource(row["id"], store.add_scan(row["id"], "77"), "DICOM")
    folder = store.experiment_dir("PILOT", "PIL_900_MR1") / "SCANS" / "77" / "DICOM"
    folder.mkdir(parents=True)
    (folder / "big.dcm").write_bytes(b"\0" * (32 << 20))
    store.add_file(res, "big.dcm", folder / "big.dcm", file_format="DICOM")
    request = (
        f"GET /data/experiments/{row['id']}/scans/77/resources/DICOM/files/big.dcm HTTP/1.1\r\n"
        f"Host: sandbox\r\nAuthorization: {basic('alice')['Authorization']}\r\n\r\n"
    ).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", sandbox.port)
    writer.write(request)
    await reader.readexactly(1 << 20)
    writer.transport.abort()
    await asyncio.sleep(0.2)
    reader, writer = await asyncio.open_connection("127.0.0.1", sandbox.port)
    writer.write(request.replace(b"HTTP/1.1\r\n", b"HTTP/1.1\r\nConnection: close\r\n"))
    whole = await reader.read()
    writer.close()
    assert whole.startswith(b"HTTP/1.1 200") and whole.endswith(b"\0" * 1024)
    assert len(whole.partition(b"\r\n\r\n")[2]) == 32 << 20
    assert _tracebacks(caplog) == []
