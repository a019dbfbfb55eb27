"""Helpers for sandbox tests: a small HTTP client for route tests (explicit credentials,
no cookie jar), and ``xnat-tui sandbox serve`` in a process of its own."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy


def basic(user: str, password: str | None = None) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password if password is not None else user}".encode())
    return {"Authorization": "Basic " + token.decode()}


@dataclass
class Reply:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def rows(self) -> list[dict[str, str]]:
        return list(self.json()["ResultSet"]["Result"])

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0]

    def cookie(self, name: str) -> str | None:
        for header in self.headers.getall("Set-Cookie", []):
            key, _, rest = header.partition("=")
            if key == name:
                return rest.split(";")[0]
        return None


class Api:
    """``await api.get("/data/projects", user="alice")`` → Reply."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())

    async def close(self) -> None:
        await self.session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        user: str | None = None,
        password: str | None = None,
        headers: dict[str, str] | None = None,
        cookies: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Reply:
        all_headers = dict(headers or {})
        if user is not None:
            all_headers.update(basic(user, password))
        if cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        async with self.session.request(
            method, self.base_url + path, headers=all_headers, **kwargs
        ) as r:
            return Reply(r.status, r.headers, await r.read())

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.request("GET", path, **kw)

    async def put(self, path: str, **kw: Any) -> Reply:
        return await self.request("PUT", path, **kw)

    async def post(self, path: str, **kw: Any) -> Reply:
        return await self.request("POST", path, **kw)

    async def delete(self, path: str, **kw: Any) -> Reply:
        return await self.request("DELETE", path, **kw)


@contextmanager
def serve_process(data_dir: Path, *args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``xnat-tui sandbox serve --port 0 --demo --data-dir DATA_DIR ARGS…`` in a process of
    its own: (the process, its URL as its first line of output names it).

    Its output (stdout and stderr) stays piped; a process still running on the way out is
    killed.
    """
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "xnat_tui", "sandbox", "serve",
            "--port", "0", "--demo", "--data-dir", str(data_dir), *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("XNAT-compatible sandbox (not XNAT) serving http://127.0.0.1:")
        yield proc, first.rsplit(" ", 1)[1].strip()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
