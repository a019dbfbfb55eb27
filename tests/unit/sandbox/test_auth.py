"""Authentication routes and middleware (xnat-api.md §2)."""

from __future__ import annotations

import base64
import re

import aiohttp
import pytest

from xnat_tui.sandbox.server import SandboxServer


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
async def http():
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session


async def test_no_credentials_gets_basic_challenge(sandbox: SandboxServer, http) -> None:
    async with http.get(sandbox.url + "/data/projects") as r:
        assert r.status == 401
        assert r.headers["WWW-Authenticate"] == 'Basic realm="XNAT"'
        assert r.content_type == "text/html"
        assert "Traceback" not in await r.text()


async def test_bad_password_is_401_with_failure_text_and_no_challenge(
    sandbox: SandboxServer, http
) -> None:
    async with http.get(sandbox.url + "/data/auth", headers=basic("alice", "wrong")) as r:
        assert r.status == 401
        assert "WWW-Authenticate" not in r.headers
        assert "Your login attempt failed" in await r.text()


async def test_basic_login_sets_both_cookies(sandbox: SandboxServer, http) -> None:
    async with http.get(sandbox.url + "/data/auth", headers=basic("alice", "alice")) as r:
        assert r.status == 200
        assert await r.text() == "User 'alice' is logged in"
        cookies = r.headers.getall("Set-Cookie")
    jsession = next(c for c in cookies if c.startswith("JSESSIONID="))
    assert re.match(r"JSESSIONID=[0-9A-F]{32};", jsession)
    expiry = next(c for c in cookies if c.startswith("SESSION_EXPIRATION_TIME="))
    assert re.match(r'SESSION_EXPIRATION_TIME="\d{13},900000"; Path=/', expiry)
