"""Prearchive listing, session resources, actions and batch services (xnat-api.md §6)."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from tests.unit.sandbox_import.conftest import Client
from tests.unit.sandbox_import.helpers import series_files, stream_zip_bytes
from xnat_tui.sandbox import autobuild
from xnat_tui.sandbox.prearchive_store import COLUMNS, prearchive_of
from xnat_tui.sandbox.server import SandboxServer


def uri_of(sandbox: SandboxServer, name: str) -> str:
    for s in prearchive_of(sandbox.store).sessions():
        if s.name == name:
            return "/data" + s.url
    raise AssertionError(f"no prearchive session {name}")


def status_of(sandbox: SandboxServer, name: str) -> str | None:
    for s in prearchive_of(sandbox.store).sessions():
        if s.name == name:
            return s.status
    return None


async def test_listing_columns_and_visibility(client: Client) -> None:
    doc = await client.json("/data/prearchive/projects")
    assert set(doc) == {"ResultSet"}
    assert list(doc["ResultSet"]) == ["Result"]  # no totalRecords
    rows = doc["ResultSet"]["Result"]
    assert all(list(r) == COLUMNS for r in rows)
    assert all(isinstance(v, str) for r in rows for v in r.values())
    # alice edits PILOT (owner) and STUDY_A (member); not STUDY_B, not Unassigned.
    assert sorted({r["project"] for r in rows}) == ["PILOT", "STUDY_A"]
    by_name = {r["name"]: r for r in rows}
    assert by_name["PIL_900_MR1"]["status"] == "CONFLICT"
    assert by_name["SA_004_MR1"]["status"] == "ERROR"
    ready = by_name["PIL_001_MR1"]
    assert ready["url"] == f"/prearchive/projects/PILOT/{ready['timestamp']}/PIL_001_MR1"
    assert ready["prevent_anon"] == "false" and ready["autoarchive"] == "Manual"
    admin = await client.json("/data/prearchive", user="admin")
    assert "Unassigned" in {r["project"] for r in admin["ResultSet"]["Result"]}
    carol = await client.json("/data/prearchive/projects", user="carol")
    assert carol["ResultSet"]["Result"] == []


async def test_listing_by_project_list_tag_and_formats(
    client: Client, sandbox: SandboxServer
) -> None:
    doc = await client.json("/data/prearchive/projects/PILOT,STUDY_A")
    assert {r["project"] for r in doc["ResultSet"]["Result"]} == {"PILOT", "STUDY_A"}
    status, text, _ = await client.request("GET", "/data/prearchive/projects/PILOT", user="bob")
    assert status == 403
    assert "The current user does not have access to the requested project: PILOT" in text
    status, text, _ = await client.request("GET", "/data/prearchive/projects/Unassigned")
    assert status == 403
    tag = prearchive_of(sandbox.store).sessions()[0].tag
    status, _, _ = await client.request("GET", "/data/prearchive/projects", params={"tag": tag})
    assert status == 403
    doc = await client.json("/data/prearchive/projects", user="admin", params={"tag": tag})
    assert [r["tag"] for r in doc["ResultSet"]["Result"]] == [tag]
    status, text, _ = await client.request(
        "GET", "/data/prearchive/projects/PILOT", params={"format": "csv"}
    )
    assert status == 200 and text.splitlines()[0].split(",") == COLUMNS
    status, text, _ = await client.request(
        "GET", "/data/prearchive/projects/PILOT", params={"format": "xml"}
    )
    assert status == 200 and text.startswith("<ResultSet") and "<column>folderName</column>" in text


async def test_session_detail_scans_resources_files_logs(
    client: Client, sandbox: SandboxServer
) -> None:
    uri = uri_of(sandbox, "PIL_001_MR1")
    one = await client.json(uri, params={"format": "json"})
    assert [r["name"] for r in one["ResultSet"]["Result"]] == ["PIL_001_MR1"]
    status, xml, headers = await client.request("GET", uri)
    assert status == 200 and headers["Content-Type"].startswith("text/xml")
    assert "<xnat:MRSession" in xml and 'label="PIL_001_MR1"' in xml
    scans = (await client.json(uri + "/scans"))["ResultSet"]["Result"]
    assert scans == [
        {"ID": "1", "xsiType": "xnat:mrScanData", "series_description": "localizer"},
        {"ID": "2", "xsiType": "xnat:mrScanData", "series_description": "T1_MPRAGE_sag"},
    ]
    res = (await client.json(uri + "/scans/2/resources"))["ResultSet"]["Result"]
    assert res[0]["label"] == "DICOM" and res[0]["file_count"] == "3"
    files = (await client.json(uri + "/scans/2/resources/DICOM/files"))["ResultSet"]["Result"]
    assert [f["Name"] for f in files] == ["IM0001.dcm", "IM0002.dcm", "IM0003.dcm"]
    async with client._session("alice").get(client.base + files[0]["URI"]) as resp:
        body = await resp.read()
    assert resp.status == 200 and body[128:132] == b"DICM"
    assert len(body) == int(files[0]["Size"])
    conflict = uri_of(sandbox, "PIL_900_MR1")
    logs = (await client.json(conflict + "/logs"))["ResultSet"]["Result"]
    assert list(logs[0]) == ["id", "date", "entry"]
    status, last, _ = await client.request("GET", conflict + "/logs/last")
    assert last == "Invalid modification of session UID via archive process."


async def test_zip_download_contains_the_files(client: Client, sandbox: SandboxServer) -> None:
    uri = uri_of(sandbox, "PIL_001_MR1")
    session = client._session("alice")
    async with session.get(client.base + uri, params={"format": "zip"}) as resp:
        data = await resp.read()
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert "PIL_001_MR1/SCANS/2/DICOM/IM0003.dcm" in names and len(names) == 5


async def test_unbuilt_session_has_no_document(client: Client) -> None:
    status, uri = await client.upload(stream_zip_bytes(series_files(1)), PROJECT_ID="PILOT")
    status, text, _ = await client.request("GET", uri.strip())
    assert status == 404 and "XNAT session document is not available" in text


async def test_missing_action_build_and_status_actions(
    client: Client, sandbox: SandboxServer
) -> None:
    _, uri = await client.upload(stream_zip_bytes(series_files(1)), PROJECT_ID="PILOT")
    uri = uri.strip()
    status, text, _ = await client.request("POST", uri)
    assert status == 400
    assert "No action parameter was specified for the request by user alice" in text
    status, text, headers = await client.request("POST", uri, params={"action": "build"})
    assert (status, text) == (200, uri) and headers["Content-Type"].startswith("text/uri-list")
    assert status_of(sandbox, "SUBJ01") == "READY"
    await client.request("POST", uri, params={"action": "set-status", "status": "ERROR"})
    assert status_of(sandbox, "SUBJ01") == "ERROR"
    status, _, _ = await client.request(
        "POST", uri, params={"action": "set-status", "status": "NOPE"}
    )
    assert status == 400
    await client.request("POST", uri, params={"action": "reset-status"})
    assert status_of(sandbox, "SUBJ01") == "READY"
    status, text, _ = await client.request("POST", uri, data={"action": "bogus"})
    assert status == 400


async def test_commit_stays_in_prearchive_for_manual_project(
    client: Client, sandbox: SandboxServer
) -> None:
    uri = uri_of(sandbox, "PIL_001_MR1")
    status, text, _ = await client.request(
        "POST", uri, params={"action": "commit", "SOURCE": "uploader"}, json={}
    )
    assert (status, text) == (200, uri)
    assert status_of(sandbox, "PIL_001_MR1") == "READY"


async def test_commit_with_aa_archives_with_301(client: Client, sandbox: SandboxServer) -> None:
    uri = uri_of(sandbox, "PIL_001_MR1")
    status, text, _ = await client.request("POST", uri, params={"action": "commit", "AA": "true"})
    assert status == 301
    assert text == "/data/archive/projects/PILOT/subjects/PIL_001/experiments/PIL_001_MR1"
    assert status_of(sandbox, "PIL_001_MR1") is None
    expt = sandbox.store.find_experiment("PILOT", "PIL_001_MR1")
    assert expt is not None and len(sandbox.store.list_scans(str(expt["id"]))) == 2
    listing = await client.json(
        "/data/archive/projects/PILOT/subjects/PIL_001/experiments/PIL_001_MR1/scans"
    )
    assert len(listing["ResultSet"]["Result"]) == 2


async def test_commit_in_auto_archive_project(client: Client, sandbox: SandboxServer) -> None:
    _, uri = await client.upload(
        stream_zip_bytes(series_files(2)),
        PROJECT_ID="STUDY_A",
        SUBJECT_ID="SA_001",
        EXPT_LABEL="SA_001_MR2",
        prevent_auto_commit="true",
    )
    status, text, _ = await client.request("POST", uri.strip(), params={"action": "commit"})
    assert status == 301
    assert text == "/data/archive/projects/STUDY_A/subjects/SA_001/experiments/SA_001_MR2"


async def test_commit_conflict_is_500_failed_and_row_conflict(
    client: Client, sandbox: SandboxServer
) -> None:
    uri = uri_of(sandbox, "PIL_900_MR1")
    await client.request("POST", uri, params={"action": "set-status", "status": "READY"})
    status, text, _ = await client.request("POST", uri, params={"action": "commit", "AA": "true"})
    assert status == 500
    assert "FAILED: Invalid modification of session UID via archive process." in text
    assert status_of(sandbox, "PIL_900_MR1") == "CONFLICT"


async def test_move_delete_and_permissions(client: Client, sandbox: SandboxServer) -> None:
    uri = uri_of(sandbox, "PIL_001_MR1")
    status, text, _ = await client.request(
        "POST", uri, params={"action": "move", "newProject": "STUDY_B"}
    )
    assert status == 403 and "Unable to modify session data for destination project." in text
    status, text, _ = await client.request(
        "POST", uri, params={"action": "move", "newProject": "STUDY_A"}
    )
    assert status == 301
    moved = uri.replace("/PILOT/", "/STUDY_A/")
    assert text == moved
    rows = prearchive_of(sandbox.store).sessions(["STUDY_A"])
    row = next(s for s in rows if s.name == "PIL_001_MR1")
    assert row.autoarchive == "AutoArchive"
    assert (prearchive_of(sandbox.store).session_dir(row) / "SCANS" / "2").is_dir()
    status, _, _ = await client.request("DELETE", moved, user="bob")
    assert status == 403
    status, text, _ = await client.request("DELETE", moved)
    assert (status, text) == (200, "")
    assert not prearchive_of(sandbox.store).session_dir(row).exists()
    status, _, _ = await client.request("DELETE", moved)
    assert status == 404


async def test_unassigned_build_then_move(client: Client, sandbox: SandboxServer) -> None:
    uri = uri_of(sandbox, "ANON_7731")
    status, _, _ = await client.request("POST", uri, params={"action": "build"})
    assert status == 403  # only admins handle Unassigned
    status, _, _ = await client.request("POST", uri, user="admin", params={"action": "build"})
    assert status == 200
    status, text, _ = await client.request(
        "POST", uri, user="admin", params={"action": "move", "newProject": "PILOT"}
    )
    assert status == 301 and text.startswith("/data/prearchive/projects/PILOT/")


async def test_batch_services(client: Client, sandbox: SandboxServer) -> None:
    src = uri_of(sandbox, "PIL_001_MR1")
    status, text, headers = await client.request(
        "POST",
        "/data/services/prearchive/rebuild",
        params={"src": src, "format": "json"},
    )
    assert status == 200
    assert list(__import__("json").loads(text)["ResultSet"]["Result"][0]) == COLUMNS
    status, text, headers = await client.request(
        "POST", "/data/services/prearchive/move", data={"src": src, "newProject": "STUDY_A"}
    )
    assert status == 200 and headers["Content-Type"].startswith("text/xml")
    assert "STUDY_A" in text
    moved = src.replace("/PILOT/", "/STUDY_A/")
    status, text, _ = await client.request(
        "POST", "/data/services/prearchive/delete", params={"src": moved, "format": "csv"}
    )
    assert status == 200 and "PIL_001_MR1" in text
    assert status_of(sandbox, "PIL_001_MR1") is None
    status, text, _ = await client.request(
        "POST", "/data/services/prearchive/delete", params={"src": moved}
    )
    assert status == 404 and "not found" in text


async def test_archive_service(client: Client, sandbox: SandboxServer) -> None:
    src = uri_of(sandbox, "PIL_001_MR1")
    status, text, _ = await client.request("POST", "/data/services/archive", data={"src": src})
    assert status == 200
    assert text == "/data/archive/projects/PILOT/subjects/PIL_001/experiments/PIL_001_MR1\r\n"
    status, text, _ = await client.request("POST", "/data/services/archive", data={"src": src})
    assert status == 404
    status, text, _ = await client.request(
        "POST", "/data/services/archive", user="admin", data={"src": uri_of(sandbox, "ANON_7731")}
    )
    assert status == 400 and "Cannot archive sessions from the Unassigned folder." in text
    status, text, _ = await client.request(
        "POST", "/data/services/archive", data={"src": "/archive/projects/PILOT"}
    )
    assert status == 400 and "Invalid src URI" in text
    status, text, _ = await client.request("POST", "/data/services/archive")
    assert status == 404 and "Unknown prearchive session." in text


async def test_archive_service_redirect_and_overrides(
    client: Client, sandbox: SandboxServer
) -> None:
    _, uri = await client.upload(stream_zip_bytes(series_files(1)), PROJECT_ID="PILOT")
    ts = uri.strip().split("/")[5]
    status, text, headers = await client.request(
        "POST",
        "/data/services/archive",
        params={
            "project": "PILOT",
            "PREARC_TIMESTAMP": ts,
            "PREARC_SESSION_FOLDER": "SUBJ01",
            "subject_ID": "PIL_777",
            "label": "PIL_777_MR1",
            "redirect": "true",
        },
    )
    assert status == 303
    assert headers["Location"].endswith(
        "/data/archive/projects/PILOT/subjects/PIL_777/experiments/PIL_777_MR1"
    )


async def test_failed_build_leaves_error_not_a_lock(
    client: Client, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, uri = await client.upload(stream_zip_bytes(series_files(1)), PROJECT_ID="PILOT")
    uri = uri.strip()

    def disk_full(*_: object) -> str:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(autobuild, "session_xml", disk_full)
    status, text, _ = await client.request("POST", uri, params={"action": "build"})
    assert status == 500 and "Traceback" not in text
    assert status_of(sandbox, "SUBJ01") == "ERROR"
    _, last, _ = await client.request("GET", uri + "/logs/last")
    assert "No space left on device" in last
    monkeypatch.undo()
    status, _, _ = await client.request("POST", uri, params={"action": "build"})
    assert status == 200 and status_of(sandbox, "SUBJ01") == "READY"


async def test_archive_service_with_several_sources_answers_a_table(
    client: Client, sandbox: SandboxServer
) -> None:
    good, conflicting = uri_of(sandbox, "PIL_001_MR1"), uri_of(sandbox, "PIL_900_MR1")
    status, text, _ = await client.request(
        "POST",
        "/data/services/archive",
        params=[("src", good), ("src", conflicting), ("format", "json")],
    )
    assert status == 200
    rows = {r["name"]: r for r in json.loads(text)["ResultSet"]["Result"]}
    assert list(next(iter(rows.values()))) == COLUMNS
    assert rows["PIL_001_MR1"]["status"] == "QUEUED_ARCHIVING"
    assert rows["PIL_900_MR1"]["status"] == "CONFLICT"
    assert status_of(sandbox, "PIL_001_MR1") is None  # archived: gone from the prearchive
    assert status_of(sandbox, "PIL_900_MR1") == "CONFLICT"
    assert sandbox.store.find_experiment("PILOT", "PIL_001_MR1") is not None
