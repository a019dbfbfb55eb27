"""``xnat-tui transfers`` and ``upload`` flags, in-process against an isolated journal
(XDG_STATE_HOME in tmp_path): failed jobs stay in view, values are checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.transfer.helpers import make_session
from xnat_tui.cli import main
from xnat_tui.transfer.journal import Journal, NewJob
from xnat_tui.transfer.types import Destination, JobState, Overwrite


def add_jobs(tmp: Path, *states: JobState) -> list[str]:
    """Jobs in the default journal, in these states (as a dead server leaves them)."""
    journal = Journal()
    session = make_session(tmp / "src")
    ids = journal.create_jobs(
        [
            NewJob("http://x.test", "u", "P", "S", f"E{i}", f"1.2.{i}", Destination.PROJECT,
                   Overwrite.NONE, session.series)
            for i in range(len(states))
        ]
    )  # fmt: skip
    for jid, st in zip(ids, states, strict=True):
        journal.set_state(jid, st, "1 series failed, not committed (server down)")
    journal.close()
    return ids


def test_list_shows_failed_jobs_with_the_retry_to_run(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    failed, verified = add_jobs(state, JobState.FAILED, JobState.VERIFIED)
    assert main(["transfers", "list"]) == 0
    out = capsys.readouterr().out
    assert "no transfers in progress" not in out
    assert failed in out and f"xnat-tui transfers retry {failed}" in out
    assert verified not in out  # finished and fine: --all shows it
    assert main(["transfers", "list", "--json"]) == 0
    [job] = json.loads(capsys.readouterr().out)
    assert job["id"] == failed and job["next"] == f"xnat-tui transfers retry {failed}"


def test_resume_names_failed_jobs_instead_of_nothing_to_resume(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    [failed] = add_jobs(state, JobState.FAILED)
    assert main(["transfers", "resume", "--yes"]) == 1
    err = capsys.readouterr().err
    assert f"1 failed: run xnat-tui transfers retry {failed}" in err
    assert main(["transfers", "resume", failed, "--yes"]) == 1
    assert f"run xnat-tui transfers retry {failed}" in capsys.readouterr().err
    assert main(["transfers", "resume", "--yes", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["failed"] == [failed] and data["ok"] is False


def test_resume_with_nothing_at_all_is_still_quiet(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    add_jobs(state, JobState.VERIFIED)
    assert main(["transfers", "resume", "--yes"]) == 0
    assert capsys.readouterr().err.strip() == "nothing to resume"


def test_job_ids_are_not_like_patterns(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    [jid] = add_jobs(state, JobState.FAILED)
    assert main(["transfers", "show", jid[:4]]) == 0
    assert jid in capsys.readouterr().out
    for pattern in ("%", jid[:3] + "_", "_" * 8):
        assert main(["transfers", "show", pattern]) == 1
        assert "no transfer job" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["-1", "nan", "1e-300", "inf", "0.01", "fast"])
def test_upload_refuses_a_bandwidth_that_cannot_be_meant(
    state: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["upload", str(state), "--project", "P", "--bandwidth", value])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "--bandwidth" in err and "0 (unlimited) or 0.1" in err


@pytest.mark.parametrize("value", ["0", "0.1", "250"])
def test_upload_accepts_a_sane_bandwidth(value: str) -> None:
    from xnat_tui.cli import build_parser

    args = build_parser().parse_args(["upload", ".", "--project", "P", "--bandwidth", value])
    assert args.bandwidth == float(value)
