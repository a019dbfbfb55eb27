from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from xnat_tui.cli import build_parser, entry, main


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


# ---- xnat-tui PATH ----------------------------------------------------------------


class _Started:
    """What ``run_tui`` handed to the app, with the terminal left alone."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        from xnat_tui.ui import launch

        self.start_path: Path | None = None
        self.demo = tmp_path / "demo-dicom"

        def build_app(args: argparse.Namespace, cfg: object, *, start_path: Path) -> object:
            self.start_path = start_path
            return SimpleNamespace(run=lambda: 0)

        class FakeSandbox:
            url = "http://127.0.0.1:9"
            server = None  # as SandboxThread before its server (and DICOM receiver) is up

            def stop(self) -> None:
                pass

        def start_sandbox(base: Path) -> tuple[object, Path]:
            self.demo.mkdir(exist_ok=True)
            return FakeSandbox(), self.demo

        monkeypatch.setattr(launch, "build_app", build_app)
        monkeypatch.setattr(launch, "_start_sandbox", start_sandbox)
        monkeypatch.setattr(launch, "keys_from_terminal", lambda: "")
        monkeypatch.setattr(launch, "tune_runtime", lambda: None)
        monkeypatch.setenv("XNAT_TUI_SANDBOX_DIR", str(tmp_path / "sandbox"))


def test_a_folder_argument_opens_the_tui_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = _Started(monkeypatch, tmp_path)
    (tmp_path / "studies").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["studies"]) == 0
    assert started.start_path == tmp_path / "studies"
    assert main(["--insecure", str(tmp_path / "studies"), "--server", "http://127.0.0.1:1"]) == 0
    assert started.start_path == tmp_path / "studies"
    assert main([]) == 0
    assert started.start_path == tmp_path


def test_a_folder_named_like_a_command_is_reached_with_dot_slash_or_dashes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = _Started(monkeypatch, tmp_path)
    (tmp_path / "scan").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["./scan"]) == 0
    assert started.start_path == tmp_path / "scan"
    started.start_path = None
    assert main(["--", "scan"]) == 0
    assert started.start_path == tmp_path / "scan"
    # Without them the word is the command.
    assert _commands(build_parser(["scan"])) == {"scan"}


def test_with_sandbox_a_folder_argument_wins_over_the_demo_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = _Started(monkeypatch, tmp_path)
    (tmp_path / "mine").mkdir()
    assert main(["--sandbox", str(tmp_path / "mine")]) == 0
    assert started.start_path == tmp_path / "mine"
    assert main(["--sandbox"]) == 0
    assert started.start_path == started.demo


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (lambda p: p / "missing", "no such folder"),
        (lambda p: (p / "file.dcm").write_bytes(b"x") and p / "file.dcm", "not a folder"),
    ],
)
def test_a_folder_argument_that_is_not_a_folder_is_a_usage_error(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    make: Callable[[Path], Path],
    said: str,
) -> None:
    from xnat_tui.ui import launch

    def never(args: argparse.Namespace) -> int:
        raise AssertionError("the TUI started")

    monkeypatch.setattr(launch, "run_tui", never)
    target = make(tmp_path)
    assert main([str(target)]) == 2
    assert main(["--sandbox", str(target)]) == 2
    assert f"{target}: {said}" in capsys.readouterr().err


def test_an_unknown_word_alone_is_a_missing_folder_that_names_the_commands(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["scna"]) == 2
    err = capsys.readouterr().err
    assert "scna: no such folder" in err and "scan" in err and "upload" in err


def test_the_program_exits_without_searching_its_heap_for_cycles(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The interpreter's exit collects cycles over every object, more than once (~50 ms
    of every command); the program's entry freezes them first (main() does not: it is
    called in-process, by these tests too)."""
    monkeypatch.setattr(sys, "argv", ["xnat-tui", "completion", "bash"])
    gc.unfreeze()
    try:
        with pytest.raises(SystemExit) as info:
            entry()
        assert info.value.code == 0
        assert "complete -F" in capsys.readouterr().out
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()  # this test process goes on collecting


def test_a_commands_usage_error_names_the_command_not_the_top_level_usage(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["download", "--out", "x"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: xnat-tui download [-h]")
    assert err.splitlines()[-1] == (
        "xnat-tui download: error: one of the arguments --project --catalog is required"
    )
