"""Sharing, change of primary project and DELETE with removeFiles (xnat-api-2.md §B).

Demo roles: alice owns PILOT and is a member of STUDY_A; bob collaborates on PILOT;
carol has no project. PILOT holds PIL_900/PIL_900_MR1, STUDY_A holds SA_002/SA_002_MR1.
"""

from __future__ import annotations

import xnat

from tests.unit.sandbox.helpers import Api
from xnat_tui.sandbox.server import SandboxServer, SandboxThread

PIL = "/data/projects/PILOT/subjects/PIL_900/experiments/PIL_900_MR1"


async def _labels(api: Api, project: str, user: str = "admin") -> dict[str, str]:
    rows = (await api.get(f"/data/projects/{project}/experiments?format=json", user=user)).rows
    return {r["label"]: r["project"] for r in rows}


async def test_share_subject_then_session_shows_the_label_in_dest(api: Api) -> None:
    subject = await api.put(
        "/data/projects/PILOT/subjects/PIL_900/projects/STUDY_A?label=PIL_900", user="alice"
    )
    assert subject.status == 200
    shared = await api.put(PIL + "/projects/STUDY_A?label=PIL_900_MR1", user="alice")
    assert shared.status == 200
    assert await _labels(api, "STUDY_A") == {"SA_002_MR1": "STUDY_A", "PIL_900_MR1": "STUDY_A"}
    subjects = (await api.get("/data/projects/STUDY_A/subjects", user="alice")).rows
    assert "PIL_900" in {r["label"] for r in subjects}
    # Nothing was copied: the same accession ID answers through both projects.
    via_dest = await api.get(
        "/data/projects/STUDY_A/subjects/PIL_900/experiments/PIL_900_MR1?format=json",
        user="alice",
    )
    via_src = await api.get(PIL + "?format=json", user="alice")
    assert via_dest.status == 200
    dest_id = via_dest.json()["items"][0]["data_fields"]["ID"]
    assert dest_id == via_src.json()["items"][0]["data_fields"]["ID"]
    projects = (await api.get(PIL + "/projects?format=json", user="alice")).rows
    assert [r["ID"] for r in projects] == ["PILOT", "STUDY_A"]  # the primary first
    # A repeat is a conflict; the primary project is not a share target.
    again = await api.put(PIL + "/projects/STUDY_A?label=PIL_900_MR1", user="alice")
    assert again.status == 409 and "Already assigned to project:STUDY_A" in again.text
    primary = await api.put(PIL + "/projects/PILOT", user="alice")
    assert primary.status == 409 and "Already assigned to project:PILOT" in primary.text


async def test_share_without_label_shows_the_accession_id(api: Api) -> None:
    r = await api.put(PIL + "/projects/STUDY_A", user="admin")
    assert r.status == 200
    labels = await _labels(api, "STUDY_A")
    assert any(label.startswith("XNAT_E") for label in labels)


async def test_share_refusals(api: Api) -> None:
    unknown = await api.put(PIL + "/projects/NOPE?label=X", user="alice")
    assert unknown.status == 404 and "Unable to identify project: NOPE" in unknown.text
    clash = await api.put(PIL + "/projects/STUDY_A?label=SA_002_MR1", user="alice")
    assert clash.status == 409 and "Label already in use:SA_002_MR1" in clash.text
    # bob reads PILOT but has no role in STUDY_A: no create rights there.
    bob = await api.put(PIL + "/projects/STUDY_A?label=X", user="bob")
    assert bob.status == 403
    assert "insufficient create privileges for experiments in the STUDY_A project" in bob.text
    carol = await api.put(PIL + "/projects/STUDY_A?label=X", user="carol")
    assert carol.status == 404  # cannot see the experiment at all
    assert await _labels(api, "STUDY_A") == {"SA_002_MR1": "STUDY_A"}


async def test_change_primary_moves_files_and_needs_delete_rights(
    api: Api, sandbox: SandboxServer
) -> None:
    store = sandbox.store
    before = store.find_experiment("PILOT", "PIL_900_MR1")
    assert before is not None
    old_dir = store.experiment_dir("PILOT", "PIL_900_MR1")
    assert old_dir.is_dir()
    files = (await api.get(PIL + "/scans/ALL/files?format=json", user="alice")).rows
    # A member of the source may not move (no delete rights): SA_002_MR1 stays.
    member = await api.put(
        "/data/projects/STUDY_A/subjects/SA_002/experiments/SA_002_MR1/projects/PILOT?primary=true",
        user="alice",
    )
    assert member.status == 403 and "insufficient privileges" in member.text
    # A label that DEST already uses: checked before anything moves.
    clash = await api.put(PIL + "/projects/STUDY_A?primary=true&label=SA_002_MR1", user="alice")
    assert clash.status == 409 and "Specified label is already in use." in clash.text
    assert old_dir.is_dir()
    # The subject first, as XNAT's own UI and tests do (a session move leaves it behind).
    subject = await api.put(
        "/data/projects/PILOT/subjects/PIL_900/projects/STUDY_A?label=PIL_900", user="alice"
    )
    assert subject.status == 200
    moved = await api.put(PIL + "/projects/STUDY_A?primary=true&label=MOVED_MR1", user="alice")
    assert moved.status == 200
    after = store.get_experiment(before["id"])
    assert after is not None and (after["project"], after["label"]) == ("STUDY_A", "MOVED_MR1")
    assert not old_dir.exists()
    assert store.experiment_dir("STUDY_A", "MOVED_MR1").is_dir()
    assert "PIL_900_MR1" not in await _labels(api, "PILOT")
    # Every file is still served, byte for byte, from its new place.
    new_base = "/data/projects/STUDY_A/experiments/MOVED_MR1"
    listed = (await api.get(new_base + "/scans/ALL/files?format=json", user="alice")).rows
    assert sorted(r["digest"] for r in listed) == sorted(r["digest"] for r in files)
    one = listed[0]
    got = await api.get(one["URI"], user="alice")
    assert got.status == 200 and len(got.body) == int(one["Size"])


async def test_delete_through_share_only_unshares(api: Api, sandbox: SandboxServer) -> None:
    assert (await api.put(PIL + "/projects/STUDY_A?label=SH_MR1", user="admin")).status == 200
    gone = await api.delete(
        "/data/projects/STUDY_A/experiments/SH_MR1?removeFiles=true", user="admin"
    )
    assert gone.status == 200
    assert "SH_MR1" not in await _labels(api, "STUDY_A")
    assert "PIL_900_MR1" in await _labels(api, "PILOT")
    assert sandbox.store.experiment_dir("PILOT", "PIL_900_MR1").is_dir()


async def test_delete_with_remove_files_follows_roles(api: Api, sandbox: SandboxServer) -> None:
    store = sandbox.store
    member = await api.delete(
        "/data/projects/STUDY_A/subjects/SA_002/experiments/SA_002_MR1", user="alice"
    )
    assert member.status == 403
    assert "User account doesn't have permission to delete this experiment." in member.text
    collaborator = await api.delete(PIL, user="bob")
    assert collaborator.status == 403
    outsider = await api.delete(PIL, user="carol")
    assert outsider.status == 404 and "Unable to find the specified experiment." in outsider.text
    shared = await api.put(PIL + "/projects/STUDY_A?label=SH_MR1", user="admin")
    assert shared.status == 200
    folder = store.experiment_dir("PILOT", "PIL_900_MR1")
    owner = await api.delete(PIL + "?removeFiles=true&event_reason=copy", user="alice")
    assert owner.status == 200 and owner.body == b""
    assert not folder.exists()
    assert "PIL_900_MR1" not in await _labels(api, "PILOT")
    assert "SH_MR1" not in await _labels(api, "STUDY_A")  # its shares go with it


async def test_delete_without_remove_files_keeps_the_files(
    api: Api, sandbox: SandboxServer
) -> None:
    folder = sandbox.store.experiment_dir("PILOT", "PIL_900_MR1")
    assert (await api.delete(PIL, user="alice")).status == 200
    assert folder.is_dir()  # XNAT drops the rows and leaves the files in the archive
    subject = await api.delete("/data/projects/PILOT/subjects/PIL_900", user="alice")
    assert subject.status == 200
    rows = (await api.get("/data/projects/PILOT/subjects", user="alice")).rows
    assert "PIL_900" not in {r["label"] for r in rows}


async def test_subject_change_primary_and_unshare(api: Api) -> None:
    shared = await api.put(
        "/data/projects/PILOT/subjects/PIL_900/projects/STUDY_A?label=P900", user="alice"
    )
    assert shared.status == 200
    relabel = await api.put(
        "/data/projects/PILOT/subjects/PIL_900/projects/STUDY_A?label=P901", user="alice"
    )
    assert relabel.status == 200  # the subject variant answers 200 on a new label
    unshared = await api.delete("/data/projects/STUDY_A/subjects/P901", user="admin")
    assert unshared.status == 200
    pilot = (await api.get("/data/projects/PILOT/subjects", user="alice")).rows
    assert "PIL_900" in {r["label"] for r in pilot}
    member = await api.put(
        "/data/projects/STUDY_A/subjects/SA_001/projects/PILOT?primary=true", user="alice"
    )
    assert member.status == 403
    owner = await api.put(
        "/data/projects/PILOT/subjects/PIL_900/projects/STUDY_A?primary=true", user="alice"
    )
    assert owner.status == 200
    study = (await api.get("/data/projects/STUDY_A/subjects", user="admin")).rows
    assert "PIL_900" in {r["label"] for r in study}


def test_xnatpy_share_and_delete(sandbox_thread: SandboxThread) -> None:
    """A third-party client's share (PUT .../projects/DEST?label=) and delete(removeFiles)."""
    with xnat.connect(
        sandbox_thread.url, user="alice", password="alice", no_parse_model=True
    ) as session:
        session.put(
            "/data/projects/PILOT/subjects/PIL_900/projects/STUDY_A",
            query={"label": "PIL_900"},
            accepted_status=[200],
        )
        session.put(PIL + "/projects/STUDY_A", query={"label": "PY_MR1"}, accepted_status=[200])
        rows = session.get_json("/data/projects/STUDY_A/experiments")["ResultSet"]["Result"]
        assert "PY_MR1" in {r["label"] for r in rows}
        refused = session.delete(
            "/data/projects/STUDY_A/subjects/SA_002/experiments/SA_002_MR1",
            accepted_status=[403],
        )
        assert "permission to delete" in refused.text
        session.delete(PIL, query={"removeFiles": "true"}, accepted_status=[200])
        rows = session.get_json("/data/projects/STUDY_A/experiments")["ResultSet"]["Result"]
        assert {r["label"] for r in rows} == {"SA_002_MR1"}
