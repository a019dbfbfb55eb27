from __future__ import annotations

import pytest

from xnat_tui.cli import build_parser


@pytest.mark.parametrize(
    "argv",
    [
        ["--server", "http://127.0.0.1:1", "--user", "u", "--insecure", "prearchive", "list"],
        ["prearchive", "list", "--server", "http://127.0.0.1:1", "--user", "u", "--insecure"],
    ],
)
def test_connection_flags_survive_either_side_of_the_subcommand(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert args.server == "http://127.0.0.1:1"
    assert args.user == "u"
    assert args.insecure is True
    assert args.password_stdin is False
    assert args.profile is None


def test_defaults_without_flags() -> None:
    args = build_parser().parse_args(["scan", "."])
    assert args.server is None and args.insecure is False


def test_every_subcommand_registers() -> None:
    parser = build_parser()
    text = parser.format_help()
    for name in ("sandbox", "scan", "upload", "transfers", "prearchive", "anonymize"):
        assert name in text
