"""Client plumbing against a tiny fake server: cookies, re-login, streaming, retries, TLS."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web

from tests.unit.xnat.fake_server import FakeState, make_app
from xnat_tui.xnat import (
    AuthenticationError,
    ConnectionFailed,
    Credentials,
    PermissionDenied,
    ServerError,
    SessionExpired,
    SessionRenewed,
    TLSError,
    XnatClient,
)
from xnat_tui.xnat.errors import ErrorContext

CTX = ErrorContext(action="test", user="alice")


async def _serve(
    app: web.Application, ssl_context: ssl.SSLContext | None = None
) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    scheme = "https" if ssl_context else "http"
    return runner, f"{scheme}://127.0.0.1:{port}"


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[tuple[str, FakeState]]:
    app, state = make_app()
    runner, url = await _serve(app)
    yield url, state
    await runner.cleanup()


def _client(url: str, password: str = "alice") -> XnatClient:
    return XnatClient(Credentials(url, "alice", password), retry_delay=0.01)


async def test_login_then_cookie_only(fake: tuple[str, FakeState]) -> None:
    url, state = fake
    async with _client(url) as xnat:
        assert xnat.username == "alice"
        for _ in range(3):
            await xnat.get_json("/data/projects", CTX)
    assert state.basic_requests == 1  # only the login carried the password
    assert state.sessions == set()  # logged out on exit: no session left on the server
    assert state.counter["GET /data/projects"] == 3


async def test_wrong_password_is_an_authentication_error(fake: tuple[str, FakeState]) -> None:
    url, _state = fake
    with pytest.raises(AuthenticationError) as info:
        async with _client(url, password="wrong"):
            pass
    assert not isinstance(info.value, SessionExpired)
    assert "Login attempt failed." in str(info.value)
    assert not info.value.retriable


async def test_expired_session_renewed_once_for_concurrent_requests(
    fake: tuple[str, FakeState],
) -> None:
    url, state = fake
    async with _client(url) as xnat:
        state.expire_all()
        results = await asyncio.gather(*(xnat.get_json("/data/projects", CTX) for _ in range(6)))
        assert all(r["ResultSet"]["Result"][0]["ID"] == "P1" for r in results)
        assert state.counter["GET /data/auth"] == 2
        assert xnat.relogins == 1


async def test_renewal_that_fails_is_session_expired(fake: tuple[str, FakeState]) -> None:
    url, state = fake
    async with _client(url) as xnat:
        # The password changed on the server since we logged in.
        xnat.credentials = Credentials(url, "alice", "changed")
        state.expire_all()
        with pytest.raises(SessionExpired) as info:
            await xnat.get_json("/data/projects", CTX)
        assert "expired" in str(info.value) and "log in again" in info.value.hint.lower()


async def _chunks(n: int, size: int = 65536) -> AsyncIterator[bytes]:
    for _ in range(n):
        yield b"x" * size


async def test_replayable_stream_survives_expiry(fake: tuple[str, FakeState]) -> None:
    url, state = fake
    async with _client(url) as xnat:
        state.expire_all()
        result = await xnat.import_zip(lambda: _chunks(8), project="P1", subject="S1", session="E1")
    assert result.uri == "/data/prearchive/projects/P1/20240101_000000000/S1"
    assert state.uploads == [8 * 65536]


async def test_one_shot_stream_after_expiry_is_retriable(fake: tuple[str, FakeState]) -> None:
    url, state = fake
    async with _client(url) as xnat:
        state.expire_all()
        with pytest.raises(SessionRenewed) as info:
            await xnat.import_zip(_chunks(4), project="P1")
        assert info.value.retriable
        # The next attempt goes through on the renewed session.
        await xnat.import_zip(_chunks(4), project="P1")
    assert state.uploads == [4 * 65536]


async def test_source_error_propagates_unchanged(fake: tuple[str, FakeState]) -> None:
    url, _state = fake

    async def vanishing() -> AsyncIterator[bytes]:
        yield b"x" * 1000
        raise FileNotFoundError("/data/dicom/IM0002 vanished")

    async with _client(url) as xnat:
        with pytest.raises(FileNotFoundError, match="IM0002"):
            await xnat.import_zip(vanishing(), project="P1")


async def test_get_retries_then_gives_up(fake: tuple[str, FakeState]) -> None:
    url, state = fake
    async with _client(url) as xnat:
        state.flaky_left = 2
        await xnat.get_json("/data/flaky", CTX)
        state.flaky_left = 10
        with pytest.raises(ServerError) as info:
            await xnat.get_json("/data/flaky", CTX)
        assert info.value.retriable and info.value.status == 503
    assert state.counter["GET /data/flaky"] == 3 + 3


async def test_forbidden_names_the_permission(fake: tuple[str, FakeState]) -> None:
    url, _state = fake
    async with _client(url) as xnat:
        ctx = xnat.context("move it", permission="edit access to project P2")
        with pytest.raises(PermissionDenied) as info:
            await xnat.request("POST", "/data/forbidden", ctx)
    message = str(info.value)
    assert "alice lacks edit access to project P2" in message
    assert "Unable to modify session data" in message


async def test_commit_301_means_archived(fake: tuple[str, FakeState]) -> None:
    url, _state = fake
    async with _client(url) as xnat:
        result = await xnat.commit("/prearchive/projects/P1/20240101_000000000/S1")
    assert result.archived and result.status == 301
    assert result.uri == "/data/archive/projects/P1/subjects/S1/experiments/E1"


async def test_refused_connection_is_retriable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = XnatClient(Credentials(f"http://127.0.0.1:{port}", "a", "b"), get_retries=0)
    with pytest.raises(ConnectionFailed) as info:
        async with client:
            pass
    assert info.value.retriable and f"127.0.0.1:{port}" in str(info.value)


async def test_tls_verified_by_default_with_ca_bundle_or_insecure(
    certificate: tuple[Path, Path],
) -> None:
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    app, _state = make_app()
    runner, url = await _serve(app, context)
    try:
        with pytest.raises(TLSError) as info:
            async with XnatClient(Credentials(url, "alice", "alice")):
                pass
        assert "ca_bundle" in info.value.hint and "--insecure" in info.value.hint
        assert "--ca-bundle PATH" in info.value.hint
        assert not info.value.retriable
        async with XnatClient(Credentials(url, "alice", "alice", ca_bundle=str(cert))) as xnat:
            assert xnat.username == "alice"
        async with XnatClient(Credentials(url, "alice", "alice", verify_tls=False)) as xnat:
            assert xnat.logged_in
    finally:
        await runner.cleanup()


async def test_a_client_loads_no_ca_store_of_its_own(
    fake: tuple[str, FakeState], monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiohttp made its verifying context when imported; a second load of the system's
    CAs (~25 ms) would only delay every command's start (the test above checks that
    certificates are still verified by default)."""
    url, _ = fake
    loads: list[object] = []
    real = ssl.create_default_context

    def counted(*args: object, **kwargs: object) -> ssl.SSLContext:
        loads.append(args)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ssl, "create_default_context", counted)
    async with _client(url) as xnat:
        await xnat.get_json("/data/projects", CTX)
    assert loads == []


async def test_http_proxy_from_environment_is_used(
    fake: tuple[str, FakeState], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, state = fake
    port = url.rsplit(":", 1)[1]
    monkeypatch.setenv("HTTP_PROXY", f"http://proxyuser:proxypw@127.0.0.1:{port}")
    monkeypatch.setenv("NO_PROXY", "")
    # xnat.invalid does not resolve: only the proxy can answer for it. Plain HTTP to a
    # host that is not loopback is refused unless allowed.
    creds = Credentials("http://xnat.invalid", "alice", "alice", allow_http=True)
    async with XnatClient(creds) as xnat:
        await xnat.get_json("/data/projects", CTX)
    assert state.counter["GET /data/projects"] == 1
    assert state.proxy_auth.startswith("Basic ")


async def test_session_about_to_expire_is_renewed_before_a_one_shot_upload(
    fake: tuple[str, FakeState],
) -> None:
    url, state = fake
    state.ttl_ms = 1_000
    client = XnatClient(Credentials(url, "alice", "alice"), renew_margin=0.8)
    async with client as xnat:
        await xnat.import_zip(_chunks(2), project="P1")  # fresh session: no renewal
        assert xnat.relogins == 0
        await asyncio.sleep(0.3)  # now within 0.8 s of the 1 s idle timeout
        await xnat.import_zip(_chunks(2), project="P1")
        assert xnat.relogins == 1
    assert state.uploads == [2 * 65536, 2 * 65536]


async def test_concurrent_first_calls_share_one_login(fake: tuple[str, FakeState]) -> None:
    url, state = fake
    xnat = _client(url)
    try:
        await asyncio.gather(*(xnat.get_json("/data/projects", CTX) for _ in range(5)))
    finally:
        await xnat.close()
    assert state.counter["GET /data/auth"] == 1
