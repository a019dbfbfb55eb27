"""POST /data/services/import (xnat-api.md §5): bodies, parameters, errors, grouping."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.unit.sandbox_import.conftest import Client
from tests.unit.sandbox_import.helpers import (
    ZIP_32,
    ZIP_64,
    bare_bytes,
    dataset,
    dicom_bytes,
    series_files,
    stream_zip_bytes,
    streamed_stored_with_descriptor,
    tar_bytes,
    zipfile_bytes,
)
from xnat_tui.sandbox.prearchive_store import prearchive_of
from xnat_tui.sandbox.server import SandboxServer

PREARC_URI = re.compile(r"^/data/prearchive/projects/([^/]+)/(\d{8}_\d{9})/([^/]+)\r\n$")


async def chunks(data: bytes, size: int = 4096) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def session_files(sandbox: SandboxServer, uri: str) -> list[Path]:
    root = sandbox.data_dir / uri.strip().removeprefix("/data/").replace("/projects/", "/", 1)
    return sorted(p for p in root.rglob("*") if p.is_file())


def row_for(sandbox: SandboxServer, uri: str) -> dict[str, str]:
    _, _, _, _, project, ts, folder = uri.strip().split("/")
    s = prearchive_of(sandbox.store).find(project, ts, folder)
    assert s is not None, uri
    return s.row()


async def test_chunked_zip_lands_in_prearchive(client: Client, sandbox: SandboxServer) -> None:
    body = stream_zip_bytes(series_files(3))
    status, text, headers = await client.request(
        "POST",
        "/data/services/import",
        params={"import-handler": "DICOM-zip", "PROJECT_ID": "PILOT"},
        data=chunks(body),
        headers={"Content-Type": "application/zip"},
    )
    assert status == 200, text
    assert headers["Content-Type"].startswith("text/uri-list")
    m = PREARC_URI.match(text)
    assert m is not None and m.group(1) == "PILOT" and m.group(3) == "SUBJ01"
    files = session_files(sandbox, text)
    assert [p.relative_to(files[0].parents[3]).as_posix() for p in files] == [
        f"SCANS/1/DICOM/IM000{i}.dcm" for i in (1, 2, 3)
    ]
    row = row_for(sandbox, text)
    assert row["status"] == "RECEIVING"
    assert row["subject"] == "Synthetic_SUBJ01"  # PatientName, [^\w-] → _
    assert row["autoarchive"] == "Manual"
    assert row["scan_date"] == "2024-01-15"


async def test_more_series_of_a_session_get_the_same_uri(
    client: Client, sandbox: SandboxServer
) -> None:
    first = await client.upload(stream_zip_bytes(series_files(2)), PROJECT_ID="PILOT")
    second = await client.upload(
        zipfile_bytes(series_files(2, series=2, description="T2_FLAIR")), PROJECT_ID="PILOT"
    )
    assert first[0] == second[0] == 200
    assert first[1] == second[1]
    scans = await client.json(first[1].strip() + "/scans")
    assert [r["ID"] for r in scans["ResultSet"]["Result"]] == ["1", "2"]


async def test_resending_the_same_instances_is_idempotent(
    client: Client, sandbox: SandboxServer
) -> None:
    body = stream_zip_bytes(series_files(3))
    a = await client.upload(body, PROJECT_ID="PILOT", EXPT_LABEL="E1")
    b = await client.upload(body, PROJECT_ID="PILOT", EXPT_LABEL="E1")
    assert a == b
    assert len(session_files(sandbox, a[1])) == 3
    # Same SOP instance under another entry name still replaces, never duplicates.
    renamed = [(f"other/{n.split('/')[-1]}x.dcm", d) for n, d in series_files(3)]
    c = await client.upload(stream_zip_bytes(renamed), PROJECT_ID="PILOT", EXPT_LABEL="E1")
    assert c == a
    assert len(session_files(sandbox, a[1])) == 3


async def test_multipart_upload_with_form_fields(client: Client, sandbox: SandboxServer) -> None:
    form = aiohttp.FormData()
    form.add_field("PROJECT_ID", "PILOT")
    form.add_field("EXPT_LABEL", "MP_1")
    form.add_field("file", stream_zip_bytes(series_files(2)), filename="C:\\tmp\\series.zip")
    status, text, _ = await client.request("POST", "/data/services/import", data=form)
    assert status == 200, text
    assert "/PILOT/" in text and text.endswith("/MP_1\r\n")


async def test_two_files_in_one_multipart_are_refused(client: Client) -> None:
    form = aiohttp.FormData()
    form.add_field("a", stream_zip_bytes(series_files(1)), filename="a.zip")
    form.add_field("b", stream_zip_bytes(series_files(1)), filename="b.zip")
    status, text, _ = await client.request("POST", "/data/services/import", data=form)
    assert status == 400
    assert "Importer is limited to one uploaded resource at a time." in text


async def test_name_in_path_selects_zip_for_octet_stream(client: Client) -> None:
    body = stream_zip_bytes(series_files(1))
    status, text = await client.upload(
        body,
        path="/data/services/import/series.zip",
        content_type="application/octet-stream",
        PROJECT_ID="PILOT",
    )
    assert status == 200, text
    status, text = await client.upload(
        body, content_type="application/octet-stream", PROJECT_ID="PILOT"
    )
    assert status == 400 and "Unsupported format UNKNOWN" in text


async def test_chunked_non_zip_type_gets_the_in_body_message(client: Client) -> None:
    body = stream_zip_bytes(series_files(1))
    status, text, _ = await client.request(
        "POST",
        "/data/services/import",
        params={"PROJECT_ID": "PILOT"},
        data=chunks(body),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert status == 400
    assert "File posts must include the file directly as the body of the message" in text
    assert "the request entity size is -1" in text


async def test_nested_and_deflated_archives(client: Client, sandbox: SandboxServer) -> None:
    inner = zipfile_bytes(series_files(2, series=3, description="DWI"), deflate=True)
    outer = zipfile_bytes([("nested/inner.zip", inner), *series_files(2)], deflate=True)
    status, text = await client.upload(outer, PROJECT_ID="PILOT")
    assert status == 200, text
    scans = await client.json(text.strip() + "/scans")
    assert [r["ID"] for r in scans["ResultSet"]["Result"]] == ["1", "3"]
    status, text2 = await client.upload(
        stream_zip_bytes(series_files(1, series=4), ZIP_32), PROJECT_ID="PILOT"
    )
    assert status == 200 and text2 == text


async def test_stored_entry_with_data_descriptor_is_refused(
    client: Client, sandbox: SandboxServer
) -> None:
    status, text = await client.upload(
        streamed_stored_with_descriptor(series_files(2)), PROJECT_ID="PILOT", EXPT_LABEL="DD"
    )
    assert status == 400
    assert "unable to read data from file" in text
    assert "only DEFLATED entries can have EXT descriptor" in text
    names = [s.name for s in prearchive_of(sandbox.store).sessions()]
    assert "DD" not in names


async def test_zip64_data_descriptor_is_refused(client: Client) -> None:
    status, text = await client.upload(
        stream_zip_bytes(series_files(2), ZIP_64), PROJECT_ID="PILOT"
    )
    assert status == 400
    assert "unable to read DICOM object 1/IM0001.dcm" in text


async def test_non_dicom_entry_and_ignore_unparsable(
    client: Client, sandbox: SandboxServer
) -> None:
    body = stream_zip_bytes([*series_files(2), ("notes/readme.txt", b"just text, no DICOM")])
    status, text = await client.upload(body, PROJECT_ID="PILOT", EXPT_LABEL="JUNK")
    assert status == 400
    assert "unable to read DICOM object notes/readme.txt" in text
    status, text = await client.upload(
        body, PROJECT_ID="PILOT", EXPT_LABEL="JUNK", **{"Ignore-Unparsable": "true"}
    )
    assert status == 200, text
    assert len(session_files(sandbox, text)) == 2
    only_junk = stream_zip_bytes([("a.txt", b"x" * 300), ("b.txt", b"y" * 300)])
    status, text = await client.upload(
        only_junk, PROJECT_ID="PILOT", **{"Ignore-Unparsable": "true"}
    )
    assert status == 400 and "unable to read DICOM object b.txt" in text


async def test_missing_sop_class_uid(client: Client) -> None:
    ds = dataset()
    del ds.SOPClassUID
    body = stream_zip_bytes([("bad.dcm", bare_bytes(ds))])
    status, text = await client.upload(body, PROJECT_ID="PILOT")
    assert status == 400
    assert "object bad.dcm contains no SOP Class UID" in text


async def test_project_series_filter_drops_localizers(
    client: Client, sandbox: SandboxServer
) -> None:
    localizer = series_files(2, series=1, description="localizer", modality="CT")
    status, text = await client.upload(stream_zip_bytes(localizer), user="admin", project="STUDY_B")
    assert (status, text) == (200, "")
    mixed = localizer + series_files(2, series=2, description="Chest 1.0", modality="CT")
    status, text = await client.upload(stream_zip_bytes(mixed), user="admin", project="STUDY_B")
    assert status == 200
    scans = await client.json(text.strip() + "/scans", user="admin")
    assert [r["ID"] for r in scans["ResultSet"]["Result"]] == ["2"]
    assert row_for(sandbox, text)["autoarchive"] == "AutoArchiveOverwrite"


async def test_site_whitelist_filter(client: Client, sandbox: SandboxServer) -> None:
    contents = {"mode": "whitelist", "enabled": "true", "list": "T1"}
    sandbox.store.put_config("seriesImportFilter", "config", json.dumps(contents), user="admin")
    body = stream_zip_bytes(
        series_files(1, series=1, description="t1_mprage")
        + series_files(1, series=2, description="T2_FLAIR")
    )
    status, text = await client.upload(body, PROJECT_ID="PILOT")
    assert status == 200
    scans = await client.json(text.strip() + "/scans")
    assert [r["series_description"] for r in scans["ResultSet"]["Result"]] == ["t1_mprage"]


@pytest.mark.parametrize(
    ("user", "project"),
    [("alice", "NO_SUCH_PROJECT"), ("carol", "PILOT"), ("alice", None)],
)
async def test_unknown_or_unreadable_project_goes_to_unassigned(
    client: Client, sandbox: SandboxServer, user: str, project: str | None
) -> None:
    params = {"PROJECT_ID": project} if project else {}
    status, text = await client.upload(stream_zip_bytes(series_files(1)), user=user, **params)
    assert status == 200, text
    assert text.startswith("/data/prearchive/projects/Unassigned/")
    assert row_for(sandbox, text)["project"] == "Unassigned"


async def test_routing_from_dicom_headers(client: Client, sandbox: SandboxServer) -> None:
    comments = {"StudyComments": "Project: PILOT Subject: S9 Session: S9_MR1"}
    files = series_files(1, study_extra=comments)
    status, text = await client.upload(stream_zip_bytes(files))
    assert status == 200
    assert "/PILOT/" in text and text.endswith("/S9_MR1\r\n")
    assert row_for(sandbox, text)["subject"] == "S9"
    # Whole StudyDescription as a project alias; PatientID as label, cleaned.
    files = series_files(1, patient="P 7/x", study_description="STUDYA")
    status, text = await client.upload(stream_zip_bytes(files))
    assert "/STUDY_A/" in text and text.endswith("/P_7_x\r\n")
    assert row_for(sandbox, text)["autoarchive"] == "AutoArchive"
    # "AA: false" in the headers overrides the project's auto-archive code.
    files = series_files(1, patient="P8", study_extra={"PatientComments": "AA: false"})
    status, text = await client.upload(stream_zip_bytes(files), PROJECT_ID="STUDYA")
    assert "/STUDY_A/" in text
    assert row_for(sandbox, text)["autoarchive"] == "Manual"


async def test_label_falls_back_to_dicom_upload(client: Client) -> None:
    ds = dataset()
    ds.PatientID = ""
    status, text = await client.upload(
        stream_zip_bytes([("x.dcm", dicom_bytes(ds))]), PROJECT_ID="PILOT"
    )
    assert status == 200 and text.endswith("/dicom_upload\r\n")


async def test_parameters_are_stored_on_the_row(client: Client, sandbox: SandboxServer) -> None:
    status, text = await client.upload(
        stream_zip_bytes(series_files(1)),
        PROJECT_ID="PILOT",
        SUBJECT_ID="S1",
        EXPT_LABEL="S1_MR1",
        VISIT="v1",
        SUBTYPE="baseline",
        SOURCE="uploader",
        TIMEZONE="Europe/Paris",
        prevent_anon="true",
        prevent_auto_commit="true",
        rename="true",
        overwrite="none",
        autoArchive="AutoArchive",
    )
    assert status == 200, text
    row = row_for(sandbox, text)
    assert (row["subject"], row["name"], row["folderName"]) == ("S1", "S1_MR1", "S1_MR1")
    assert (row["VISIT"], row["PROTOCOL"], row["SOURCE"]) == ("v1", "baseline", "uploader")
    assert (row["prevent_anon"], row["prevent_auto_commit"]) == ("true", "true")
    assert row["TIMEZONE"] == "Europe/Paris"
    assert row["autoarchive"] == "Manual"  # autoArchive= is not a key XNAT reads
    names = [p.name for p in session_files(sandbox, text)]
    assert names and all(n != "IM0001.dcm" and n.endswith(".dcm") for n in names)


async def test_unknown_handler_and_get(client: Client) -> None:
    status, text = await client.upload(b"x", **{"import-handler": "bogus"})
    assert status == 404
    assert "Unknown importer implementation specified: bogus" in text
    status, _, _ = await client.request("GET", "/data/services/import")
    assert status == 405


async def test_no_file_with_handler(client: Client) -> None:
    # A form post: parameters only, no file part.
    status, text, _ = await client.request(
        "POST", "/data/services/import", data={"import-handler": "DICOM-zip", "project": "P"}
    )
    assert status == 400 and "Unable to identify upload format." in text
    # An empty body typed octet-stream is an in-body upload of size 0.
    status, text = await client.upload(b"", content_type="application/octet-stream")
    assert status == 400 and "the request entity size is 0" in text


async def test_prearchive_code_overwrite_quirk(client: Client) -> None:
    status, text = await client.upload(
        stream_zip_bytes(series_files(1)), project="PILOT", prearchive_code="1", overwrite="append"
    )
    assert status == 400
    assert "Overwrite flag was not set to a valid option. ('append' or 'delete')" in text


async def test_dest_archive_archives_and_returns_archive_uri(
    client: Client, sandbox: SandboxServer
) -> None:
    status, text = await client.upload(
        stream_zip_bytes(series_files(2) + series_files(1, series=2, description="T2")),
        dest="/archive/projects/PILOT/subjects/NEW_SUBJ/experiments/NEW_MR1",
    )
    assert status == 200, text
    assert text == "/data/archive/projects/PILOT/subjects/NEW_SUBJ/experiments/NEW_MR1\r\n"
    store = sandbox.store
    expt = store.find_experiment("PILOT", "NEW_MR1")
    assert expt is not None and expt["xsi_type"] == "xnat:mrSessionData"
    scans = store.list_scans(str(expt["id"]))
    assert [(s["scan_id"], s["series_description"]) for s in scans] == [
        ("1", "T1_MPRAGE"),
        ("2", "T2"),
    ]
    resource = store.find_resource(str(expt["id"]), int(scans[0]["pk"]), "DICOM")
    assert resource is not None
    files = store.list_files(int(resource["id"]))
    assert len(files) == 2 and all(len(f["digest"]) == 32 for f in files)
    assert not [s for s in prearchive_of(store).sessions() if s.name == "NEW_MR1"]


async def test_dest_archive_conflict_is_400_and_row_conflict(
    client: Client, sandbox: SandboxServer
) -> None:
    # The demo archive holds PILOT/PIL_900_MR1 with another StudyInstanceUID.
    status, text = await client.upload(
        stream_zip_bytes(series_files(1, patient="PIL_900")),
        dest="/archive/projects/PILOT/subjects/PIL_900/experiments/PIL_900_MR1",
        overwrite="append",
    )
    assert status == 400
    assert "unable to archive for the Prearchive session" in text
    assert "Invalid modification of session UID via archive process." in text
    rows = [s for s in prearchive_of(sandbox.store).sessions() if s.name == "PIL_900_MR1"]
    assert "CONFLICT" in [s.status for s in rows]


async def test_action_commit_builds_without_archiving(
    client: Client, sandbox: SandboxServer
) -> None:
    status, text = await client.upload(
        stream_zip_bytes(series_files(1)), PROJECT_ID="STUDY_A", action="commit"
    )
    assert status == 200 and text.startswith("/data/prearchive/projects/STUDY_A/")
    assert row_for(sandbox, text)["status"] == "READY"


async def test_second_study_into_named_prearchive_session_is_refused(client: Client) -> None:
    status, text = await client.upload(
        stream_zip_bytes(series_files(1)), dest="/prearchive/projects/PILOT/20240101_000000000/N1"
    )
    assert status == 200, text
    other = series_files(1, study_uid="1.2.826.0.1.3680043.8.498.999")
    status, text = await client.upload(
        stream_zip_bytes(other), dest="/prearchive/projects/PILOT/20240101_000000000/N1"
    )
    assert status == 400


async def test_format_txt_and_html(client: Client) -> None:
    status, text, headers = await client.request(
        "POST",
        "/data/services/import",
        params={"PROJECT_ID": "PILOT", "format": "txt"},
        data=stream_zip_bytes(series_files(1)),
        headers={"Content-Type": "application/zip"},
    )
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert text.startswith("/data/prearchive/projects/PILOT/") and not text.endswith("\r\n")
    status, text = await client.upload(
        stream_zip_bytes(series_files(1)), PROJECT_ID="PILOT", format="html"
    )
    assert status == 200 and "moved to pre-archive" in text


async def test_gradual_dicom_single_object(client: Client, sandbox: SandboxServer) -> None:
    status, text = await client.upload(
        dicom_bytes(dataset()), content_type="application/dicom", PROJECT_ID="PILOT"
    )
    assert status == 200, text
    assert len(session_files(sandbox, text)) == 1


async def test_concurrent_series_of_one_session_share_a_row(
    client: Client, sandbox: SandboxServer
) -> None:
    import asyncio

    bodies = [stream_zip_bytes(series_files(2, series=n, description=f"S{n}")) for n in range(1, 6)]
    results = await asyncio.gather(
        *(client.upload(b, PROJECT_ID="PILOT", EXPT_LABEL="PAR1") for b in bodies)
    )
    assert set(results) == {results[0]} and results[0][0] == 200
    rows = [s for s in prearchive_of(sandbox.store).sessions() if s.name == "PAR1"]
    assert len(rows) == 1
    assert len(prearchive_of(sandbox.store).files(rows[0].id)) == 10


async def test_src_parameter(client: Client) -> None:
    # The web uploader posts a form whose src names a previously uploaded cache file.
    status, text, _ = await client.request(
        "POST", "/data/services/import", data={"src": "/user/cache/resources/X/files/a.zip"}
    )
    assert status == 404 and "Unknown src file." in text
    status, text, _ = await client.request("POST", "/data/services/import", data={"src": "/x"})
    assert status == 400 and "src uri is invalid." in text


async def test_tar_and_tgz_archives(client: Client, sandbox: SandboxServer) -> None:
    status, text = await client.upload(
        tar_bytes(series_files(2)), content_type="application/x-tar", PROJECT_ID="PILOT"
    )
    assert status == 200, text
    status, text2 = await client.upload(
        tar_bytes(series_files(1, series=2), "w:gz"),
        path="/data/services/import/series.tgz",
        content_type="application/octet-stream",
        PROJECT_ID="PILOT",
    )
    assert status == 200 and text2 == text
    nested = zipfile_bytes([("more/s3.tar", tar_bytes(series_files(1, series=3)))])
    status, text3 = await client.upload(nested, PROJECT_ID="PILOT")
    assert text3 == text
    assert len(session_files(sandbox, text)) == 4


async def test_session_importer_reports_conflicts_as_409(client: Client) -> None:
    status, text = await client.upload(
        stream_zip_bytes(series_files(1, patient="PIL_900")),
        **{"import-handler": "SI"},
        dest="/archive/projects/PILOT/subjects/PIL_900/experiments/PIL_900_MR1",
        overwrite="append",
    )
    assert status == 409
    assert "Invalid modification of session UID via archive process." in text


async def test_html_format_turns_errors_into_a_page(client: Client) -> None:
    status, text = await client.upload(
        stream_zip_bytes([("x.txt", b"not dicom")]), PROJECT_ID="PILOT", format="html"
    )
    # Importer.respondToException answers an HTML request with the message in a page.
    assert status == 200
    assert "unable to read DICOM object x.txt" in text and "ERROR" in text


async def test_inbody_multipart_and_reference_field(client: Client) -> None:
    form = aiohttp.FormData()
    form.add_field("file", stream_zip_bytes(series_files(1)), filename="s.zip")
    status, text, _ = await client.request(
        "POST", "/data/services/import", params={"inbody": "true"}, data=form
    )
    assert status == 406
    assert "(not as part of multi-part form data)" in text
    form = aiohttp.FormData()
    form.add_field("reference", "/some/path")
    form.add_field("file", stream_zip_bytes(series_files(1)), filename="s.zip")
    status, _, _ = await client.request("POST", "/data/services/import", data=form)
    assert status == 400


async def test_labels_never_escape_the_data_directory(
    client: Client, sandbox: SandboxServer
) -> None:
    status, text = await client.upload(
        stream_zip_bytes(series_files(1)),
        PROJECT_ID="PILOT",
        EXPT_LABEL="../../escape",
        PREARC_TIMESTAMP="..",
    )
    assert status == 200, text
    root = sandbox.data_dir.resolve()
    written = [p.resolve() for p in sandbox.data_dir.rglob("*.dcm")]
    assert written and all(root in p.parents for p in written)
    assert not (sandbox.data_dir.parent / "escape").exists()
    status, text, _ = await client.request(
        "POST", text.strip(), params={"action": "commit", "AA": "true"}
    )
    assert status == 301
    assert all(root in p.resolve().parents for p in sandbox.data_dir.rglob("*.dcm"))


async def test_dropped_upload_leaves_nothing_behind(client: Client, sandbox: SandboxServer) -> None:
    import asyncio

    body = stream_zip_bytes(series_files(3, patient="DROP"))
    before = len(prearchive_of(sandbox.store).sessions())

    async def broken() -> AsyncIterator[bytes]:
        yield body[: len(body) // 2]
        raise ConnectionResetError("client went away")

    try:
        await client.upload(broken(), PROJECT_ID="PILOT")
    except (aiohttp.ClientError, ConnectionResetError):
        pass
    for _ in range(40):  # the server notices the cut asynchronously
        leftovers = list((sandbox.data_dir / "tmp").glob("upload-*"))
        if not leftovers:
            break
        await asyncio.sleep(0.05)
    assert leftovers == []
    assert len(prearchive_of(sandbox.store).sessions()) == before


async def test_no_staging_left_after_good_and_bad_uploads(
    client: Client, sandbox: SandboxServer
) -> None:
    good = stream_zip_bytes(series_files(2, patient="TIDY"))
    assert (await client.upload(good, PROJECT_ID="PILOT"))[0] == 200
    bad = stream_zip_bytes([("junk.dcm", b"not dicom")])
    status, text = await client.upload(bad, PROJECT_ID="PILOT")
    assert status == 400 and "unable to read DICOM object" in text
    assert list((sandbox.data_dir / "tmp").iterdir()) == []
