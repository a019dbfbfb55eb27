"""Triage actions against the sandbox's seeded prearchive: server state changes as XNAT's would."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from xnat_tui.workflow import prearchive as triage
from xnat_tui.workflow.prearchive import (
    Action,
    ActionRequest,
    ArchiveTarget,
    Outcome,
    PrearchiveRow,
)
from xnat_tui.xnat.client import XnatClient
from xnat_tui.xnat.credentials import Credentials
from xnat_tui.xnat.prearchive_ops import ClientTriageOps


@asynccontextmanager
async def triage_ops(sandbox: Any, user: str) -> AsyncIterator[ClientTriageOps]:
    async with XnatClient(Credentials(sandbox.url, user, user)) as client:
        yield ClientTriageOps(client)


async def listed(ops: ClientTriageOps) -> dict[str, PrearchiveRow]:
    return {r.label: r for r in triage.parse_rows(await ops.list_prearchive())}


async def test_seeded_prearchive_is_listed_per_permission(sandbox: Any) -> None:
    async with triage_ops(sandbox, "admin") as ops:
        rows = await listed(ops)
        assert {r.label: (r.project, r.status) for r in rows.values()} == {
            "PIL_001_MR1": ("PILOT", "READY"),
            "PIL_900_MR1": ("PILOT", "CONFLICT"),
            "SA_004_MR1": ("STUDY_A", "ERROR"),
            "SB_002_CT1": ("STUDY_B", "READY"),
            "ANON_7731": ("Unassigned", "READY"),
        }
        assert rows["ANON_7731"].unassigned
    async with triage_ops(sandbox, "alice") as ops:
        # Projects alice can edit only; Unassigned is for admins.
        assert set(await listed(ops)) == {"PIL_001_MR1", "PIL_900_MR1", "SA_004_MR1"}


async def test_archive_moves_the_session_into_the_archive(sandbox: Any) -> None:
    async with triage_ops(sandbox, "alice") as ops:
        row = (await listed(ops))["PIL_001_MR1"]
        detail = await triage.load_detail(ops, row)
        assert [s.id for s in detail.scans] == ["1", "2"] and detail.total_files == 5
        assert detail.preview is not None and detail.preview.outcome is Outcome.NEW
        req = ActionRequest(row, Action.ARCHIVE, triage.default_target(row))
        result = await triage.perform(ops, req)
        assert result.ok, result.message
        expected = "/archive/projects/PILOT/subjects/PIL_001/experiments/PIL_001_MR1"
        assert result.new_url.endswith(expected)
        assert "PIL_001_MR1" not in await listed(ops)
        archived = {e.label: e for e in await ops.existing_sessions("PILOT")}
        assert archived["PIL_001_MR1"].study_uid == row.study_uid
        assert archived["PIL_001_MR1"].subject_label == "PIL_001"


async def test_uid_conflict_is_refused_then_resolved_by_relabel(sandbox: Any) -> None:
    async with triage_ops(sandbox, "alice") as ops:
        row = (await listed(ops))["PIL_900_MR1"]
        assert "Invalid modification of session UID" in await ops.last_log(row.url)
        as_is = triage.default_target(row)
        assert (await triage.preview_for(ops, row, as_is)).outcome is Outcome.CONFLICT
        # Forcing it through anyway: the server refuses and the row stays in the prearchive.
        refused = await triage.perform(ops, ActionRequest(row, Action.ARCHIVE, as_is))
        assert not refused.ok and "409" not in refused.message and refused.message
        assert (await listed(ops))["PIL_900_MR1"].status == "CONFLICT"
        relabelled = ArchiveTarget("PILOT", row.subject, "PIL_900_MR2")
        assert (await triage.preview_for(ops, row, relabelled)).outcome is Outcome.NEW
        result = await triage.perform(ops, ActionRequest(row, Action.ARCHIVE, relabelled))
        assert result.ok, result.message
        archived = {e.label: e for e in await ops.existing_sessions("PILOT")}
        assert archived["PIL_900_MR2"].study_uid == row.study_uid
        assert archived["PIL_900_MR1"].study_uid != row.study_uid  # untouched
        assert "PIL_900_MR1" not in await listed(ops)


async def test_move_rebuild_and_delete(sandbox: Any) -> None:
    async with triage_ops(sandbox, "alice") as ops:
        rows = await listed(ops)
        moved = await triage.perform(
            ops, ActionRequest(rows["PIL_001_MR1"], Action.MOVE, project="STUDY_A")
        )
        assert moved.ok, moved.message
        assert moved.new_url.startswith("/prearchive/projects/STUDY_A/")
        after = await listed(ops)
        assert after["PIL_001_MR1"].project == "STUDY_A"
        assert after["PIL_001_MR1"].url == moved.new_url

        rebuilt = await triage.perform(ops, ActionRequest(after["SA_004_MR1"], Action.REBUILD))
        assert rebuilt.ok, rebuilt.message
        assert (await listed(ops))["SA_004_MR1"].status == "READY"

        results = await triage.perform_many(
            ops,
            [
                ActionRequest(after["SA_004_MR1"], Action.DELETE),
                ActionRequest(after["PIL_900_MR1"], Action.DELETE),
            ],
        )
        assert [r.ok for r in results] == [True, True]
        assert set(await listed(ops)) == {"PIL_001_MR1"}
        again = await triage.perform(ops, ActionRequest(after["SA_004_MR1"], Action.DELETE))
        assert not again.ok and "no longer exists" in again.message


async def test_route_unassigned_then_archive(sandbox: Any) -> None:
    async with triage_ops(sandbox, "admin") as ops:
        row = (await listed(ops))["ANON_7731"]
        target = ArchiveTarget("STUDY_B", "SB_010", "SB_010_MR1")
        assert (await triage.preview_for(ops, row, target)).reason.startswith("moves to STUDY_B")
        result = await triage.perform(ops, ActionRequest(row, Action.ARCHIVE, target))
        assert result.ok, result.message
        assert result.steps == ("move", "archive")
        assert "ANON_7731" not in await listed(ops)
        archived = {e.label: e for e in await ops.existing_sessions("STUDY_B")}
        assert archived["SB_010_MR1"].subject_label == "SB_010"


async def test_collaborator_cannot_archive_and_is_told_why(sandbox: Any) -> None:
    async with triage_ops(sandbox, "admin") as admin:
        row = (await listed(admin))["PIL_001_MR1"]
    async with triage_ops(sandbox, "bob") as bob:
        assert await listed(bob) == {}  # bob edits nothing: an empty prearchive for him
        result = await triage.perform(
            bob, ActionRequest(row, Action.ARCHIVE, triage.default_target(row))
        )
        assert not result.ok
        assert "bob" in result.message and "PILOT" in result.message
        assert "edit access" in result.message
    async with triage_ops(sandbox, "alice") as alice:
        assert (await listed(alice))["PIL_001_MR1"].status == "READY"  # nothing changed
        denied = await triage.perform(alice, ActionRequest(row, Action.MOVE, project="STUDY_B"))
        assert not denied.ok and "STUDY_B" in denied.message
