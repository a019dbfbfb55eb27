"""The TUI's start-up honours the same connection rules as the commands (issue 14)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from xnat_tui.cli import build_parser
from xnat_tui.commands._args import CONNECTION_DEFAULTS, option_values
from xnat_tui.config import Config, ServerProfile
from xnat_tui.ui.launch import _login_request, run_tui


def _args(**flags: object) -> argparse.Namespace:
    return argparse.Namespace(**{**CONNECTION_DEFAULTS, **flags})


def test_a_password_in_the_server_url_stops_the_tui(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_app(*_: object, **__: object) -> object:
        raise AssertionError("the app must not be built")

    monkeypatch.setattr("xnat_tui.ui.launch.build_app", no_app)
    args = _args(server="https://alice:s3cret@xnat.invalid", path=None, sandbox=False)
    assert run_tui(args) == 2
    err = capsys.readouterr().err
    assert "holds a password" in err and "alice:***@" in err and "s3cret" not in err


def test_allow_http_and_ca_bundle_reach_the_login_form() -> None:
    args = _args(server="http://xnat.invalid", user="bob", allow_http=True, ca_bundle="/ca.pem")
    request, auto = _login_request(args, Config())
    assert request is not None and not auto  # no password: the form asks for it
    assert request.allow_http and request.ca_bundle == "/ca.pem"
    lab = Config(
        profiles={"lab": ServerProfile("lab", "http://xnat.invalid", "c", allow_http=True)}
    )
    request, _ = _login_request(_args(profile="lab"), lab)
    assert request is not None and request.allow_http


def test_the_url_user_fills_the_login_form() -> None:
    request, _ = _login_request(_args(server="https://alice@xnat.invalid"), Config())
    assert request is not None and request.user == "alice"


def test_ca_bundle_and_allow_http_are_connection_flags(tmp_path: Path) -> None:
    assert {"--ca-bundle"} <= option_values()
    for argv in (
        ["--ca-bundle", "/ca.pem", "--allow-http", "scan", "."],
        ["prearchive", "list", "--ca-bundle", "/ca.pem", "--allow-http"],
    ):
        args = build_parser(argv).parse_args(argv)
        assert args.ca_bundle == "/ca.pem" and args.allow_http is True
    args = build_parser(["scan", "."]).parse_args(["scan", "."])
    assert args.ca_bundle is None and args.allow_http is False
