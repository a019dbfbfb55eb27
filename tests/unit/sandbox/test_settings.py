"""Project settings: prearchive_code, config service, anon scripts (xnat-api.md §7)."""

from __future__ import annotations

import json

from tests.unit.sandbox.helpers import Api


async def test_prearchive_code(api: Api) -> None:
    for project, code in (("PILOT", "0"), ("STUDY_A", "4")):
        r = await api.get(f"/data/projects/{project}/prearchive_code", user="alice")
        assert (r.status, r.text) == (200, code)
    assert (await api.get("/data/projects/STUDY_B/prearchive_code", user="admin")).text == "5"
    assert (await api.get("/data/projects/STUDY_B/prearchive_code", user="alice")).status == 404
    assert (await api.put("/data/projects/PILOT/prearchive_code/4", user="bob")).status == 403
    assert (await api.put("/data/projects/PILOT/prearchive_code/7", user="alice")).status == 400
    assert (await api.put("/data/projects/PILOT/prearchive_code/4", user="alice")).status == 200
    assert (await api.get("/data/projects/PILOT/prearchive_code", user="bob")).text == "4"


async def test_config_contents_and_not_found(api: Api) -> None:
    key = "/config/applet/allow-create-subject?contents=true"
    found = await api.get("/data/projects/STUDY_A" + key, user="alice")
    assert (found.status, found.text) == (200, "false")
    assert found.content_type == "text/plain"
    quiet = await api.get("/data/projects/PILOT" + key + "&accept-not-found=true", user="alice")
    assert quiet.status == 204 and quiet.body == b""
    loud = await api.get("/data/projects/PILOT" + key, user="alice")
    assert loud.status == 404
    assert (
        "Config not found for user alice and project PILOT on tool [applet] "
        "path [allow-create-subject]" in loud.text
    )
    site = await api.get("/data/config/applet/allow-create-subject?contents=true", user="alice")
    assert site.status == 404
    missing = await api.get("/data/projects/NOPE/config/applet/x?contents=true", user="admin")
    assert missing.status == 404 and "The requested project NOPE does not exist." in missing.text
    hidden = await api.get("/data/projects/STUDY_B/config/applet/x?contents=true", user="alice")
    assert hidden.status == 403 and "User alice can not access project STUDY_B" in hidden.text


async def test_config_table_form(api: Api) -> None:
    r = await api.get(
        "/data/projects/STUDY_A/config/applet/allow-bulk-upload?format=json", user="alice"
    )
    rs = r.json()["ResultSet"]
    assert list(rs) == ["Result"]  # no totalRecords
    row = rs["Result"][0]
    assert list(row) == [
        "tool",
        "path",
        "project",
        "user",
        "create_date",
        "reason",
        "contents",
        "unversioned",
        "version",
        "status",
    ]
    assert (row["tool"], row["path"], row["project"], row["contents"], row["status"]) == (
        "applet",
        "allow-bulk-upload",
        "STUDY_A",
        "false",
        "enabled",
    )
    tool = await api.get("/data/projects/STUDY_A/config/applet?contents=true", user="alice")
    assert sorted(r["path"] for r in tool.rows) == ["allow-bulk-upload", "allow-create-subject"]


async def test_site_config_put_rules_and_versions(api: Api) -> None:
    path = "/data/config/applet/require-date"
    denied = await api.put(path, user="alice", data="true", headers={"Content-Type": "text/plain"})
    assert denied.status == 403
    first = await api.put(path, user="admin", data="true", headers={"Content-Type": "text/plain"})
    assert first.status == 201
    second = await api.put(
        path,
        user="admin",
        data=json.dumps({"contents": "false"}),
        headers={"Content-Type": "application/json"},
    )
    assert second.status == 200
    table = await api.get(path + "?format=json", user="carol")
    assert (table.rows[0]["contents"], table.rows[0]["version"]) == ("false", "2")
    assert table.rows[0]["project"] == ""
    history = await api.get(path + "?action=getHistory", user="carol")
    assert [r["contents"] for r in history.rows] == ["true", "false"]
    v1 = await api.get(path + "?contents=true&version=1", user="carol")
    assert v1.text == "true"
    empty = await api.put(path, user="admin")
    assert empty.status == 400
    assert "You must specify either the status querystring parameter" in empty.text
    disabled = await api.put(path + "?status=disabled", user="admin")
    assert disabled.status == 200
    gone = await api.get(path + "?contents=true&accept-not-found=true", user="carol")
    assert gone.status == 204
    still = await api.get(path + "?format=json", user="carol")
    assert still.rows[0]["status"] == "disabled" and still.rows[0]["contents"] == "false"


async def test_project_config_put_needs_owner(api: Api) -> None:
    path = "/data/projects/STUDY_A/config/applet/require-date"
    member = await api.put(path, user="alice", data="true", headers={"Content-Type": "text/plain"})
    assert member.status == 403
    owner = await api.put(
        "/data/projects/PILOT/config/applet/require-date",
        user="alice",
        data="true",
        headers={"Content-Type": "text/plain"},
    )
    assert owner.status == 201
    fallback = await api.get(
        "/data/projects/STUDY_A/config/tracers/tracers?contents=true&defaultToSiteWide=true",
        user="alice",
    )
    assert fallback.status == 404


async def test_series_import_filter_and_anon_script(api: Api) -> None:
    sif = await api.get(
        "/data/projects/STUDY_B/config/seriesImportFilter/config?format=json", user="admin"
    )
    contents = json.loads(sif.rows[0]["contents"])
    assert contents["mode"] == "blacklist" and contents["enabled"] == "true"
    assert contents["projectId"] == "STUDY_B"
    assert "ocali" in contents["list"].lower() or "[Ll][Oo][Cc]" in contents["list"]
    anon = await api.get(
        "/data/projects/STUDY_B/config/anon/projects/STUDY_B?format=json", user="admin"
    )
    assert anon.rows[0]["contents"].startswith('version "6.1"')
    slash = await api.get(
        "/data/projects/STUDY_B/config/anon//projects/STUDY_B?contents=true", user="admin"
    )
    assert slash.text == anon.rows[0]["contents"]
    xapi = await api.get("/xapi/anonymize/projects/STUDY_B", user="admin")
    assert xapi.text == anon.rows[0]["contents"]
    assert (await api.get("/xapi/anonymize/projects/STUDY_B/enabled", user="admin")).json() is True
    site = await api.get("/data/config/anon/script?format=json&accept-not-found=true", user="admin")
    assert site.status == 204
    assert (await api.get("/xapi/anonymize/site/enabled", user="admin")).json() is False
    put = await api.put(
        "/xapi/anonymize/site", user="admin", data='version "6.1"\n(0010,0010) := "X"\n'
    )
    assert put.status == 200
    assert (await api.get("/xapi/anonymize/site/enabled", user="admin")).json() is True
    assert (await api.put("/xapi/anonymize/site", user="alice", data="x")).status == 403


async def test_config_tool_listing(api: Api) -> None:
    r = await api.get("/data/projects/STUDY_B/config", user="admin")
    assert [row["tool"] for row in r.rows] == ["anon", "seriesImportFilter"]
