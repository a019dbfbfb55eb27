"""The TUI's login form, pre-filled from the same flags/env rules as the commands."""

from __future__ import annotations

import argparse

import pytest

from xnat_tui.commands._args import CONNECTION_DEFAULTS
from xnat_tui.config import Config
from xnat_tui.ui.launch import _login_request


def _args(**flags: object) -> argparse.Namespace:
    return argparse.Namespace(**{**CONNECTION_DEFAULTS, **flags})


def test_complete_credentials_log_in_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XNAT_PASS", "secret")
    request, auto = _login_request(_args(server="127.0.0.1:8", user="bob", insecure=True), Config())
    assert auto
    assert request is not None
    assert (request.url, request.user, request.password) == ("https://127.0.0.1:8", "bob", "secret")
    assert request.verify_tls is False


def test_a_missing_password_prefills_the_form() -> None:
    request, auto = _login_request(_args(server="http://127.0.0.1:8", user="bob"), Config())
    assert not auto
    assert request is not None
    assert (request.url, request.user, request.password) == ("http://127.0.0.1:8", "bob", "")


def test_nothing_given_leaves_the_choice_to_the_login_screen() -> None:
    assert _login_request(_args(), Config()) == (None, False)
