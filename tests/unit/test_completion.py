"""``xnat-tui completion bash|zsh|fish``: the scripts, and the values they ask for.

The bash script is run in bash. zsh and fish run theirs when installed (skipped
otherwise; the text is always checked). The scripts call ``xnat-tui`` back for profile
names and job IDs; a wrapper of that name on PATH runs this checkout.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from xnat_tui import cli
from xnat_tui.commands import completion
from xnat_tui.commands.completion import (
    JOB_STATES,
    command_tree,
    job_candidates,
    profile_candidates,
    script,
)
from xnat_tui.config import config_path
from xnat_tui.transfer import Destination, JobState, Journal, Overwrite
from xnat_tui.transfer.journal import NewJob, default_path

CONFIG = """
default_profile = "work"
[profiles.work]
url = "https://xnat.example.org"
[profiles.sandbox]
url = "http://127.0.0.1:8080"
[profiles."two words"]
url = "https://x.example.org"
"""


@pytest.fixture
def exe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An ``xnat-tui`` on PATH that runs this checkout; the scripts call it back."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "xnat-tui"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m xnat_tui "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return wrapper


@pytest.fixture
def profiles() -> None:
    config_path().write_text(CONFIG, encoding="utf-8")


@pytest.fixture
def jobs() -> dict[str, str]:
    """One journalled job per state: state -> job id."""
    journal = Journal()
    ids: dict[str, str] = {}
    try:
        for state in JobState:
            [jid] = journal.create_jobs(
                [
                    NewJob(
                        "http://x",
                        "alice",
                        "P",
                        "S",
                        f"E_{state.value}",
                        f"1.{len(ids)}",
                        Destination.ARCHIVE,
                        Overwrite.NONE,
                        series=[],
                    )
                ]
            )
            journal.set_state(jid, state)
            ids[state.value] = jid
    finally:
        journal.close()
    return ids


def _xnat_tui(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xnat_tui", *args], capture_output=True, text=True, timeout=60
    )


# ------------------------------------------------------------------ the scripts
@pytest.mark.parametrize("shell", completion.SHELLS)
def test_each_script_names_every_command_and_their_options(shell: str) -> None:
    result = _xnat_tui("completion", shell)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text == script(shell)
    for name in cli.command_names():
        assert name in text
    for word in (
        "transfers",
        "retry",
        "resume",
        "demo-data",  # subcommands
        "--profile",
        "--server",
        "--dest",
        "--dry-run",
        "--json",
        "--skip-missing",  # options
        "prearchive,archive",  # choices of --dest
        "completion --complete",  # the call back
    ):
        assert word in text, word
    assert "@profiles" in text and "@jobs:retry" in text and "@jobs:show" in text


def test_the_tree_is_the_cli_parser() -> None:
    """completion.py may not import the CLI; its copy of the parser stays the same."""
    assert completion.command_modules() == cli.command_names()
    real = cli.build_parser()
    mine = completion.full_parser()

    def shape(parser: argparse.ArgumentParser) -> dict[str, object]:
        out: dict[str, object] = {}
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    out[name] = shape(child)
            else:
                out[" ".join(action.option_strings) or action.dest] = action.nargs
        return out

    assert shape(mine) == shape(real)


def test_values_are_described_by_kind() -> None:
    levels = {lv.path: lv for lv in command_tree()}
    assert levels[""].positional == "@dirs"  # xnat-tui PATH
    assert levels[""].options["--profile"][0] == "@profiles"
    assert levels[""].options["--sandbox"][0] == ""
    assert levels["upload"].options["--profile"][0] == "@profiles"
    assert levels["upload"].options["--dest"][0] == "project,prearchive,archive"
    assert levels["upload"].positional == "@files"
    assert levels["anonymize"].options["--profile"][0] == "basic,none"  # not a server profile
    assert levels["anonymize"].options["--server-profile"][0] == "@profiles"
    assert levels["sandbox demo-data"].positional == "@dirs"
    assert levels["completion"].positional == "bash,zsh,fish"
    assert "--complete" not in levels["completion"].options  # hidden
    for action in ("show", "resume", "pause", "cancel", "retry"):
        assert levels[f"transfers {action}"].positional == f"@jobs:{action}"
    assert levels["transfers"].commands.keys() >= JOB_STATES.keys()


def test_a_word_a_script_cannot_hold_unquoted_is_refused() -> None:
    parser = argparse.ArgumentParser(prog="x")
    parser.add_argument("--mode", choices=["a b", "c"])
    with pytest.raises(ValueError, match="'a b'"):
        command_tree(parser)


def test_without_a_shell_or_with_an_unknown_value_it_is_a_usage_error() -> None:
    assert _xnat_tui("completion").returncode == 2
    assert _xnat_tui("completion", "tcsh").returncode == 2
    assert _xnat_tui("completion", "--complete", "passwords").returncode == 2
    assert _xnat_tui("completion", "--complete", "jobs:upload").returncode == 2


# ------------------------------------------------------------ dynamic values
def test_profiles_come_from_the_config(profiles: None) -> None:
    assert profile_candidates() == [
        "work\thttps://xnat.example.org",
        "sandbox\thttp://127.0.0.1:8080",
    ]  # "two words" would be split by the shell: not offered
    result = _xnat_tui("completion", "--complete", "profiles")
    assert result.returncode == 0
    assert result.stdout.splitlines() == profile_candidates()


def test_no_or_a_broken_config_gives_no_profiles() -> None:
    assert profile_candidates() == []
    config_path().write_text("[profiles.work\nurl=", encoding="utf-8")
    assert profile_candidates() == []


def test_job_ids_are_those_the_action_can_act_on(jobs: dict[str, str]) -> None:
    def ids(action: str | None) -> set[str]:
        return {line.split("\t")[0] for line in job_candidates(action)}

    assert ids(None) == ids("show") == set(jobs.values())
    assert ids("retry") == {jobs["failed"]}
    assert ids("pause") == {jobs[s.value] for s in JobState if s.active}
    assert ids("resume") == {jobs[s.value] for s in JobState if s.active} | {jobs["paused"]}
    assert jobs["verified"] not in ids("cancel") and jobs["failed"] in ids("cancel")
    [line] = [x for x in job_candidates("retry")]
    assert line == f"{jobs['failed']}\tfailed P/S/E_failed"


def test_the_job_states_are_the_journals() -> None:
    states = {s.value for s in JobState}
    for wanted in JOB_STATES.values():
        assert wanted is None or set(wanted) <= states
    assert completion.journal_path() == default_path()


def test_no_journal_gives_no_job_ids_and_creates_none() -> None:
    assert job_candidates("retry") == []
    assert _xnat_tui("completion", "--complete", "jobs:retry").stdout == ""
    assert not default_path().exists()


def test_the_call_back_imports_neither_engine_nor_client(jobs: dict[str, str]) -> None:
    code = (
        "import sys\n"
        "from xnat_tui.cli import main\n"
        "assert main(['completion', '--complete', 'jobs:retry']) == 0\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split("\n")
    assert out[0].startswith(jobs["failed"])
    loaded = set(out[1].split())
    heavy = ("aiohttp", "pydicom", "textual", "rich", "xnat_tui.transfer", "xnat_tui.xnat")
    assert sorted(m for m in loaded if m.startswith(heavy)) == []


# ------------------------------------------------------------- running them
BASH_COMPLETE = """
source <(xnat-tui completion bash)
complete -p xnat-tui >/dev/null || exit 3
COMP_WORDS=({words}); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
_xnat_tui
printf '%s\\n' "${{COMPREPLY[@]}}"
"""


def _bash(line: str, cwd: Path) -> list[str]:
    words = " ".join(f"'{w}'" for w in line.split(" "))
    result = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", BASH_COMPLETE.format(words=words)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )
    assert result.returncode == 0, result.stderr
    return [w for w in result.stdout.splitlines() if w]


def test_bash_completes_commands_options_and_choices(exe: Path, tmp_path: Path) -> None:
    tmp_path = tmp_path / "work"
    (tmp_path / "scans").mkdir(parents=True)
    (tmp_path / "notes.txt").write_text("")
    assert _bash("xnat-tui tr", tmp_path) == ["transfers"]
    assert _bash("xnat-tui transfers re", tmp_path) == ["resume", "retry"]
    assert _bash("xnat-tui upload --des", tmp_path) == ["--dest"]
    assert _bash("xnat-tui upload --dest pr", tmp_path) == ["project", "prearchive"]
    assert _bash("xnat-tui transfers retry --sk", tmp_path) == ["--skip-missing"]
    assert _bash("xnat-tui upload --jobs 2 --json sc", tmp_path) == ["scans"]  # a PATH
    assert _bash("xnat-tui sandbox demo-data ", tmp_path) == ["scans"]  # folders only
    assert _bash("xnat-tui completion ", tmp_path) == ["bash", "zsh", "fish"]
    assert _bash("xnat-tui -- tr", tmp_path) == []  # after --: a folder, not a command


def test_bash_completes_profiles_and_job_ids(
    exe: Path, tmp_path: Path, profiles: None, jobs: dict[str, str]
) -> None:
    assert sorted(_bash("xnat-tui --profile ", tmp_path)) == ["sandbox", "work"]
    assert _bash("xnat-tui upload --profile w", tmp_path) == ["work"]
    assert _bash("xnat-tui transfers retry ", tmp_path) == [jobs["failed"]]
    assert set(_bash("xnat-tui transfers show ", tmp_path)) == set(jobs.values())
    prefix = jobs["paused"][:3]
    assert jobs["paused"] in _bash(f"xnat-tui transfers resume {prefix}", tmp_path)


ZSH_COMPLETE = """
compdef() {{ :; }}
_describe() {{ local -a a; a=("${{(@P)${{@[-1]}}}}"); print -rl -- "${{(@)a%%:*}}"; }}
compadd() {{ [[ $1 == -a ]] && print -rl -- "${{(@P)2}}"; }}
_files() {{ print -r -- "<files $*>"; }}
_message() {{ :; }}
source <(xnat-tui completion zsh)
words=({words}); CURRENT=${{#words}}
_xnat_tui
"""


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_script_runs(exe: Path, tmp_path: Path, profiles: None, jobs: dict[str, str]) -> None:
    def complete(line: str) -> list[str]:
        words = " ".join(f"'{w}'" for w in line.split(" "))
        result = subprocess.run(
            ["zsh", "-f", "-c", ZSH_COMPLETE.format(words=words)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        assert result.returncode in (0, 1), result.stderr
        assert result.stderr == ""
        return result.stdout.splitlines()

    # zsh filters by the prefix itself: the function offers the level's words.
    assert "transfers" in complete("xnat-tui tr")
    assert complete("xnat-tui transfers retry ") == [jobs["failed"]]
    assert complete("xnat-tui upload --dest ") == ["project", "prearchive", "archive"]
    assert complete("xnat-tui --profile ") == ["work", "sandbox"]
    assert complete("xnat-tui scan ") == ["<files >"]
    assert complete("xnat-tui sandbox demo-data ") == ["<files -/>"]
    assert "--skip-missing" in complete("xnat-tui transfers retry --")


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_fish_script_runs(exe: Path, tmp_path: Path, profiles: None, jobs: dict[str, str]) -> None:
    (tmp_path / "scans").mkdir()

    def complete(line: str) -> list[str]:
        result = subprocess.run(
            [
                "fish",
                "--no-config",
                "-c",
                f"xnat-tui completion fish | source; complete -C'{line}'",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        assert result.returncode == 0 and result.stderr == "", result.stderr
        return [w.split("\t")[0] for w in result.stdout.splitlines()]

    assert complete("xnat-tui tr") == ["transfers"]
    assert complete("xnat-tui transfers retry ") == [jobs["failed"]]
    assert complete("xnat-tui upload --dest pr") == ["prearchive", "project"]
    assert complete("xnat-tui --profile ") == ["sandbox", "work"]
    assert complete("xnat-tui scan sc") == ["scans/"]
    assert complete("xnat-tui transfers retry --sk") == ["--skip-missing"]
