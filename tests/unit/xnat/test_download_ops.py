"""Sandbox download endpoints (xnat-api-2.md §A) against the client's download ops."""

from __future__ import annotations

import email.utils
import hashlib
import io
import zipfile

import aiohttp
import pytest

from xnat_tui.sandbox.server import SandboxServer
from xnat_tui.xnat import download_ops as ops
from xnat_tui.xnat.client import XnatClient
from xnat_tui.xnat.credentials import Credentials


async def _session_id(client: XnatClient, project: str, label: str) -> str:
    found = await client.find_experiment(project, label)
    assert found is not None
    return found.id


async def test_listing_has_md5_digests_and_the_single_file_get_matches(
    sandbox: SandboxServer,
) -> None:
    async with XnatClient(Credentials(sandbox.url, "alice", "alice")) as client:
        sid = await _session_id(client, "PILOT", "PIL_900_MR1")
        files = await ops.session_files(client, sid)
        assert {f.scan_id for f in files} == {"1", "2"}
        assert len(files) == 7
        for f in files:
            assert f.resource == "DICOM" and len(f.digest) == 32
            data = await ops.fetch_verified(client, f)
            assert hashlib.md5(data).hexdigest() == f.digest
            assert len(data) == f.size
        only_t1 = await ops.session_files(client, sid, scans="T1_MPRAGE_sag")
        assert {f.scan_id for f in only_t1} == {"2"}
        async with ops.open_file(client, files[0].uri) as reply:
            assert reply.status == 200
            assert reply.length == files[0].size
            assert email.utils.parsedate_to_datetime(reply.last_modified).year >= 2024
            assert reply.content_type == "application/octet-stream"


async def test_range_is_ignored_by_default_and_honoured_with_the_switch(
    sandbox: SandboxServer,
) -> None:
    async with XnatClient(Credentials(sandbox.url, "alice", "alice")) as client:
        sid = await _session_id(client, "PILOT", "PIL_900_MR1")
        f = (await ops.session_files(client, sid))[0]
        whole = await ops.fetch_verified(client, f)
        async with ops.open_file(client, f.uri, offset=100) as reply:
            assert (reply.status, reply.start) == (200, 0)
            body = b"".join([c async for c in reply.chunks()])
        assert body == whole
        sandbox.faults.configure("ranges")
        async with ops.open_file(client, f.uri, offset=100) as reply:
            assert (reply.status, reply.start, reply.total) == (206, 100, len(whole))
            body = b"".join([c async for c in reply.chunks()])
        assert body == whole[100:]


async def test_large_and_empty_files_arrive_whole_on_one_kept_alive_connection(
    sandbox: SandboxServer,
) -> None:
    """Bodies larger than a socket buffer, and an empty one, one after another on the
    same connection: each answer ends exactly at its Content-Length."""
    store = sandbox.store
    session = await _session_id_by_admin(sandbox, "PILOT", "PIL_900_MR1")
    pk = store.add_scan(session, "77", type="BIG", series_description="BIG")
    res = store.get_or_create_resource(session, pk, "DICOM")
    folder = store.experiment_dir("PILOT", "PIL_900_MR1") / "SCANS" / "77" / "DICOM"
    folder.mkdir(parents=True)
    big = bytes(range(256)) * (5 * 4096 + 3)  # 5 MiB and a bit, not block-aligned
    contents = {"big.dcm": big, "empty.dcm": b"", "again.dcm": big[::-1]}
    for name, data in contents.items():
        (folder / name).write_bytes(data)
        store.add_file(res, name, folder / name, file_format="DICOM")
    base = f"{sandbox.url}/data/experiments/{session}/scans/77/resources/DICOM/files"
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=1),
        headers={"Authorization": aiohttp.encode_basic_auth("admin", "admin")},
    ) as http:
        for _ in range(2):
            for name, data in contents.items():
                async with http.get(f"{base}/{name}") as resp:
                    assert resp.status == 200
                    assert resp.headers["Content-Length"] == str(len(data))
                    assert await resp.read() == data


async def _session_id_by_admin(sandbox: SandboxServer, project: str, label: str) -> str:
    async with XnatClient(Credentials(sandbox.url, "admin", "admin")) as client:
        return await _session_id(client, project, label)


async def test_zip_is_streamed_without_length_in_xnat_layout(sandbox: SandboxServer) -> None:
    async with XnatClient(Credentials(sandbox.url, "alice", "alice")) as client:
        sid = await _session_id(client, "PILOT", "PIL_900_MR1")
        files = await ops.session_files(client, sid)
    async with (
        aiohttp.ClientSession(
            headers={"Authorization": aiohttp.encode_basic_auth("alice", "alice")}
        ) as http,
        http.get(
            f"{sandbox.url}/data/experiments/{sid}/scans/ALL/files", params={"format": "zip"}
        ) as resp,
    ):
        assert resp.status == 200
        assert "Content-Length" not in resp.headers
        assert resp.headers["Content-Disposition"] == 'attachment; filename="PIL_900_MR1.zip";'
        data = await resp.read()
    archive = zipfile.ZipFile(io.BytesIO(data))
    names = sorted(archive.namelist())
    assert len(names) == len(files)
    assert names[0].startswith("PIL_900_MR1/scans/1-localizer/resources/DICOM/files/")
    digests = {(f.scan_id, f.relpath): f.digest for f in files}
    for name in names:
        scan = name.split("/")[2].split("-", 1)[0]
        want = digests[(scan, name.rsplit("/", 1)[-1])]
        assert hashlib.md5(archive.read(name)).hexdigest() == want


async def test_a_cut_body_is_a_dropped_connection_not_a_short_file(
    sandbox: SandboxServer,
) -> None:
    sandbox.faults.configure("cut")
    async with XnatClient(Credentials(sandbox.url, "alice", "alice")) as client:
        sid = await _session_id(client, "PILOT", "PIL_900_MR1")
        f = (await ops.session_files(client, sid))[0]
        with pytest.raises(ops.ConnectionFailed):
            await ops.fetch_verified(client, f)


async def test_catalog_xml_round_trip(sandbox: SandboxServer) -> None:
    async with XnatClient(Credentials(sandbox.url, "alice", "alice")) as client:
        sid = await _session_id(client, "PILOT", "PIL_900_MR1")
        ctx = client.context("make a catalog")
        body = {
            "projectIds": ["PILOT"],
            "sessions": [f"PILOT:PIL_900:PIL_900_MR1:{sid}"],
            "scan_types": ["T1_MPRAGE_sag"],
            "scan_formats": ["DICOM"],
            "options": ["simplified"],
        }
        reply = await client.request("POST", "/xapi/archive/downloadwithsize", ctx, json_body=body)
        made = reply.json()
        assert int(made["size"]) > 0
        xml = await client.request("GET", f"/xapi/archive/download/{made['id']}/xml", ctx)
        entries = ops.parse_catalog(xml.text)
        assert [(e.session_id, e.scan_id, e.resource, e.name) for e in entries] == [
            (sid, "2", "DICOM", "PIL_900_MR1/2/DICOM")
        ]
        files = await ops.resource_files(client, sid, "2", "DICOM")
        assert len(files) == 4 and all(f.scan_id == "2" for f in files)


def test_verifier_refuses_an_html_page_and_a_wrong_digest() -> None:
    page = b"<!DOCTYPE html><html><body>Login</body></html>"
    check = ops.Verifier("1.dcm", size=None, content_type="text/html;charset=UTF-8")
    with pytest.raises(ops.IntegrityError, match="HTML"):
        check.feed(page)
    check = ops.Verifier("1.dcm", size=None, content_type="application/octet-stream")
    with pytest.raises(ops.IntegrityError, match="HTML"):
        check.feed(page)
    data = b"\0" * 128 + b"DICM" + b"x" * 10
    check = ops.Verifier("1.dcm", size=len(data), digest="0" * 32)
    check.feed(data)
    with pytest.raises(ops.IntegrityError, match="MD5"):
        check.finish()
    check = ops.Verifier("1.dcm", size=len(data) + 1)
    check.feed(data)
    with pytest.raises(ops.IntegrityError, match="listed"):
        check.finish()
    check = ops.Verifier("a.zip", size=4)
    check.feed(b"oops")
    with pytest.raises(ops.IntegrityError, match="not a zip"):
        check.finish()
    good = ops.Verifier("1.dcm", size=len(data), digest=hashlib.md5(data).hexdigest())
    good.feed(data)
    assert good.finish() == hashlib.md5(data).hexdigest()


def test_parse_catalog_rejects_what_is_not_a_catalog() -> None:
    with pytest.raises(ops.ProtocolError, match="not valid XML"):
        ops.parse_catalog("<html")
    with pytest.raises(ops.ProtocolError, match="not a download catalog"):
        ops.parse_catalog("<html></html>")


@pytest.mark.parametrize(
    ("uri", "name", "relpath", "request_path"),
    [
        # XNAT's own listing: the path joined as it is.
        (
            "/data/experiments/E/scans/1/resources/9/files/sub dir/a #1.txt",
            "a #1.txt",
            "sub dir/a #1.txt",
            "/data/experiments/E/scans/1/resources/9/files/sub%20dir/a%20%231.txt",
        ),
        (
            "/data/experiments/E/scans/1/resources/9/files/pct%41.txt",
            "pct%41.txt",
            "pct%41.txt",
            "/data/experiments/E/scans/1/resources/9/files/pct%2541.txt",
        ),
        # A server or proxy that encodes it: decoded for the name, sent as it came.
        (
            "/data/experiments/E/scans/1/resources/9/files/sub%20dir/caf%C3%A9.txt",
            "caf\u00e9.txt",
            "sub dir/caf\u00e9.txt",
            "/data/experiments/E/scans/1/resources/9/files/sub%20dir/caf%C3%A9.txt",
        ),
        (
            "/data/experiments/E/scans/1/resources/9/files/plain.dcm",
            "plain.dcm",
            "plain.dcm",
            "/data/experiments/E/scans/1/resources/9/files/plain.dcm",
        ),
    ],
)
def test_a_listed_uri_gives_the_file_name_and_a_request_path_either_way(
    uri: str, name: str, relpath: str, request_path: str
) -> None:
    listed = ops.ListedFile.from_remote(ops.RemoteFile(name=name, size=1, uri=uri))
    assert (listed.relpath, listed.uri) == (relpath, request_path)


GIFTI = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<!DOCTYPE GIFTI SYSTEM "http://www.nitrc.org/frs/download.php/1594/gifti.dtd">\n'
    b'<GIFTI Version="1.0" NumberOfDataArrays="2">' + b"<DataArray/>" * 40 + b"</GIFTI>\n"
)
VTP = b'<?xml version="1.0"?>\n<VTKFile type="PolyData" version="0.1">' + b" " * 200
XHTML_LOGIN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" '
    b'"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">\n'
    b"<html><body>Sign in</body></html>"
)


@pytest.mark.parametrize(("name", "data"), [("lh.pial.surf.gii", GIFTI), ("model.vtp", VTP)])
def test_xml_data_files_are_kept_while_an_xhtml_page_is_refused(name: str, data: bytes) -> None:
    """GIFTI surfaces, VTK XML and the like start as an XML page would: only an
    (X)HTML document is taken for an error page, however the bytes arrive."""
    for digest in (hashlib.md5(data).hexdigest(), ""):
        check = ops.Verifier(name, size=len(data), digest=digest, content_type="application/xml")
        for i in range(0, len(data), 10):
            check.feed(data[i : i + 10])
        assert check.finish() == hashlib.md5(data).hexdigest()
    check = ops.Verifier(name, size=None, content_type="application/octet-stream")
    with pytest.raises(ops.IntegrityError, match="XHTML"):
        for i in range(0, len(XHTML_LOGIN), 10):
            check.feed(XHTML_LOGIN[i : i + 10])


def test_a_catalog_with_an_assessor_is_refused_saying_so() -> None:
    xml = (
        '<cat:Catalog xmlns:cat="http://nrg.wustl.edu/catalog"><cat:sets>'
        '<cat:entrySet ID="E1" description="d"><cat:entries><cat:entry'
        ' URI="/archive/experiments/E1/assessors/A1/resources/QC/files" name="x"/>'
        "</cat:entries></cat:entrySet></cat:sets></cat:Catalog>"
    )
    with pytest.raises(ops.ProtocolError, match="an assessor's resource") as info:
        ops.parse_catalog(xml)
    assert "without assessors" in info.value.hint
    with pytest.raises(ops.ProtocolError) as info:
        ops.parse_catalog("<html")
    assert "Catalog XML" in info.value.hint  # a local file: not "the server may not be XNAT"
