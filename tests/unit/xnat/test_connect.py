"""Where the server, user and password come from (commands/_connect.py)."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest

from xnat_tui.commands._connect import open_client, report_error, resolve_credentials
from xnat_tui.config import Config, ServerProfile
from xnat_tui.sandbox.server import SandboxServer
from xnat_tui.xnat.credentials import netrc_credentials, normalise_server, proxy_for
from xnat_tui.xnat.errors import AuthenticationError, UsageError


def _args(**kw: object) -> argparse.Namespace:
    base: dict[str, object] = {
        "server": None,
        "user": None,
        "profile": None,
        "password_stdin": False,
        "insecure": False,
    }
    base.update(kw)
    return argparse.Namespace(**base)


def _netrc(home: Path, text: str) -> None:
    path = home / ".netrc"
    path.write_text(text)
    path.chmod(0o600)


def _no_tty() -> io.StringIO:
    return io.StringIO("")


def test_flags_and_password_stdin(isolated_dirs: Path) -> None:
    creds = resolve_credentials(
        _args(server="xnat.example.org/", user="alice", password_stdin=True),
        Config(),
        environ={},
        stdin=io.StringIO("s3cret\n"),
    )
    assert creds.server == "https://xnat.example.org"
    assert (creds.user, creds.password, creds.source) == ("alice", "s3cret", "stdin")
    assert creds.verify_tls and "s3cret" not in repr(creds)


def test_env_vars_like_xnatpy(isolated_dirs: Path) -> None:
    env = {"XNAT_HOST": "http://127.0.0.1:8080/", "XNAT_USER": "bob", "XNAT_PASS": "pw"}
    creds = resolve_credentials(_args(), Config(), environ=env, stdin=_no_tty())
    assert (creds.server, creds.user, creds.password, creds.source) == (
        "http://127.0.0.1:8080",
        "bob",
        "pw",
        "env",
    )


def test_xnat_pass_is_not_used_for_another_user(isolated_dirs: Path) -> None:
    env = {"XNAT_HOST": "https://x.org", "XNAT_USER": "bob", "XNAT_PASS": "bobs"}
    with pytest.raises(UsageError, match="No password for alice"):
        resolve_credentials(_args(user="alice"), Config(), environ=env, stdin=_no_tty())


def test_netrc_supplies_login_and_password(isolated_dirs: Path) -> None:
    _netrc(isolated_dirs, "machine xnat.example.org login carol password fromnetrc\n")
    creds = resolve_credentials(
        _args(server="https://xnat.example.org:8443/xnat"), Config(), environ={}, stdin=_no_tty()
    )
    assert (creds.user, creds.password, creds.source) == ("carol", "fromnetrc", "netrc")
    assert creds.server == "https://xnat.example.org:8443/xnat"
    # netrc password belongs to carol only
    with pytest.raises(UsageError):
        resolve_credentials(
            _args(server="https://xnat.example.org", user="dave"),
            Config(),
            environ={},
            stdin=_no_tty(),
        )


def test_precedence_stdin_over_env_over_netrc(isolated_dirs: Path) -> None:
    _netrc(isolated_dirs, "machine x.org login alice password netrcpw\n")
    env = {"XNAT_PASS": "envpw"}
    args = _args(server="https://x.org", user="alice")
    assert resolve_credentials(args, Config(), environ=env, stdin=_no_tty()).password == "envpw"
    assert resolve_credentials(args, Config(), environ={}, stdin=_no_tty()).password == "netrcpw"
    args.password_stdin = True
    piped = resolve_credentials(args, Config(), environ=env, stdin=io.StringIO("pipe\n"))
    assert piped.password == "pipe"


def test_profile_supplies_url_user_and_tls(isolated_dirs: Path) -> None:
    config = Config(
        default_profile="site",
        profiles={
            "site": ServerProfile(
                name="site", url="https://xnat.site.org", user="alice", ca_bundle="/etc/ca.pem"
            ),
            "lab": ServerProfile(name="lab", url="https://lab.org", verify_tls=False),
        },
    )
    env = {"XNAT_PASS": "pw"}
    default = resolve_credentials(_args(), config, environ=env, stdin=_no_tty())
    assert (default.server, default.user, default.ca_bundle) == (
        "https://xnat.site.org",
        "alice",
        "/etc/ca.pem",
    )
    lab = resolve_credentials(_args(profile="lab", user="u"), config, environ=env, stdin=_no_tty())
    assert lab.server == "https://lab.org" and not lab.verify_tls
    insecure = resolve_credentials(_args(insecure=True), config, environ=env, stdin=_no_tty())
    assert not insecure.verify_tls
    with pytest.raises(UsageError, match="No server profile named 'nope'"):
        resolve_credentials(_args(profile="nope"), config, environ=env, stdin=_no_tty())


def test_missing_server_is_a_usage_error_with_hint(isolated_dirs: Path) -> None:
    with pytest.raises(UsageError) as info:
        resolve_credentials(_args(), Config(), environ={}, stdin=_no_tty())
    assert "--server" in info.value.hint and "XNAT_HOST" in info.value.hint
    out = io.StringIO()
    assert report_error(info.value, stream=out) == 2
    assert "error: No XNAT server given." in out.getvalue()


def test_prompts_only_on_a_terminal(isolated_dirs: Path) -> None:
    asked: list[str] = []

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return "typed"

    creds = resolve_credentials(
        _args(server="https://x.org", user="0d5f0a4e-1111-2222-3333-444455556666"),
        Config(),
        environ={},
        stdin=_no_tty(),
        interactive=True,
        prompt_password=ask,
    )
    assert creds.password == "typed" and creds.is_token
    assert "alias token secret" in asked[0].lower()
    with pytest.raises(UsageError, match="No password"):
        resolve_credentials(
            _args(server="https://x.org", user="alice"), Config(), environ={}, stdin=_no_tty()
        )


def test_broken_netrc_is_reported(isolated_dirs: Path) -> None:
    _netrc(isolated_dirs, "machine x.org login alice password pw\n")
    (isolated_dirs / ".netrc").chmod(0o644)
    with pytest.raises(UsageError, match="too permissive") as info:
        netrc_credentials("x.org")
    # The permission check has no line number: it said "(line None)".
    assert "None" not in info.value.message
    assert info.value.message.startswith(str(isolated_dirs / ".netrc"))
    assert f"chmod 600 {isolated_dirs / '.netrc'}" in info.value.hint


def test_a_netrc_syntax_error_names_its_line(isolated_dirs: Path) -> None:
    _netrc(isolated_dirs, "machine x.org login alice password pw\nbogus token\n")
    with pytest.raises(UsageError, match=r"bad follower token 'bogus' \(line 2\)") as info:
        netrc_credentials("x.org")
    assert "--password-stdin" in info.value.hint


def test_normalise_server() -> None:
    assert normalise_server("https://xnat.org/xnat/data/") == "https://xnat.org/xnat"
    assert normalise_server("https://u@xnat.org/xnat/data/") == "https://xnat.org/xnat"
    with pytest.raises(UsageError):
        normalise_server("ftp://xnat.org")


def test_proxy_from_env_but_never_for_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    monkeypatch.setenv("NO_PROXY", "internal.org")
    assert proxy_for("https://xnat.example.org") == "http://proxy.corp:3128"
    assert proxy_for("https://xnat.internal.org") is None
    monkeypatch.setenv("NO_PROXY", "")
    assert proxy_for("https://127.0.0.1:8443") is None
    assert proxy_for("http://localhost:8080") is None
    assert proxy_for("http://[::1]:8080") is None


async def test_open_client_logs_in_from_flags_and_env(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XNAT_PASS", "alice")
    async with open_client(_args(server=sandbox.url, user="alice"), Config()) as xnat:
        assert xnat.username == "alice"
        assert xnat.credentials.source == "env"
    monkeypatch.setenv("XNAT_PASS", "wrong")
    with pytest.raises(AuthenticationError) as info:
        async with open_client(_args(server=sandbox.url, user="alice"), Config()):
            pass
    out = io.StringIO()
    assert report_error(info.value, stream=out) == 1
    assert "hint:" in out.getvalue()


def test_a_closed_output_pipe_ends_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    """``xnat-tui prearchive list --json | head``: exit 1, no "error: [Errno 32]" line."""
    monkeypatch.setattr("sys.stdout", io.StringIO())
    err = io.StringIO()
    assert report_error(BrokenPipeError(32, "Broken pipe"), stream=err) == 1
    assert err.getvalue() == ""
