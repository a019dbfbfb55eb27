"""Authentication routes and middleware (xnat-api.md §2)."""

from __future__ import annotations

import asyncio
import re

import pytest

from tests.fixtures.sandbox import SandboxFactory
from tests.unit.sandbox.helpers import Api
from xnat_tui.sandbox.auth import SessionManager
from xnat_tui.sandbox.server import SandboxServer


async def test_no_credentials_gets_basic_challenge(api: Api) -> None:
    r = await api.get("/data/projects")
    assert r.status == 401
    assert r.headers["WWW-Authenticate"] == 'Basic realm="XNAT"'
    assert r.content_type == "text/html"
    assert "Traceback" not in r.text
    for path in ("/REST/projects", "/xapi/siteConfig/buildInfo", "/data/JSESSION"):
        assert (await api.get(path)).status == 401


async def test_bad_password_is_401_with_failure_text_and_no_challenge(api: Api) -> None:
    r = await api.get("/data/auth", user="alice", password="wrong")
    assert r.status == 401
    assert "WWW-Authenticate" not in r.headers
    assert "Your login attempt failed" in r.text
    assert (await api.get("/data/auth", user="nobody", password="x")).status == 401


async def test_malformed_basic_header_is_a_failed_login(api: Api) -> None:
    r = await api.get("/data/auth", headers={"Authorization": "Basic %%%not-base64"})
    assert r.status == 401
    assert "Your login attempt failed" in r.text


async def test_basic_login_sets_both_cookies(api: Api) -> None:
    r = await api.get("/data/auth", user="alice")
    assert r.status == 200
    assert r.text == "User 'alice' is logged in"
    assert re.fullmatch(r"[0-9A-F]{32}", r.cookie("JSESSIONID") or "")
    expiry = next(
        c for c in r.headers.getall("Set-Cookie") if c.startswith("SESSION_EXPIRATION_TIME=")
    )
    assert re.match(r'SESSION_EXPIRATION_TIME="\d{13},900000"; Path=/', expiry)


async def test_provider_prefix_in_username_is_accepted(api: Api) -> None:
    r = await api.get("/data/auth", user="localdb/alice", password="alice")
    assert r.status == 200
    assert "alice" in r.text


async def test_cookie_alone_authenticates_and_keeps_the_session(api: Api) -> None:
    login = await api.get("/data/JSESSION", user="bob")
    sid = login.text
    assert login.cookie("JSESSIONID") == sid
    r = await api.get("/data/auth", cookies={"JSESSIONID": sid})
    assert r.status == 200 and "bob" in r.text
    assert r.cookie("JSESSIONID") is None  # same session: no new cookie
    assert r.cookie("SESSION_EXPIRATION_TIME") is not None


async def test_idle_session_expires(sandbox_factory: SandboxFactory) -> None:
    # Generous timeout: the check right after login must not race a loaded machine.
    server = await sandbox_factory(session_timeout=1.0)
    api = Api(server.url)
    try:
        sid = (await api.get("/data/JSESSION", user="alice")).text
        assert (await api.get("/data/auth", cookies={"JSESSIONID": sid})).status == 200
        await asyncio.sleep(1.2)
        r = await api.get("/data/auth", cookies={"JSESSIONID": sid})
        assert r.status == 401
        assert r.headers["WWW-Authenticate"] == 'Basic realm="XNAT"'
        ok = await api.get("/data/auth", user="alice")
        assert ok.status == 200
        assert ok.cookie(
            "SESSION_EXPIRATION_TIME",
        ).endswith(',1000"')  # type: ignore[union-attr]
    finally:
        await api.close()


async def test_delete_jsession_logs_out(api: Api) -> None:
    sid = (await api.get("/data/JSESSION", user="alice")).text
    r = await api.delete("/data/JSESSION", cookies={"JSESSIONID": sid})
    assert r.status == 200
    assert r.body == b""
    assert (await api.get("/data/auth", cookies={"JSESSIONID": sid})).status == 401
    post = await api.post("/data/JSESSION", user="alice")
    assert post.status == 200 and re.fullmatch(r"[0-9A-F]{32}", post.text)


async def test_csrf_suffix(api: Api) -> None:
    r = await api.get("/data/auth?CSRF=true", user="alice")
    assert re.fullmatch(r"User 'alice' is logged in; XNAT_CSRF=\S+", r.text)
    r = await api.get("/data/JSESSION?CSRF=true", user="alice")
    assert re.fullmatch(r"[0-9A-F]{32}; XNAT_CSRF=\S+", r.text)


async def test_services_auth_form_login(api: Api) -> None:
    r = await api.put(
        "/data/services/auth",
        data="username=alice&password=alice",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status == 200
    assert re.fullmatch(r"[0-9A-F]{32}", r.text)
    assert r.cookie("JSESSIONID") == r.text
    assert (await api.get("/data/auth", cookies={"JSESSIONID": r.text})).status == 200
    bad = await api.post("/data/services/auth", data="username=alice&password=nope")
    assert bad.status == 401 and "Authentication failed." in bad.text
    assert (await api.get("/data/services/auth")).status == 405


async def test_index_page_carries_csrf_token_and_basic_login_sets_cookie(api: Api) -> None:
    anonymous = await api.get("/")
    assert anonymous.status == 200
    assert "var csrfToken = '" in anonymous.text
    logged = await api.get("/", user="alice")
    assert logged.cookie("JSESSIONID")
    assert re.search(r"var csrfToken = '[0-9a-f]+';", logged.text)


async def test_alias_token_lifecycle(api: Api) -> None:
    issued = await api.get("/data/services/tokens/issue", user="alice")
    assert issued.status == 200 and issued.content_type == "application/json"
    token = issued.json()
    assert re.fullmatch(r"[0-9a-f-]{36}", token["alias"])
    assert re.fullmatch(r"[A-Za-z0-9]{64}", token["secret"])
    assert token["xdatUserId"] == "alice" and token["expired"] is False
    assert token["estimatedExpirationTime"] - token["created"] == 2 * 24 * 3600 * 1000
    alias, secret = token["alias"], token["secret"]

    as_token = await api.get("/data/auth", user=alias, password=secret)
    assert as_token.status == 200 and as_token.text == "User 'alice' is logged in"

    valid = await api.get(f"/data/services/tokens/validate/{alias}/{secret}", user="alice")
    assert valid.json() == {"valid": "alice"}
    wrong = await api.get(f"/data/services/tokens/validate/{alias}/nope", user="alice")
    assert wrong.json() == {"valid": None}
    unknown = await api.get("/data/services/tokens/validate/no-such/x", user="alice")
    assert unknown.status == 404
    assert "Can't find an alias token with the alias no-such" in unknown.text

    shown = await api.get("/data/services/tokens/show", user="alice")
    assert [t["alias"] for t in shown.json()] == [alias]

    gone = await api.get(f"/data/services/tokens/invalidate/{alias}", user="alice")
    assert gone.json() == {"result": "OK"}
    assert (await api.get("/data/auth", user=alias, password=secret)).status == 401


async def test_token_errors(api: Api) -> None:
    assert (await api.get("/data/services/tokens/issue/user/bob", user="alice")).status == 403
    assert (await api.get("/data/services/tokens/issue/user/bob", user="admin")).status == 200
    assert (await api.get("/data/services/tokens/frobnicate", user="alice")).status == 400
    assert (await api.get("/data/services/tokens/issue")).status == 401


async def test_build_info_heartbeat(sandbox: SandboxServer, api: Api) -> None:
    r = await api.get("/xapi/siteConfig/buildInfo", user="carol")
    assert r.status == 200
    info = r.json()
    for key in ("version", "buildNumber", "buildDate", "sha", "commit", "timestamp"):
        assert isinstance(info[key], str)
    assert (await api.get("/data/version", user="carol")).text == info["version"]


async def test_web_logout_ends_the_session(api: Api) -> None:
    sid = (await api.get("/data/JSESSION", user="alice")).text
    r = await api.get("/app/action/LogoutUser", cookies={"JSESSIONID": sid}, allow_redirects=False)
    assert r.status == 302 and r.headers["Location"] == "/"
    assert (await api.get("/data/auth", cookies={"JSESSIONID": sid})).status == 401


def test_sessions_nobody_comes_back_for_are_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    """curl -u on every call makes a session per request; a long-running sandbox must not
    keep them all."""
    now = [1000.0]
    monkeypatch.setattr("xnat_tui.sandbox.auth.time.time", lambda: now[0])
    sessions = SessionManager(timeout=900)
    for _ in range(50):
        sessions.create("alice")
    kept = sessions.create("bob")
    assert len(sessions) == 51
    now[0] += 600
    sessions.lookup(kept.id)  # bob is still active
    now[0] += 600  # the 50 one-shot sessions are now idle beyond the timeout
    sessions.create("carol")
    assert len(sessions) == 2
    assert sessions.lookup(kept.id) is not None
