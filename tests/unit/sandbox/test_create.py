"""Creating subjects, experiments and projects (xnat-api.md §4)."""

from __future__ import annotations

from tests.unit.sandbox.helpers import Api
from xnat_tui.sandbox.server import SandboxServer


async def test_put_subject_creates_then_is_idempotent(api: Api) -> None:
    created = await api.put("/data/projects/PILOT/subjects/PIL_123?group=patient", user="alice")
    assert created.status == 201
    assert created.text.startswith("XNAT_S") and created.content_type == "text/plain"
    again = await api.put("/data/projects/PILOT/subjects/PIL_123", user="alice")
    assert again.status == 200 and again.text == created.text
    listing = await api.get("/data/projects/PILOT/subjects?columns=label,group", user="bob")
    row = next(r for r in listing.rows if r["label"] == "PIL_123")
    assert row == {
        "ID": created.text,
        "label": "PIL_123",
        "group": "patient",
        "URI": f"/data/subjects/{created.text}",
    }
    by_id = await api.put(f"/data/projects/PILOT/subjects/{created.text}", user="alice")
    assert by_id.status == 200 and by_id.text == created.text


async def test_subject_permissions(api: Api) -> None:
    collaborator = await api.put("/data/projects/PILOT/subjects/NEW1", user="bob")
    assert collaborator.status == 403
    assert "insufficient create privileges for subjects in this project" in collaborator.text
    existing = await api.put("/data/projects/PILOT/subjects/PIL_900?group=x", user="bob")
    assert existing.status == 403
    assert "insufficient edit privileges" in existing.text
    invisible = await api.put("/data/projects/STUDY_B/subjects/NEW1", user="alice")
    assert invisible.status == 404
    member = await api.put("/data/projects/STUDY_A/subjects/SA_004", user="alice")
    assert member.status == 201  # allow-create-subject is a client setting, not enforced


async def test_subject_rename_conflict(api: Api) -> None:
    r = await api.put("/data/projects/STUDY_A/subjects/SA_001?label=SA_002", user="admin")
    assert r.status == 409
    assert "Specified label is already in use." in r.text
    ok = await api.put("/data/projects/STUDY_A/subjects/SA_001?label=SA_010", user="admin")
    assert ok.status == 200
    labels = [
        r["label"] for r in (await api.get("/data/projects/STUDY_A/subjects", user="admin")).rows
    ]
    assert "SA_010" in labels and "SA_001" not in labels


async def test_put_experiment(api: Api) -> None:
    path = "/data/projects/PILOT/subjects/PIL_200/experiments/PIL_200_MR1"
    no_type = await api.put(path, user="alice")
    assert no_type.status == 417 and "Need PUT Contents" in no_type.text
    created = await api.put(path + "?xsiType=xnat:mrSessionData&date=2024-01-31", user="alice")
    assert created.status == 201 and created.text.startswith("XNAT_E")
    again = await api.put(path, user="alice")
    assert again.status == 200 and again.text == created.text
    subjects = await api.get("/data/projects/PILOT/subjects?label=PIL_200", user="alice")
    assert len(subjects.rows) == 1  # the missing subject was created
    listing = await api.get(
        "/data/projects/PILOT/subjects/PIL_200/experiments?columns=label,date,xsiType",
        user="alice",
    )
    row = listing.rows[0]
    assert (row["label"], row["date"], row["xsiType"]) == (
        "PIL_200_MR1",
        "2024-01-31",
        "xnat:mrSessionData",
    )
    collaborator = await api.put(
        "/data/projects/PILOT/subjects/PIL_200/experiments/X?xsiType=xnat:mrSessionData",
        user="bob",
    )
    assert collaborator.status == 403
    clash = await api.put(path + "?label=PIL_900_MR1", user="alice")
    assert clash.status == 409


async def test_projects_creation(api: Api) -> None:
    bad = await api.put("/data/projects/BAD.ID", user="carol")
    assert bad.status == 417 and "Invalid character in project ID." in bad.text
    made = await api.put("/data/projects/CAROL_P?name=Carol%27s%20project", user="carol")
    assert made.status == 201
    mine = await api.get("/data/projects?permissions=delete", user="carol")
    assert mine.rows == [{"id": "CAROL_P", "secondary_id": "CAROL_P"}]
    item = await api.get("/data/projects/CAROL_P?format=json", user="carol")
    assert item.json()["items"][0]["data_fields"]["name"] == "Carol's project"
    posted = await api.post("/data/projects?ID=P2&secondary_ID=Second", user="carol")
    assert posted.status == 201
    dup = await api.post("/data/projects?ID=P2", user="admin")
    assert dup.status == 409 and "Project already exists." in dup.text
    xml = await api.post(
        "/data/projects",
        user="carol",
        data='<xnat:Project xmlns:xnat="http://nrg.wustl.edu/xnat" ID="P3"/>',
        headers={"Content-Type": "text/xml"},
    )
    assert xml.status == 201 and xml.text == "P3"
    assert (await api.put("/data/projects/PILOT?name=x", user="bob")).status == 403


async def test_delete_experiment_and_subject(sandbox: SandboxServer, api: Api) -> None:
    base = "/data/projects/PILOT/subjects/PIL_900/experiments/PIL_900_MR1"
    session_dir = sandbox.store.experiment_dir("PILOT", "PIL_900_MR1")
    assert session_dir.is_dir()
    assert (await api.delete(base, user="bob")).status == 403
    assert (await api.delete(base + "?removeFiles=true", user="alice")).status == 200
    assert not session_dir.exists()
    assert (await api.get(base, user="alice")).status == 404
    assert (await api.get("/data/projects/PILOT/experiments", user="alice")).rows == []
    assert (await api.delete(base, user="alice")).status == 404
    assert (await api.delete("/data/projects/STUDY_A/subjects/SA_001", user="alice")).status == 403
    assert (await api.delete("/data/projects/PILOT/subjects/PIL_900", user="alice")).status == 200
    assert (await api.get("/data/projects/PILOT/subjects", user="alice")).rows == []


async def test_put_by_accession_id_routes(api: Api) -> None:
    no_project = await api.put("/data/subjects/FREE1", user="alice")
    assert no_project.status == 422
    assert "Submitted subject record must include the project attribute." in no_project.text
    made = await api.put("/data/subjects/FREE1?project=PILOT", user="alice")
    assert made.status == 201
    same = await api.put(f"/data/subjects/{made.text}?group=g2", user="alice")
    assert same.status == 200 and same.text == made.text
    assert (await api.put(f"/data/subjects/{made.text}", user="carol")).status == 404

    no_subject = await api.put(
        "/data/experiments/E1?project=PILOT&xsiType=xnat:mrSessionData", user="alice"
    )
    assert no_subject.status == 422
    assert "Submitted experiment record must include the subject." in no_subject.text
    expt = await api.put(
        f"/data/experiments/E1?project=PILOT&subject_ID={made.text}&xsiType=xnat:ctSessionData",
        user="alice",
    )
    assert expt.status == 201
    update = await api.put(f"/data/experiments/{expt.text}?note=checked", user="alice")
    assert update.status == 200 and update.text == expt.text
    rows = (
        await api.get(
            "/data/projects/PILOT/experiments?label=E1&columns=note,subject_ID,xsiType",
            user="alice",
        )
    ).rows
    assert rows[0]["note"] == "checked" and rows[0]["subject_ID"] == made.text
    assert rows[0]["xsiType"] == "xnat:ctSessionData"
