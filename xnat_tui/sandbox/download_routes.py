"""The download side of the archive, as XNAT serves it (xnat-api-2.md §A).

* Single file ``GET .../resources/{R}/files/{path}``: Content-Length, Last-Modified (the
  file's mtime), a Content-Type from the extension (``.dcm`` is
  ``application/octet-stream``) and ``Content-Disposition: attachment``. ``Range`` is
  ignored (200 with the whole file), as XNAT does, unless the fault switch ``ranges``
  is on: then ``bytes=N-`` / ``bytes=N-M`` get a 206 with ``Content-Range``, so a
  client's fast resume path is tested too. The fault ``cut=RATE`` sends about half of
  a body and then drops the connection.
* ``?format=zip`` on any ``.../files`` listing: a STORED zip streamed without a
  Content-Length (chunked), ``Content-Disposition: attachment; filename="<label>.zip";``,
  entries laid out by ``structure=`` (default, simplified, improved).
* The download catalog: ``POST /xapi/archive/downloadwithsize`` (and ``/download``),
  ``GET /xapi/archive/download/{id}/xml`` (the "Catalog XML" the Desktop Client reads)
  and ``GET /xapi/archive/download/{id}/zip``.
"""

from __future__ import annotations

import asyncio
import email.utils
import io
import json
import re
import sqlite3
import time
import zipfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote
from xml.etree import ElementTree as ET

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import AsyncIterablePayload
from aiohttp.web_request import BaseRequest

from xnat_tui.sandbox.errors import xnat_error
from xnat_tui.sandbox.keys import FAULTS, STORE
from xnat_tui.sandbox.permissions import User, can_read, request_user
from xnat_tui.sandbox.store import Store

CHUNK = 1 << 20
CATALOG_NS = "http://nrg.wustl.edu/catalog"

# SecureResource.buildMediaType: these extensions get their own type, the rest
# (DICOM's .dcm included) application/octet-stream.
_MEDIA_TYPES = {
    "bmp": "image/bmp",
    "gif": "image/gif",
    "html": "text/html",
    "htm": "text/html",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "pdf": "application/pdf",
    "png": "image/png",
    "svg": "image/svg+xml",
    "tif": "image/tiff",
    "tiff": "image/tiff",
    "txt": "text/plain",
    "xml": "text/xml",
}


def media_type(name: str) -> str:
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return _MEDIA_TYPES.get(ext, "application/octet-stream")


def _range(header: str, size: int) -> tuple[int, int] | None:
    """``bytes=N-`` or ``bytes=N-M`` → (first, last) inclusive; None if unusable."""
    match = re.fullmatch(r"\s*bytes=(\d+)-(\d*)\s*", header)
    if not match:
        return None
    first = int(match.group(1))
    last = int(match.group(2)) if match.group(2) else size - 1
    if first >= size or last < first:
        return None
    return first, min(last, size - 1)


async def _read_chunks(path: Path, start: int, length: int) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    fh = await loop.run_in_executor(None, path.open, "rb")
    try:
        await loop.run_in_executor(None, fh.seek, start)
        left = length
        while left > 0:
            chunk = await loop.run_in_executor(None, fh.read, min(CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk
    finally:
        fh.close()


async def _cut_after(
    request: web.Request, source: AsyncIterator[bytes], limit: int
) -> AsyncIterator[bytes]:
    """Pass ``limit`` bytes through, then drop the connection (a network fault)."""
    sent = 0
    async for chunk in source:
        if sent + len(chunk) >= limit:
            yield chunk[: max(0, limit - sent)]
            await asyncio.sleep(0)
            transport = request.transport
            if transport is not None:
                transport.abort()
            raise asyncio.CancelledError
        sent += len(chunk)
        yield chunk


def _should_cut(request: web.Request) -> bool:
    faults = request.app[FAULTS]
    cut = faults.config.cut
    if not cut or not faults.applies_to(request.path) or not faults.roll(cut):
        return False
    faults.stats["cut"] += 1
    return True


LOGIN_PAGE = (
    "<!DOCTYPE html><html><head><title>XNAT Login</title></head>"
    "<body><form action='/login'>Please log in.</form></body></html>"
)


def _html_instead(request: web.Request) -> web.Response | None:
    """The ``html`` fault: a 200 login page where the data should be (issue E.3)."""
    faults = request.app[FAULTS]
    rate = faults.config.html
    if not rate or not faults.applies_to(request.path) or not faults.roll(rate):
        return None
    faults.stats["html"] += 1
    return web.Response(text=LOGIN_PAGE, content_type="text/html")


def _header_safe(name: str) -> str:
    return "".join(c if c.isprintable() and c not in '"\\' else "_" for c in name)


def file_response(request: web.Request, path: Path, name: str) -> web.StreamResponse:
    """One archived file, as ``SecureResource.representFile`` answers (§A.3)."""
    page = _html_instead(request)
    if page is not None:
        return page
    stat = path.stat()
    size = stat.st_size
    base = name.rsplit("/", 1)[-1]
    headers = {
        "Content-Type": media_type(base),
        "Last-Modified": email.utils.formatdate(stat.st_mtime, usegmt=True),
        # A name may hold characters no header can (control characters, quotes).
        "Content-Disposition": f'attachment; filename="{_header_safe(base)}";',
    }
    status, start, length = 200, 0, size
    wanted = request.headers.get("Range", "")
    if wanted and request.app[FAULTS].config.ranges:
        span = _range(wanted, size)
        if span is not None:
            start, last = span
            status, length = 206, last - start + 1
            headers["Content-Range"] = f"bytes {start}-{last}/{size}"
        else:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
    headers["Content-Length"] = str(length)
    if request.method == "HEAD":
        return web.Response(status=status, headers=headers)
    if length and _should_cut(request):
        body = _cut_after(request, _read_chunks(path, start, length), length // 2)
        return web.Response(status=status, headers=headers, body=AsyncIterablePayload(body))
    return _SentFile(path, start, length, status=status, headers=headers)


class _SentFile(web.StreamResponse):
    """A file's bytes handed to the kernel with sendfile(2), as Tomcat does for a large
    static body: never copied through Python (most of the sandbox's CPU per file GET was
    reading chunks in threads and copying them into the socket)."""

    def __init__(
        self, path: Path, start: int, length: int, *, status: int, headers: dict[str, str]
    ) -> None:
        super().__init__(status=status, headers=headers)
        self._file = (path, start, length)

    async def prepare(self, request: BaseRequest) -> AbstractStreamWriter | None:
        path, start, length = self._file
        loop = asyncio.get_running_loop()
        # Opened on the loop: a local file opens in microseconds, and a hand-off to a
        # thread and back cost more than the rest of the answer's Python together.
        fh = path.open("rb")
        try:
            writer = await super().prepare(request)
            transport = request.transport
            if transport is None:
                raise ConnectionResetError("the client went away")
            if length:
                await loop.sendfile(transport, fh, start, length)
            await super().write_eof()
            return writer
        finally:
            fh.close()


# ---- zips ----------------------------------------------------------------------------


class _Sink(io.RawIOBase):
    """An unseekable buffer zipfile writes into; drained after every entry."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        chunk = bytes(data)  # type: ignore[call-overload]
        self._parts.append(chunk)
        return len(chunk)

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


@dataclass(frozen=True)
class ZipMember:
    name: str
    path: Path


async def _zip_stream(entries: Sequence[ZipMember], deflate: bool) -> AsyncIterator[bytes]:
    sink = _Sink()
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    archive = zipfile.ZipFile(sink, "w", compression=method, allowZip64=True)

    def add(entry: ZipMember) -> bytes:
        # Read whole, as ZipUtils.addEntry does for STORED: a real CRC for each entry.
        data = entry.path.read_bytes()
        info = zipfile.ZipInfo(entry.name, time.localtime(entry.path.stat().st_mtime)[:6])
        info.compress_type = method
        archive.writestr(info, data)
        return sink.take()

    for entry in entries:
        yield await asyncio.to_thread(add, entry)
    archive.close()
    yield sink.take()


def zip_response(
    request: web.Request, entries: Sequence[ZipMember], download_name: str
) -> web.StreamResponse:
    """A generated zip: streamed, chunked, no Content-Length (ZipRepresentation)."""
    if not entries:
        if request.query.get("accept-not-found", "").lower() == "true":
            return web.Response(status=204)
        raise xnat_error(404, "")
    page = _html_instead(request)
    if page is not None:
        return page
    deflate = request.query.get("compression", "0") not in ("", "0")
    headers = {
        "Content-Type": "application/zip",
        "Content-Disposition": f'attachment; filename="{download_name}";',
    }
    body: AsyncIterator[bytes] = _zip_stream(entries, deflate)
    if _should_cut(request):
        size = sum(e.path.stat().st_size for e in entries)
        body = _cut_after(request, body, max(1, size // 2))
    response = web.Response(headers=headers, body=AsyncIterablePayload(body))
    response.enable_chunked_encoding()
    return response


_SCAN_TYPE_REST = re.compile(r"\W")
_IMPROVED = re.compile(r'[/\\:*?"<>|]')
_CATALOG_TYPE = re.compile(r"[\\/(), ]")


def zip_entry_name(
    structure: str,
    session_label: str,
    scan: sqlite3.Row | None,
    resource_label: str,
    relpath: str,
) -> str:
    """Where a file goes in a REST zip (FileList.buildZipRepresentation, §A.2)."""
    if scan is None:
        if structure == "improved":
            return f"resources/{resource_label}/{relpath}"
        return f"{session_label}/resources/{resource_label}/files/{relpath}"
    scan_id, scan_type = str(scan["scan_id"]), str(scan["type"])
    if structure == "simplified":
        return f"{session_label}/scans/{scan_id}/{resource_label}/{relpath}"
    if structure == "improved":
        folder = f"{scan_id}_{_IMPROVED.sub('_', scan_type)}" if scan_type else scan_id
        return f"scans/{folder}/{resource_label}/{relpath}"
    folder = f"{scan_id}-{_SCAN_TYPE_REST.sub('_', scan_type)}" if scan_type else scan_id
    return f"{session_label}/scans/{folder}/resources/{resource_label}/files/{relpath}"


# ---- scan selectors ------------------------------------------------------------------


def select_scans(store: Store, experiment_id: str, selector: str) -> list[sqlite3.Row]:
    """``{S}`` of a scan route: an ID, a type, a comma list, ``ALL``/``*``, or ``NULL``.

    ``[SLASH]`` and ``[COMMA]`` stand for ``/`` and ``,`` inside a type
    (XNATTemplate.java:211-262).
    """
    scans = store.list_scans(experiment_id)
    if selector in ("ALL", "*"):
        return scans
    chosen: list[sqlite3.Row] = []
    for raw in selector.split(","):
        part = raw.replace("[SLASH]", "/").replace("[COMMA]", ",")
        for scan in scans:
            if scan in chosen:
                continue
            if part == "NULL" and not scan["type"]:
                chosen.append(scan)
            elif scan["scan_id"] == part or scan["type"] == part:
                chosen.append(scan)
    return chosen


# ---- the download catalog (/xapi/archive/download...) ------------------------------------


@dataclass
class Catalog:
    owner: str
    xml: str
    entries: list[tuple[str, Path, str]]  # (entry name, file, path under the resource)


CATALOGS: web.AppKey[dict[str, Catalog]] = web.AppKey("download_catalogs")


def _strings(body: dict[str, object], key: str) -> list[str]:
    value = body.get(key) or body.get(key + "[]") or []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value] if isinstance(value, list) else []


def build_catalog(
    store: Store, user: User, body: dict[str, object], catalog_id: str
) -> tuple[Catalog, int]:
    """The catalog of a download request and its size (DefaultCatalogService)."""
    projects = _strings(body, "projectIds") or _strings(body, "projectId")
    sessions = _strings(body, "sessions")
    scan_types = _strings(body, "scan_types")
    formats = _strings(body, "scan_formats")
    options = _strings(body, "options")
    simplified = "simplified" in options
    root = ET.Element(
        f"{{{CATALOG_NS}}}Catalog", {"ID": catalog_id, "description": ", ".join(options)}
    )
    sets = ET.SubElement(root, f"{{{CATALOG_NS}}}sets")
    entries: list[tuple[str, Path, str]] = []
    size = 0
    for item in sessions:
        parts = item.split(":")
        if len(parts) != 4:
            raise xnat_error(400, f"Invalid session identifier: {item}")
        project, subject_label, label, experiment_id = parts
        experiment = store.get_experiment(experiment_id)
        if experiment is None or not can_read(user, experiment["project"]):
            raise xnat_error(403, f"The user {user.login} cannot access the session {item}")
        if project not in projects and experiment["project"] not in projects:
            raise xnat_error(403, f"The session {item} is not in the requested projects")
        described = f"Project: {project}, subject: {subject_label}, label: {label}"
        session_set = ET.SubElement(
            sets, f"{{{CATALOG_NS}}}entrySet", {"ID": experiment_id, "description": described}
        )
        inner = ET.SubElement(session_set, f"{{{CATALOG_NS}}}sets")
        raw = ET.SubElement(
            inner, f"{{{CATALOG_NS}}}entrySet", {"ID": "RAW", "description": f"{described} RAW"}
        )
        listed = ET.SubElement(raw, f"{{{CATALOG_NS}}}entries")
        for scan in store.list_scans(experiment_id):
            if scan["type"] not in scan_types:
                continue
            for res in store.list_resources(experiment_id, int(scan["pk"])):
                if res["label"] not in formats:
                    continue
                if simplified:
                    name = f"{label}/{scan['scan_id']}/{res['label']}"
                else:
                    kind = _CATALOG_TYPE.sub("_", str(scan["type"]))
                    name = f"{label}/scans/{scan['scan_id']}-{kind}/resources/{res['label']}"
                if "projectIncludedInPath" in options:
                    name = f"{project}/{subject_label}/{name}"
                elif "subjectIncludedInPath" in options:
                    name = f"{subject_label}/{name}"
                uri = (
                    f"/archive/experiments/{experiment_id}/scans/{scan['scan_id']}"
                    f"/resources/{quote(str(res['label']), safe='')}/files"
                )
                ET.SubElement(listed, f"{{{CATALOG_NS}}}entry", {"URI": uri, "name": name})
                for f in store.list_files(int(res["id"])):
                    entries.append((name, store.file_path(f), str(f["name"])))
                    size += int(f["size"])
    ET.register_namespace("cat", CATALOG_NS)
    xml = '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")
    return Catalog(user.login, xml, entries), size


async def _catalog_request(request: web.Request) -> tuple[str, int]:
    user = request_user(request)
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise xnat_error(400, "The request body must be JSON.") from None
    if not isinstance(body, dict):
        raise xnat_error(400, "The request body must be a JSON object.")
    if not (_strings(body, "projectIds") or _strings(body, "projectId")):
        raise web.HTTPNoContent()
    catalog_id = f"{user.login}-{time.strftime('%Y%m%d_%H%M%S')}"
    catalog, size = build_catalog(request.app[STORE], user, body, catalog_id)
    request.app[CATALOGS][catalog_id] = catalog
    return catalog_id, size


async def post_download_with_size(request: web.Request) -> web.Response:
    catalog_id, size = await _catalog_request(request)
    payload = {"id": catalog_id, "size": str(size), "resourcesOfUnknownSize": "0"}
    return web.Response(text=json.dumps(payload), content_type="application/json")


async def post_download(request: web.Request) -> web.Response:
    catalog_id, _ = await _catalog_request(request)
    return web.Response(text=catalog_id, content_type="text/plain")


def _own_catalog(request: web.Request) -> tuple[str, Catalog]:
    user = request_user(request)
    catalog_id = request.match_info["id"]
    catalog = request.app[CATALOGS].get(catalog_id)
    if catalog is None or catalog.owner != user.login:
        raise xnat_error(404, f"No catalog with the ID {catalog_id} was found.")
    return catalog_id, catalog


async def get_catalog_xml(request: web.Request) -> web.Response:
    catalog_id, catalog = _own_catalog(request)
    return web.Response(
        text=catalog.xml,
        content_type="application/xml",
        headers={"Content-Disposition": f'attachment; filename="{catalog_id}.xml"'},
    )


async def get_catalog_zip(request: web.Request) -> web.StreamResponse:
    catalog_id, catalog = _own_catalog(request)
    entries = [ZipMember(f"{name}/{rel}", path) for name, path, rel in catalog.entries]
    response = zip_response(request, entries, f"{catalog_id}.zip")
    # CatalogZipStreamingResponseBody: a plain attachment name, no trailing ';'.
    response.headers["Content-Disposition"] = f'attachment; filename="{catalog_id}.zip"'
    return response


def setup(app: web.Application) -> None:
    app[CATALOGS] = {}
    app.router.add_post("/xapi/archive/downloadwithsize", post_download_with_size)
    app.router.add_post("/xapi/archive/download", post_download)
    app.router.add_get("/xapi/archive/download/{id}/xml", get_catalog_xml)
    app.router.add_get("/xapi/archive/download/{id}/zip", get_catalog_zip)
