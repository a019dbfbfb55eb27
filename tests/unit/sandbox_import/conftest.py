"""Fixtures for the import/prearchive tests: an HTTP helper bound to the demo sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest_asyncio

from xnat_tui.sandbox.server import SandboxServer


class Client:
    """Thin aiohttp wrapper: one session per user, Basic auth, no redirects."""

    def __init__(self, base: str) -> None:
        self.base = base
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    def _session(self, user: str) -> aiohttp.ClientSession:
        if user not in self._sessions:
            auth = aiohttp.encode_basic_auth(user, user)
            self._sessions[user] = aiohttp.ClientSession(headers={"Authorization": auth})
        return self._sessions[user]

    async def request(
        self, method: str, path: str, *, user: str = "alice", **kw: Any
    ) -> tuple[int, str, aiohttp.typedefs.LooseHeaders]:
        kw.setdefault("allow_redirects", False)
        url = path if path.startswith("http") else self.base + path
        async with self._session(user).request(method, url, **kw) as resp:
            return resp.status, await resp.text(), resp.headers

    async def json(self, path: str, *, user: str = "alice", **kw: Any) -> Any:
        status, text, _ = await self.request("GET", path, user=user, **kw)
        assert status == 200, text
        import json

        return json.loads(text)

    async def upload(
        self,
        body: Any,
        *,
        user: str = "alice",
        path: str = "/data/services/import",
        content_type: str = "application/zip",
        **params: str,
    ) -> tuple[int, str]:
        status, text, _ = await self.request(
            "POST",
            path,
            user=user,
            params=params,
            data=body,
            headers={"Content-Type": content_type},
        )
        return status, text

    async def close(self) -> None:
        for s in self._sessions.values():
            await s.close()


@pytest_asyncio.fixture
async def client(sandbox: SandboxServer) -> AsyncIterator[Client]:
    c = Client(sandbox.url)
    yield c
    await c.close()
