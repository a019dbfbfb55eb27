"""The action runner: per-session results, routing before archive, bounded concurrency."""

from __future__ import annotations

import asyncio

from xnat_tui.workflow.prearchive import (
    Action,
    ActionRequest,
    ArchiveTarget,
    Outcome,
    PrearchiveRow,
    perform,
    perform_many,
    preview_many,
)
from xnat_tui.xnat.models import ExistingSession


class FakeOps:
    def __init__(self, fail: dict[str, str] | None = None) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.fail = fail or {}
        self.running = 0
        self.peak = 0

    async def _step(self, *call: str) -> None:
        self.calls.append(call)
        self.running += 1
        self.peak = max(self.peak, self.running)
        await asyncio.sleep(0.01)
        self.running -= 1
        if call[1] in self.fail:
            raise RuntimeError(self.fail[call[1]])

    async def list_prearchive(self, project: str | None = None) -> list[dict[str, str]]:
        return []

    async def move(self, url: str, project: str) -> str:
        await self._step("move", url, project)
        return url.replace(url.split("/")[3], project)

    async def rebuild(self, url: str) -> None:
        await self._step("rebuild", url)

    async def delete(self, url: str) -> None:
        await self._step("delete", url)

    async def archive(self, url: str, *, subject: str, label: str, overwrite: str) -> str:
        await self._step("archive", url, subject, label, overwrite)
        project = url.split("/")[3]
        return f"/data/archive/projects/{project}/subjects/{subject}/experiments/{label}"


def row(project: str, folder: str = "S1") -> PrearchiveRow:
    url = f"/prearchive/projects/{project}/20260101_000000000/{folder}"
    return PrearchiveRow.from_mapping(
        {"project": project, "name": folder, "subject": "SUB", "status": "READY", "url": url}
    )


async def test_unassigned_archive_moves_first_then_archives_the_new_url() -> None:
    ops = FakeOps()
    req = ActionRequest(row("Unassigned"), Action.ARCHIVE, ArchiveTarget("PILOT", "S9", "L9"))
    result = await perform(ops, req)
    assert result.ok, result.message
    assert ops.calls == [
        ("move", "/prearchive/projects/Unassigned/20260101_000000000/S1", "PILOT"),
        ("archive", "/prearchive/projects/PILOT/20260101_000000000/S1", "S9", "L9", "none"),
    ]
    assert result.new_url.endswith("/PILOT/subjects/S9/experiments/L9")
    assert result.steps == ("move", "archive")


async def test_failure_carries_the_server_message_and_the_steps_done() -> None:
    url = "/prearchive/projects/PILOT/20260101_000000000/S1"
    ops = FakeOps(fail={url: "Invalid permissions for new project."})
    req = ActionRequest(row("Unassigned"), Action.ARCHIVE, ArchiveTarget("PILOT", "S", "L"))
    result = await perform(ops, req)
    assert not result.ok
    assert result.message == "Invalid permissions for new project. (after move)"


async def test_many_report_each_session_and_respect_the_bound() -> None:
    ops = FakeOps(fail={"/prearchive/projects/P/20260101_000000000/B": "403 nope"})
    reqs = [ActionRequest(row("P", f), Action.DELETE) for f in "ABCDE"]
    seen: list[str] = []
    results = await perform_many(
        ops, reqs, concurrency=2, on_result=lambda r: seen.append(r.request.row.label)
    )
    assert [r.ok for r in results] == [True, False, True, True, True]
    assert results[1].message == "403 nope"
    assert sorted(seen) == list("ABCDE")
    assert ops.peak == 2


async def test_move_to_same_project_is_refused_without_a_call() -> None:
    ops = FakeOps()
    result = await perform(ops, ActionRequest(row("P"), Action.MOVE, project="P"))
    assert not result.ok and ops.calls == []


class CountingOps(FakeOps):
    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    async def existing_sessions(self, project: str) -> list[ExistingSession]:
        self.asked.append(project)
        if project == "SECRET":
            raise RuntimeError("403 no access")
        return [ExistingSession("TAKEN", "9.9", "SUB", project)]

    async def subjects(self, project: str) -> list[str]:
        return ["SUB"]


async def test_preview_many_asks_once_per_project_and_survives_a_refusal() -> None:
    ops = CountingOps()
    items = [
        (row("P", "A"), ArchiveTarget("P", "SUB", "A")),
        (row("P", "B"), ArchiveTarget("P", "SUB", "TAKEN")),
        (row("Unassigned", "C"), ArchiveTarget("", "SUB", "C")),
        (row("P", "D"), ArchiveTarget("SECRET", "SUB", "D")),
    ]
    previews = await preview_many(ops, items)  # type: ignore[arg-type]
    assert sorted(ops.asked) == ["P", "SECRET"]
    assert [p.outcome for p in previews] == [
        Outcome.NEW,
        Outcome.MERGE,  # same label, no UID known on this row: XNAT merges
        Outcome.BLOCKED,
        Outcome.UNKNOWN,
    ]
    assert "403 no access" in previews[3].reason
