"""A failed call must not leave an HTTP session behind ("Unclosed client session")."""

from __future__ import annotations

import asyncio
import gc
import warnings
from typing import Any

import pytest

from xnat_tui.sandbox.server import SandboxServer
from xnat_tui.xnat import Credentials, NotFound, XnatClient
from xnat_tui.xnat.transport import gather_or_cancel


async def test_project_settings_of_an_invisible_project_leaks_nothing(
    sandbox: SandboxServer,
) -> None:
    loop = asyncio.get_running_loop()
    reported: list[str] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, ctx: reported.append(str(ctx.get("message"))))
    # The settings calls still in flight when the project lookup fails.
    sandbox.faults.configure("latency=300ms,only=/data/config,only=/data/projects/STUDY_B/config")
    try:
        client = XnatClient(Credentials(sandbox.url, "carol", "carol"))
        with pytest.raises(NotFound):
            async with client:
                await client.project_settings("STUDY_B")
        # Let any sibling request that outlived the failure run to its end.
        await asyncio.sleep(0.6)
        assert client._session is None
        del client
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    assert not [m for m in reported if "Unclosed" in m], reported


async def test_gather_or_cancel_stops_the_siblings_of_a_failure() -> None:
    finished: list[str] = []

    async def slow() -> None:
        await asyncio.sleep(0.5)
        finished.append("slow")

    async def boom() -> Any:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await gather_or_cancel(slow(), boom())
    await asyncio.sleep(0.6)
    assert finished == []
    assert await gather_or_cancel(asyncio.sleep(0, "a"), asyncio.sleep(0, "b")) == ["a", "b"]


async def test_a_settings_read_cancelled_before_its_calls_ran_leaves_none_unawaited(
    sandbox: SandboxServer,
) -> None:
    # An app closed while a project's settings are being read: the read is cancelled
    # after it started its calls, before any of them ran a step.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with XnatClient(Credentials(sandbox.url, "alice", "alice")) as client:
            read = asyncio.create_task(client.project_settings("STUDY_A"))
            await asyncio.sleep(0)
            read.cancel()
            with pytest.raises(asyncio.CancelledError):
                await read
        del read
        gc.collect()
    assert not [str(w.message) for w in caught if "never awaited" in str(w.message)]
