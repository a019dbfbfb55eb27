"""The share/move/delete client calls against the sandbox (xnat-api-2.md §B)."""

from __future__ import annotations

import pytest

from xnat_tui.sandbox.server import SandboxServer
from xnat_tui.xnat import Credentials, PermissionDenied, XnatClient, share_ops


def _client(sandbox: SandboxServer, user: str) -> XnatClient:
    return XnatClient(Credentials(sandbox.url, user, user))


async def test_permissions_name_each_refusal(sandbox: SandboxServer) -> None:
    async with _client(sandbox, "alice") as alice:
        perms = await share_ops.permissions(alice)
    assert perms.read == {"PILOT", "STUDY_A"}
    assert perms.create == {"PILOT", "STUDY_A"}
    assert perms.delete == {"PILOT"}  # owner of PILOT, member of STUDY_A
    assert perms.refusal("PILOT", "STUDY_A", move=True, create_subjects=True) == ""
    member = perms.refusal("STUDY_A", "PILOT", move=True, create_subjects=False)
    assert "may not delete in project STUDY_A" in member and "owners" in member
    assert perms.refusal("STUDY_A", "PILOT", move=False, create_subjects=False) == ""
    assert "may not read project STUDY_B" in perms.refusal(
        "STUDY_B", "PILOT", move=False, create_subjects=False
    )
    async with _client(sandbox, "bob") as bob:
        collaborator = await share_ops.permissions(bob)
    assert "may not create sessions and subjects in project PILOT" in collaborator.refusal(
        "PILOT", "PILOT", move=False, create_subjects=True
    )


async def test_share_change_primary_and_delete(sandbox: SandboxServer) -> None:
    async with _client(sandbox, "alice") as alice:
        subject = await share_ops.share_subject(alice, "PILOT", "PIL_900", "STUDY_A", "PIL_900")
        assert subject.ok
        shared = await share_ops.share_experiment(
            alice, "PILOT", "PIL_900", "PIL_900_MR1", "STUDY_A", "PIL_900_MR1"
        )
        assert shared.ok
        again = await share_ops.share_experiment(
            alice, "PILOT", "PIL_900", "PIL_900_MR1", "STUDY_A", "PIL_900_MR1"
        )
        assert not again.ok and "Already assigned to project:STUDY_A" in again.conflict
        assert not await share_ops.label_free(alice, "STUDY_A", "PIL_900_MR1")
        with pytest.raises(PermissionDenied):
            await share_ops.delete_experiment(alice, "STUDY_A", "SA_002", "SA_002_MR1")
        with pytest.raises(PermissionDenied):
            await share_ops.change_primary(
                alice, "STUDY_A", "SA_002", "SA_002_MR1", "PILOT", "SA_002_MR1"
            )
        await share_ops.change_primary(alice, "PILOT", "PIL_900", "PIL_900_MR1", "STUDY_A", "MOVED")
        moved = await alice.find_experiment("STUDY_A", "MOVED")
        assert moved is not None
        assert await alice.find_experiment("PILOT", "PIL_900_MR1") is None
        assert await share_ops.delete_subject(alice, "PILOT", "PIL_900", remove_files=True)
        assert not await share_ops.delete_subject(alice, "PILOT", "PIL_900")  # already gone
