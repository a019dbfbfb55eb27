"""Archive listings with XNAT's exact shapes (xnat-api.md §1.3, §3)."""

from __future__ import annotations

import hashlib

import pytest

from tests.unit.sandbox.helpers import Api
from xnat_tui.sandbox.server import SandboxServer


def all_strings(rows: list[dict[str, object]]) -> bool:
    return all(isinstance(v, str) for row in rows for v in row.values())


async def test_projects_default_listing_per_user(api: Api) -> None:
    r = await api.get("/data/projects", user="alice")
    assert r.status == 200 and r.content_type == "application/json"
    result_set = r.json()["ResultSet"]
    assert list(result_set) == ["Result", "totalRecords"]
    assert result_set["totalRecords"] == "2"
    rows = result_set["Result"]
    assert [row["ID"] for row in rows] == ["PILOT", "STUDY_A"]
    assert list(rows[0]) == [
        "ID",
        "secondary_ID",
        "name",
        "description",
        "pi_firstname",
        "pi_lastname",
        "URI",
    ]
    assert rows[0]["URI"] == "/data/projects/PILOT"
    assert all_strings(rows)

    admin = await api.get("/data/projects?format=json", user="admin")
    assert [row["ID"] for row in admin.rows] == ["PILOT", "STUDY_A", "STUDY_B"]
    bob = await api.get("/data/projects", user="bob")
    assert [row["ID"] for row in bob.rows] == ["PILOT"]
    carol = await api.get("/data/projects", user="carol")
    assert carol.json() == {"ResultSet": {"Result": [], "totalRecords": "0"}}


async def test_projects_editable_listing_has_lowercase_keys(api: Api) -> None:
    path = "/data/projects?permissions=edit&dataType=xnat:subjectData"
    r = await api.get(path, user="alice")
    assert r.json() == {
        "ResultSet": {
            "Result": [
                {"id": "PILOT", "secondary_id": "Pilot"},
                {"id": "STUDY_A", "secondary_id": "Study A"},
            ]
        }
    }
    assert (await api.get(path, user="bob")).rows == []  # collaborator: read only
    assert len((await api.get(path, user="admin")).rows) == 3
    read = await api.get("/data/projects?permissions=read", user="bob")
    assert read.rows == [{"id": "PILOT", "secondary_id": "Pilot"}]
    bad = await api.get("/data/projects?permissions=write", user="alice")
    assert bad.status == 500
    assert "active, create, delete, edit, read" in bad.text
    assert "Traceback" not in bad.text


async def test_columns_parameter_keeps_pk_first_and_uri_last(api: Api) -> None:
    r = await api.get("/data/projects?columns=name,bogus,secondary_ID", user="alice")
    assert list(r.rows[0]) == ["ID", "name", "secondary_ID", "URI"]


async def test_xml_and_csv_formats(api: Api) -> None:
    xml = await api.get("/data/projects?format=xml&columns=ID", user="bob")
    assert xml.content_type == "text/xml"
    assert xml.text == (
        '<ResultSet totalRecords="1"><results><columns><column>ID</column>'
        "<column>URI</column></columns>\n<rows><row><cell>PILOT</cell>"
        "<cell>/data/projects/PILOT</cell></row>\n</rows></results></ResultSet>"
    )
    csv = await api.get("/data/projects?format=csv&columns=ID", user="bob")
    assert csv.content_type == "text/csv"
    assert csv.text.splitlines() == ["ID,URI", "PILOT,/data/projects/PILOT"]
    accept_xml = await api.get("/data/projects", user="bob", headers={"Accept": "text/xml"})
    assert accept_xml.content_type == "text/xml"


async def test_project_item_json_and_xml(api: Api) -> None:
    r = await api.get("/data/projects/PILOT?format=json", user="bob")
    item = r.json()["items"][0]
    assert item["data_fields"]["ID"] == "PILOT"
    assert item["data_fields"]["secondary_ID"] == "Pilot"
    assert item["meta"]["xsi:type"] == "xnat:projectData"
    xml = await api.get("/data/projects/PILOT", user="bob")
    assert xml.content_type == "text/xml"
    assert '<xnat:Project ID="PILOT" secondary_ID="Pilot"' in xml.text


@pytest.mark.parametrize("user", ["alice", "carol"])
async def test_invisible_and_unknown_projects_answer_404(api: Api, user: str) -> None:
    for path in (
        "/data/projects/STUDY_B",
        "/data/projects/NOPE",
        "/data/projects/STUDY_B/subjects",
        "/data/projects/STUDY_B/experiments",
    ):
        r = await api.get(path, user=user)
        assert r.status == 404, path
        assert r.content_type == "text/html"


async def test_subjects_listing(api: Api) -> None:
    r = await api.get("/data/projects/STUDY_A/subjects", user="alice")
    assert r.json()["ResultSet"]["totalRecords"] == "3"
    rows = r.rows
    assert list(rows[0]) == ["ID", "project", "label", "insert_date", "insert_user", "URI"]
    assert [row["label"] for row in rows] == ["SA_001", "SA_002", "SA_003"]
    assert rows[0]["ID"].startswith("XNAT_S")
    assert rows[0]["URI"] == f"/data/subjects/{rows[0]['ID']}"
    dc = await api.get(
        "/data/projects/STUDY_A/subjects?columns=group,insert_date,insert_user,project,label",
        user="alice",
    )
    assert list(dc.rows[0]) == [
        "ID",
        "group",
        "insert_date",
        "insert_user",
        "project",
        "label",
        "URI",
    ]
    assert dc.rows[0]["group"] == "control"


async def test_filters_and_paging(api: Api) -> None:
    base = "/data/projects/STUDY_A/subjects"
    some = await api.get(base + "?label=SA_001,SA_003", user="alice")
    assert [row["label"] for row in some.rows] == ["SA_001", "SA_003"]
    wild = await api.get(base + "?label=*_00*2", user="alice")
    assert [row["label"] for row in wild.rows] == ["SA_002"]
    page = await api.get(base + "?offset=1&limit=1", user="alice")
    assert [row["label"] for row in page.rows] == ["SA_002"]
    assert "totalRecords" not in page.json()["ResultSet"]
    bad = await api.get(base + "?limit=ten", user="alice")
    assert bad.status == 400


async def test_experiments_listing_has_subjectassessor_pk(api: Api) -> None:
    r = await api.get("/data/projects/STUDY_A/experiments", user="alice")
    row = r.rows[0]
    assert list(row) == [
        "xnat:subjectassessordata/id",
        "ID",
        "project",
        "date",
        "xsiType",
        "label",
        "insert_date",
        "URI",
    ]
    assert row["xnat:subjectassessordata/id"] == row["ID"]
    assert row["label"] == "SA_002_MR1" and row["xsiType"] == "xnat:mrSessionData"
    assert row["date"] == "2024-03-01"
    labels = await api.get("/data/projects/STUDY_A/experiments?columns=ID,label", user="alice")
    assert list(labels.rows[0]) == ["xnat:subjectassessordata/id", "ID", "label", "URI"]
    by_subject = await api.get("/data/projects/STUDY_A/subjects/SA_001/experiments", user="alice")
    assert by_subject.rows == []
    mr_only = await api.get(
        "/data/projects/STUDY_A/experiments?xsiType=xnat:ctSessionData", user="alice"
    )
    assert mr_only.rows == []


async def test_site_wide_listings_hide_unreadable_projects(api: Api) -> None:
    alice = await api.get("/data/experiments", user="alice")
    assert {row["project"] for row in alice.rows} == {"PILOT", "STUDY_A"}
    assert {"subject_ID", "subject_label"} <= set(alice.rows[0])
    admin = await api.get("/data/experiments", user="admin")
    assert {row["project"] for row in admin.rows} == {"PILOT", "STUDY_A", "STUDY_B"}
    subjects = await api.get("/data/subjects", user="bob")
    assert {row["project"] for row in subjects.rows} == {"PILOT"}
    assert (await api.get("/data/subjects", user="carol")).rows == []


async def _pilot_session(api: Api) -> dict[str, str]:
    rows = (await api.get("/data/projects/PILOT/experiments", user="alice")).rows
    return rows[0]


async def test_scans_resources_and_files(api: Api) -> None:
    expt = await _pilot_session(api)
    eid = expt["ID"]
    scans = await api.get(f"/data/experiments/{eid}/scans", user="bob")
    assert scans.json()["ResultSet"]["totalRecords"] == "2"
    row = scans.rows[1]
    assert list(row) == [
        "xnat_imagescandata_id",
        "ID",
        "type",
        "quality",
        "xsiType",
        "note",
        "series_description",
        "URI",
    ]
    assert row["ID"] == "2" and row["xsiType"] == "xnat:mrScanData"
    assert row["URI"] == f"/data/experiments/{eid}/scans/2"

    resources = await api.get(f"/data/experiments/{eid}/scans/2/resources", user="bob")
    rs = resources.json()["ResultSet"]
    assert rs["title"] == "Resources" and rs["totalRecords"] == "1"
    res = rs["Result"][0]
    assert res["label"] == "DICOM" and res["category"] == "scans" and res["cat_id"] == "2"
    assert res["file_count"] == "4"

    files = await api.get(f"/data/experiments/{eid}/scans/2/resources/DICOM/files", user="bob")
    fs = files.json()["ResultSet"]
    assert list(fs) == ["Columns", "Result", "title"]
    assert fs["Columns"] == [{"key": "URI", "serverRoot": ""}]
    assert fs["title"] == "Files"
    entries = fs["Result"]
    assert len(entries) == 4
    assert list(entries[0]) == [
        "Name",
        "Size",
        "URI",
        "collection",
        "file_tags",
        "file_format",
        "file_content",
        "cat_ID",
        "digest",
    ]
    first = entries[0]
    rid = res["xnat_abstractresource_id"]
    assert first["URI"] == f"/data/experiments/{eid}/scans/2/resources/{rid}/files/{first['Name']}"
    download = await api.get(first["URI"], user="bob")
    assert download.status == 200
    assert download.body[128:132] == b"DICM"
    assert str(len(download.body)) == first["Size"]
    assert hashlib.md5(download.body).hexdigest() == first["digest"]


async def test_long_paths_and_prefix_aliases(api: Api) -> None:
    expt = await _pilot_session(api)
    long = (
        "/data/projects/PILOT/subjects/PIL_900/experiments/PIL_900_MR1"
        "/scans/2/resources/DICOM/files"
    )
    r = await api.get(long, user="alice")
    uri = r.rows[0]["URI"]
    sid = (await api.get("/data/projects/PILOT/subjects", user="alice")).rows[0]["ID"]
    assert uri.startswith(f"/data/projects/PILOT/subjects/{sid}/experiments/{expt['ID']}/scans/2/")
    assert (await api.get(uri, user="alice")).status == 200
    for prefix in ("/REST", "/data/archive", "/REST/archive"):
        alias = await api.get(prefix + "/projects/PILOT/experiments", user="alice")
        assert alias.rows == [expt], prefix
    assert (await api.get("/data/experiments/XNAT_E99999/scans", user="admin")).status == 404
    assert (await api.get(f"/data/experiments/{expt['ID']}/scans", user="carol")).status == 404
    missing = await api.get(
        f"/data/experiments/{expt['ID']}/scans/2/resources/DICOM/files/nope.dcm", user="alice"
    )
    assert missing.status == 404


async def test_experiment_and_subject_items(api: Api) -> None:
    expt = await _pilot_session(api)
    item = await api.get(f"/data/experiments/{expt['ID']}?format=json", user="alice")
    fields = item.json()["items"][0]["data_fields"]
    assert fields["label"] == "PIL_900_MR1" and fields["project"] == "PILOT"
    subject = await api.get("/data/projects/PILOT/subjects/PIL_900?format=json", user="alice")
    assert subject.json()["items"][0]["data_fields"]["label"] == "PIL_900"
    missing = await api.get("/data/projects/PILOT/subjects/NOPE", user="alice")
    assert missing.status == 404
    assert "does not contain a subject identifiable by the ID or label NOPE" in missing.text


async def test_filtered_project_search(sandbox: SandboxServer, api: Api) -> None:
    r = await api.get("/data/projects?accessible=true&prearc_code=true", user="alice")
    rs = r.json()["ResultSet"]
    uid = sandbox.store.user_id("alice")
    assert rs["title"] == "Projects" and rs["xdat_user_id"] == str(uid)
    assert rs["totalRecords"] == "2"
    first = rs["Result"][0]
    assert first["id"] == "PILOT" and first["secondary_id"] == "Pilot"
    assert first[f"user_role_{uid}"] == "Owners"
    assert first["pi"] == "Anderson, Alice"
    assert first["proj_prearchive_code"] == "0"
    owned = await api.get("/data/projects?owner=true", user="alice")
    assert [row["id"] for row in owned.rows] == ["PILOT"]
    either = await api.get("/data/projects?owner=true&member=true", user="alice")
    assert [row["id"] for row in either.rows] == ["PILOT", "STUDY_A"]
    writable = await api.get("/data/projects?data-accessibility=writable", user="bob")
    assert writable.rows == []
    bad = await api.get("/data/projects?data-accessibility=maybe", user="bob")
    assert bad.status == 400


async def test_xapi_access_projects(api: Api) -> None:
    r = await api.get("/xapi/access/projects", user="alice")
    assert r.json() == [
        {
            "secondary_ID": "Pilot",
            "ID": "PILOT",
            "role": "Owners",
            "name": "Pilot study",
            "URI": "/data/projects/PILOT",
            "group_id": "PILOT_owner",
            "description": "Scanner pilot acquisitions; sessions wait in the prearchive.",
        },
        {
            "secondary_ID": "Study A",
            "ID": "STUDY_A",
            "role": "Members",
            "name": "Study A (auto-archive)",
            "URI": "/data/projects/STUDY_A",
            "group_id": "STUDY_A_member",
            "description": "Longitudinal MR study; new subjects are created by the coordinator.",
        },
    ]
    assert (await api.get("/xapi/access/projects", user="carol")).json() == []


async def test_trailing_slash_matches_like_restlet_prefixes(api: Api) -> None:
    plain = await api.get("/data/projects", user="alice")
    slashed = await api.get("/data/projects/", user="alice")
    assert slashed.status == 200 and slashed.rows == plain.rows
    assert (await api.get("/REST/projects/PILOT/subjects/", user="alice")).status == 200


async def test_project_alias_is_accepted_and_unknown_is_named(api: Api) -> None:
    by_alias = await api.get("/data/projects/STUDYA/subjects", user="alice")
    assert [r["label"] for r in by_alias.rows] == ["SA_001", "SA_002", "SA_003"]
    unknown = await api.get("/data/projects/NOPE/experiments", user="alice")
    assert unknown.status == 404 and "Unable to identify project NOPE" in unknown.text
    no_subject = await api.get("/data/projects/PILOT/subjects/NOPE/experiments", user="alice")
    assert no_subject.status == 404 and "Unable to identify subject NOPE" in no_subject.text


async def test_scan_item_experiment_resources_and_html(api: Api) -> None:
    expt = await _pilot_session(api)
    scan = await api.get(f"/data/experiments/{expt['ID']}/scans/2?format=json", user="bob")
    fields = scan.json()["items"][0]["data_fields"]
    assert fields["ID"] == "2" and fields["series_description"] == "T1_MPRAGE_sag"
    assert scan.json()["items"][0]["meta"]["xsi:type"] == "xnat:mrScanData"
    resources = await api.get(f"/data/experiments/{expt['ID']}/resources", user="bob")
    assert resources.json() == {
        "ResultSet": {"Result": [], "title": "Resources", "totalRecords": "0"}
    }
    html = await api.get("/data/projects?format=html", user="bob")
    assert html.content_type == "text/html" and "<td>PILOT</td>" in html.text
    missing_scan = await api.get(f"/data/experiments/{expt['ID']}/scans/77", user="bob")
    assert missing_scan.status == 404


async def test_head_requests(api: Api) -> None:
    expt = await _pilot_session(api)
    files = await api.get(
        f"/data/experiments/{expt['ID']}/scans/2/resources/DICOM/files", user="alice"
    )
    head = await api.request("HEAD", files.rows[0]["URI"], user="alice")
    assert head.status == 200 and head.body == b""
    assert head.headers["Content-Length"] == files.rows[0]["Size"]
