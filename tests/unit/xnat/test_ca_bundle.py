"""``--ca-bundle PATH``: the option the TLS hint names exists and works (issue 14 #13)."""

from __future__ import annotations

import argparse
import io
import ssl
from pathlib import Path

import pytest
from aiohttp import web

from tests.unit.xnat.fake_server import make_app
from xnat_tui import cli
from xnat_tui.commands._args import CONNECTION_DEFAULTS
from xnat_tui.commands._connect import open_client, resolve_credentials
from xnat_tui.config import Config, ServerProfile
from xnat_tui.xnat.errors import TLSError


def _args(**flags: object) -> argparse.Namespace:
    return argparse.Namespace(**{**CONNECTION_DEFAULTS, **flags})


async def test_ca_bundle_flag_makes_a_private_ca_trusted(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    runner = web.AppRunner(make_app()[0])
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    monkeypatch.setenv("XNAT_PASS", "alice")
    url = f"https://127.0.0.1:{port}"
    try:
        with pytest.raises(TLSError) as info:
            async with open_client(_args(server=url, user="alice"), Config()):
                pass
        # The hint names the option, and the option is there.
        assert "--ca-bundle PATH" in info.value.hint
        args = cli.build_parser().parse_args(
            ["prearchive", "list", "--server", url, "--user", "alice", "--ca-bundle", str(cert)]
        )
        async with open_client(args, Config()) as xnat:
            assert xnat.username == "alice"
    finally:
        await runner.cleanup()


def test_the_flag_wins_over_the_profile(isolated_dirs: Path) -> None:
    cfg = Config(profiles={"p": ServerProfile("p", "https://x.invalid", "a", ca_bundle="/p.pem")})
    flags = {"profile": "p", "password_stdin": True}
    creds = resolve_credentials(_args(**flags), cfg, stdin=io.StringIO("pw\n"))
    assert creds.ca_bundle == "/p.pem"
    creds = resolve_credentials(
        _args(**flags, ca_bundle="/flag.pem"), cfg, stdin=io.StringIO("pw\n")
    )
    assert creds.ca_bundle == "/flag.pem"


def test_a_missing_ca_bundle_is_a_usage_error_naming_the_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("pw\n"))
    missing = tmp_path / "nope.pem"
    argv = ["prearchive", "list", "--server", "https://127.0.0.1:9", "--user", "a"]
    code = cli.main([*argv, "--password-stdin", "--ca-bundle", str(missing)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"CA bundle {missing} does not exist" in err and "--ca-bundle" in err
