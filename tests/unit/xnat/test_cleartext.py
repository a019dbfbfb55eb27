"""No password over plain HTTP beyond this machine; no password in a URL (issue 14 #5, #11).

Nothing here leaves 127.0.0.1: the non-loopback name is ``xnat.invalid`` (it never
resolves), and where a request to it must get through, an HTTP proxy on 127.0.0.1 (the
sandbox) answers for it. In the refusal tests that proxy is set up too, so without the
refusal the request would reach it and the test would see a login.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from xnat_tui import cli
from xnat_tui.config import Config, ServerProfile
from xnat_tui.sandbox.server import SandboxServer, SandboxThread
from xnat_tui.workflow.connect import ConnectionFlags, resolve_credentials
from xnat_tui.workflow.login import LoginRequest, login, needs_http_consent
from xnat_tui.xnat import Credentials, UsageError, XnatClient
from xnat_tui.xnat.credentials import is_loopback_address, refuse_cleartext
from xnat_tui.xnat.errors import CleartextRefused, ErrorContext

REMOTE = "http://xnat.invalid"


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every URL aiohttp is asked to request (the request still goes ahead)."""
    urls: list[str] = []
    original = aiohttp.ClientSession._request

    async def record(self: aiohttp.ClientSession, method: str, url: Any, **kw: Any) -> Any:
        urls.append(f"{method} {url}")
        return await original(self, method, url, **kw)

    monkeypatch.setattr(aiohttp.ClientSession, "_request", record)
    return urls


@pytest.fixture
def proxy(sandbox_thread: SandboxThread, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The sandbox (127.0.0.1) as the HTTP proxy: it answers for xnat.invalid."""
    monkeypatch.setenv("HTTP_PROXY", sandbox_thread.url)
    monkeypatch.setenv("NO_PROXY", "")
    yield sandbox_thread.url


def _run(argv: list[str], monkeypatch: pytest.MonkeyPatch, password: str = "alice\n") -> Any:
    stdin = io.StringIO(password)
    monkeypatch.setattr("sys.stdin", stdin)
    code = cli.main(argv)
    return code, stdin


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.4.5", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("LocalHost", True),
        ("xnat.example.org", False),
        ("128.0.0.1", False),  # just past 127/8
        ("0.0.0.0", False),
        ("localhost.example.org", False),
        ("foo.localhost", False),
        ("127.0.0.1.nip.io", False),
        ("::ffff:128.0.0.1", False),
    ],
)
def test_what_counts_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback_address(host) is loopback


def test_the_refusal_says_why_and_how() -> None:
    refuse_cleartext("https://xnat.example.org", allow_http=False)
    refuse_cleartext("http://127.0.0.1:8080", allow_http=False)
    refuse_cleartext("http://localhost:8080", allow_http=False)
    refuse_cleartext("http://xnat.example.org", allow_http=True)
    with pytest.raises(CleartextRefused) as info:
        refuse_cleartext("http://xnat.example.org/xnat", allow_http=False, user="alice")
    error = info.value
    assert isinstance(error, UsageError)
    assert "plain HTTP" in error.message and "alice" in error.message
    assert "https://xnat.example.org/xnat" in error.hint
    assert "--allow-http" in error.hint and "allow_http = true" in error.hint


async def test_the_client_refuses_before_sending_anything(sent: list[str]) -> None:
    with pytest.raises(CleartextRefused):
        XnatClient(Credentials(REMOTE, "alice", "alice"))
    with pytest.raises(CleartextRefused):
        await login(LoginRequest(url=REMOTE, user="alice", password="alice"))
    assert sent == []


async def test_an_absolute_http_url_from_a_server_is_checked_too(
    sandbox: SandboxServer, sent: list[str]
) -> None:
    async with XnatClient(Credentials(sandbox.url, "alice", "alice")) as xnat:
        before = len(sent)
        with pytest.raises(CleartextRefused):
            await xnat.request("GET", f"{REMOTE}/data/projects", ErrorContext(action="list"))
        assert len(sent) == before


def test_cli_refuses_plain_http_to_another_host_and_sends_nothing(
    proxy: str,
    sent: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["prearchive", "list", "--server", REMOTE, "--user", "alice", "--password-stdin"]
    code, stdin = _run(argv, monkeypatch)
    err = capsys.readouterr().err
    assert code == 2
    assert "Refusing to send the password of alice to xnat.invalid over plain HTTP" in err
    assert "hint:" in err and "--allow-http" in err
    assert sent == []
    assert stdin.tell() == 0  # the password was not even read


def test_cli_allow_http_flag_sends(
    proxy: str, sent: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["prearchive", "list", "--server", REMOTE, "--allow-http"]
    code, _ = _run([*argv, "--user", "alice", "--password-stdin"], monkeypatch)
    assert code == 0
    assert sent and sent[0].startswith(f"GET {REMOTE}/data/")


def test_cli_profile_allow_http_sends(
    proxy: str, sent: list[str], monkeypatch: pytest.MonkeyPatch, isolated_dirs: Path
) -> None:
    (isolated_dirs / "config.toml").write_text(
        f'[profiles.lab]\nurl = "{REMOTE}"\nuser = "alice"\nallow_http = true\n'
    )
    code, _ = _run(["prearchive", "list", "--profile", "lab", "--password-stdin"], monkeypatch)
    assert code == 0
    assert sent and sent[0].startswith(f"GET {REMOTE}/data/")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_cli_loopback_needs_no_flag(
    sandbox_thread: SandboxThread, host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = sandbox_thread.url.replace("127.0.0.1", host)
    argv = ["prearchive", "list", "--server", url, "--user", "alice", "--password-stdin"]
    assert _run(argv, monkeypatch)[0] == 0


def test_profile_key_and_flag_reach_the_credentials(isolated_dirs: Path) -> None:
    lab = Config(profiles={"lab": ServerProfile("lab", REMOTE, user="alice", allow_http=True)})
    creds = resolve_credentials(
        ConnectionFlags(profile="lab", password_stdin=True), lab, stdin=io.StringIO("pw\n")
    )
    assert creds.allow_http and creds.server == REMOTE
    creds = resolve_credentials(
        ConnectionFlags(server=REMOTE, user="a", password_stdin=True, allow_http=True),
        Config(),
        stdin=io.StringIO("pw\n"),
    )
    assert creds.allow_http
    with pytest.raises(CleartextRefused):
        resolve_credentials(
            ConnectionFlags(server=REMOTE, user="a", password_stdin=True),
            Config(),
            stdin=io.StringIO("pw\n"),
        )


def test_the_login_form_asks_only_for_http_to_another_host() -> None:
    assert needs_http_consent("http://xnat.example.org")
    assert needs_http_consent("HTTP://xnat.example.org:8080/xnat")
    assert not needs_http_consent("https://xnat.example.org")
    assert not needs_http_consent("http://127.0.0.1:8080")
    assert not needs_http_consent("http://localhost")
    assert not needs_http_consent("xnat.example.org")  # https is the default
    assert not needs_http_consent("")


# ---- a user name or password in the URL (#11) ----------------------------------------


def test_a_password_in_the_url_is_refused_and_never_echoed(
    sandbox_thread: SandboxThread,
    sent: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = sandbox_thread.url.replace("http://", "http://alice:s3cret@")
    code, _ = _run(["prearchive", "list", "--server", url], monkeypatch)
    err = capsys.readouterr().err
    assert code == 2
    assert "holds a password" in err and "alice:***@" in err
    assert "--user" in err and "--password-stdin" in err
    assert "s3cret" not in err
    assert sent == []


def test_the_user_in_the_url_logs_in_not_the_netrc_user(
    sandbox_thread: SandboxThread, monkeypatch: pytest.MonkeyPatch, isolated_dirs: Path
) -> None:
    host = "127.0.0.1"
    netrc = isolated_dirs / ".netrc"
    netrc.write_text(f"machine {host} login bob password bob\n")
    netrc.chmod(0o600)
    url = sandbox_thread.url.replace("http://", "http://alice@")
    creds = resolve_credentials(
        ConnectionFlags(server=url, password_stdin=True), Config(), stdin=io.StringIO("alice\n")
    )
    # Before: the user part was dropped and bob (from ~/.netrc) logged in.
    assert (creds.user, creds.password, creds.source) == ("alice", "alice", "stdin")
    assert creds.server == sandbox_thread.url
    code, _ = _run(["prearchive", "list", "--server", url, "--password-stdin"], monkeypatch)
    assert code == 0


def test_a_url_user_and_another_user_flag_conflict() -> None:
    with pytest.raises(UsageError, match="names the user 'alice'.*'bob'"):
        resolve_credentials(
            ConnectionFlags(server="https://alice@xnat.example.org", user="bob"),
            Config(),
            stdin=io.StringIO(""),
        )
    same = resolve_credentials(
        ConnectionFlags(server="https://alice@xnat.example.org", user="alice", password_stdin=True),
        Config(),
        stdin=io.StringIO("pw\n"),
    )
    assert same.user == "alice"


async def test_the_login_form_takes_the_url_user_and_refuses_a_password(
    sandbox: SandboxServer,
) -> None:
    url = sandbox.url.replace("http://", "http://alice@")
    connection = await login(LoginRequest(url=url, user="", password="alice"))
    try:
        assert connection.user == "alice" and connection.url == sandbox.url
    finally:
        assert connection.close is not None
        await connection.close()
    with pytest.raises(UsageError, match="holds a password"):
        await login(LoginRequest(url=url.replace("alice@", "alice:alice@"), user=""))
