"""``xnat-tui prearchive`` against a running sandbox: output, server state, exit codes."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from xnat_tui.cli import main


@pytest.fixture
def as_user(sandbox_thread: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    def run(user: str, *argv: str, stdin: str = "") -> int:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        monkeypatch.setenv("XNAT_PASS", user)
        return main(["prearchive", *argv, "--server", sandbox_thread.url, "--user", user])

    return run


def rows(as_user: Any, capsys: pytest.CaptureFixture[str], *extra: str) -> list[dict[str, str]]:
    capsys.readouterr()
    assert as_user("admin", "list", "--json", *extra) == 0
    data: list[dict[str, str]] = json.loads(capsys.readouterr().out)
    return data


def url_of(found: list[dict[str, str]], name: str) -> str:
    return next(r["url"] for r in found if r["name"] == name)


def test_list_json_carries_xnat_columns_and_filters(
    as_user: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    found = rows(as_user, capsys)
    assert len(found) == 5
    first = found[0]
    for column in ("project", "timestamp", "name", "subject", "tag", "status", "url"):
        assert column in first
    assert list(first)[:3] == ["project", "timestamp", "lastmod"]
    assert [r["name"] for r in rows(as_user, capsys, "--status", "CONFLICT")] == ["PIL_900_MR1"]
    assert {r["project"] for r in rows(as_user, capsys, "--project", "PILOT")} == {"PILOT"}
    assert as_user("alice", "list") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == [
        "project",
        "timestamp",
        "subject",
        "name",
        "status",
        "scan_date",
        "tag",
        "url",
    ]
    assert "PIL_900_MR1" in out and "ANON_7731" not in out  # Unassigned is admin-only


def test_relabel_archive_resolves_the_conflict(
    as_user: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    url = url_of(rows(as_user, capsys), "PIL_900_MR1")
    assert as_user("alice", "archive", url, "--yes") == 1
    err = capsys.readouterr().err
    assert "not archived" in err and "another StudyInstanceUID" in err
    assert as_user("alice", "archive", url, "--label", "PIL_900_MR2", "--yes", "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result[0]["ok"] is True
    assert result[0]["new_url"].endswith("/subjects/PIL_900/experiments/PIL_900_MR2")
    assert "PIL_900_MR1" not in {r["name"] for r in rows(as_user, capsys)}


def test_route_move_rebuild_delete(as_user: Any, capsys: pytest.CaptureFixture[str]) -> None:
    found = rows(as_user, capsys)
    anon = url_of(found, "ANON_7731")
    code = as_user("admin", "archive", anon, "--project", "PILOT", "--subject", "P_77", "--yes")
    assert code == 0, capsys.readouterr().err
    assert "archived to /data/archive/projects/PILOT/subjects/P_77/" in capsys.readouterr().out
    pil = url_of(found, "PIL_001_MR1")
    assert as_user("alice", "move", pil, "--project", "STUDY_A", "--yes") == 0
    moved = rows(as_user, capsys)
    assert next(r for r in moved if r["name"] == "PIL_001_MR1")["project"] == "STUDY_A"
    err_url = url_of(moved, "SA_004_MR1")
    assert as_user("alice", "rebuild", err_url) == 0
    assert next(r for r in rows(as_user, capsys) if r["name"] == "SA_004_MR1")["status"] == "READY"
    assert as_user("alice", "delete", err_url, "--yes") == 0
    assert "SA_004_MR1" not in {r["name"] for r in rows(as_user, capsys)}


def test_collaborator_archive_fails_with_a_clear_message(
    as_user: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    url = url_of(rows(as_user, capsys), "PIL_001_MR1")
    assert as_user("bob", "archive", url, "--yes") == 1
    err = capsys.readouterr().err
    assert "FAILED" in err and "bob lacks edit access to project PILOT" in err
    assert "PIL_001_MR1" in {r["name"] for r in rows(as_user, capsys)}


def test_usage_errors_exit_2(as_user: Any, capsys: pytest.CaptureFixture[str]) -> None:
    found = rows(as_user, capsys)
    a, b = url_of(found, "PIL_001_MR1"), url_of(found, "PIL_900_MR1")
    assert as_user("alice", "archive", a, b, "--label", "X", "--yes") == 2
    assert "single URL" in capsys.readouterr().err
    assert as_user("alice", "archive", a, "--label", "bad label", "--yes") == 2
    assert "space" in capsys.readouterr().err
    assert as_user("alice", "delete", "PIL_001_MR1", "--yes") == 2
    assert "not a prearchive url" in capsys.readouterr().err
    # Not a terminal and no --yes: nothing is deleted.
    assert as_user("alice", "delete", a) == 2
    assert "without --yes" in capsys.readouterr().err
    assert "PIL_001_MR1" in {r["name"] for r in rows(as_user, capsys)}


def test_connection_flags_before_the_subcommand_are_kept(
    sandbox_thread: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XNAT_PASS", "alice")
    code = main(["--server", sandbox_thread.url, "--user", "alice", "prearchive", "list", "--json"])
    assert code == 0
    assert {r["project"] for r in json.loads(capsys.readouterr().out)} == {"PILOT", "STUDY_A"}


def test_wrong_password_is_one_clear_error(
    sandbox_thread: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XNAT_PASS", "not-alice")
    url = "/prearchive/projects/PILOT/20260101_000000000/X"
    code = main(
        ["prearchive", "delete", url, "--yes", "--server", sandbox_thread.url, "--user", "alice"]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "alice" in err and "FAILED" not in err
