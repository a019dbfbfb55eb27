"""The sandbox keeps answering while an upload is placed or a session is archived.

Each test holds the heavy step (placing an upload's files, archiving a session) on a
gate that only opens once another request has been answered. Were the step run on the
event loop, that request could never be served and the test would time out.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from tests.unit.sandbox_import.conftest import Client
from tests.unit.sandbox_import.helpers import series_files, stream_zip_bytes
from xnat_tui.sandbox import import_routes, prearchive_routes
from xnat_tui.sandbox.archiver import archive
from xnat_tui.sandbox.importer import commit

pytestmark = pytest.mark.timeout(30)


def gated(fn: Callable[..., Any], gate: threading.Event) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not gate.wait(10):
            raise AssertionError("no other request was answered meanwhile")
        return fn(*args, **kwargs)

    return wrapper


async def answered_meanwhile(client: Client, busy: asyncio.Task[Any], gate: threading.Event) -> Any:
    await asyncio.sleep(0.05)
    assert not busy.done()
    status, _, _ = await client.request("GET", "/data/prearchive/projects?format=json")
    assert status == 200
    gate.set()
    return await busy


async def test_listing_is_answered_while_an_upload_is_placed(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    monkeypatch.setattr(import_routes, "commit", gated(commit, gate))
    body = stream_zip_bytes(series_files(2, patient="BUSY1"))
    busy = asyncio.create_task(client.upload(body, PROJECT_ID="PILOT", EXPT_LABEL="BUSY1_MR"))
    status, text = await answered_meanwhile(client, busy, gate)
    assert status == 200 and "/prearchive/projects/PILOT/" in text


async def test_listing_is_answered_while_a_session_archives(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = stream_zip_bytes(series_files(2, patient="BUSY2"))
    status, uri = await client.upload(
        body, PROJECT_ID="PILOT", SUBJECT_ID="BUSY2", EXPT_LABEL="BUSY2_MR"
    )
    assert status == 200
    gate = threading.Event()
    monkeypatch.setattr(prearchive_routes, "archive", gated(archive, gate))
    busy = asyncio.create_task(
        client.request("POST", uri.strip(), params={"action": "commit", "AA": "true"})
    )
    status, text, _ = await answered_meanwhile(client, busy, gate)
    assert status == 301 and text.startswith("/data/archive/projects/PILOT/subjects/BUSY2/")
