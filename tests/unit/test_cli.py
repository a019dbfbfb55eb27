from __future__ import annotations

import argparse

import pytest

from xnat_tui.cli import build_parser, main


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


def _commands(parser: argparse.ArgumentParser) -> set[str]:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return set(sub.choices)


def test_only_the_named_command_is_imported() -> None:
    every = _commands(build_parser())
    assert {"scan", "upload", "prearchive"} <= every
    assert _commands(build_parser(["scan", "--json", "."])) == {"scan"}
    # Options and their values may come first; help and typos still list them all.
    assert _commands(build_parser(["--server", "http://127.0.0.1:1", "upload", "."])) == {"upload"}
    assert _commands(build_parser(["--help"])) == every
    assert _commands(build_parser(["scna", "."])) == every


def test_a_mistyped_command_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["scna", "."])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'scna'" in err
    for name in ("scan", "upload", "transfers", "prearchive", "anonymize", "sandbox"):
        assert name in err


def test_an_option_value_is_not_taken_for_the_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    every = _commands(build_parser())
    # "sandbox" is a profile name here (the example config has one), not the command.
    assert _commands(build_parser(["--profile", "sandbox", "upload", "."])) == {"upload"}
    assert _commands(build_parser(["--profile", "scan", "--help"])) == every
    assert _commands(build_parser(["--profile=scan", "upload", "."])) == {"upload"}
    with pytest.raises(SystemExit):
        main(["--profile", "sandbox", "prearchve", "list"])
    err = capsys.readouterr().err
    assert "invalid choice: 'prearchve'" in err and "upload" in err and "scan" in err


def test_files_that_are_not_command_modules_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    from xnat_tui import cli

    real = cli.command_names()
    listing = [f"{n}.py" for n in real] + [".#scan.py", "__init__.py", "notes.txt", "x.y.py"]
    monkeypatch.setattr(cli.os, "listdir", lambda path: listing)
    assert cli.command_names() == real
