"""Import service ``POST /data/services/import`` (xnat-api.md §5).

The request body is streamed to a temporary file under the data dir in fixed-size
chunks (never held in memory), then read entry by entry in a worker thread
(``importer.extract``) and placed into the prearchive on the sandbox's single writer
thread (``importer.commit``, then build/archive when asked; see ``writer``).
Parameters, handler selection, error statuses and messages
follow XNAT's ``Importer`` and ``DicomZipImporter``.

Unlike XNAT, reading is bounded by the server's ``ImportLimits`` (``limits``: entry,
request and ratio sizes, nesting depth), and a running import stops within one chunk
when its request is cancelled or the server shuts down (``ImportGuards.stop_all`` on
``on_shutdown``), answering ``503``. ``remove_leftovers(data_dir)`` (run at start-up)
deletes the ``tmp/upload-*`` and ``tmp/import-*`` a killed server left behind.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiofiles
from aiohttp import web

from xnat_tui.sandbox.archiver import (
    UNASSIGNED_ARCHIVE,
    ArchiveError,
    ArchiveOptions,
    anonymizer_for,
    archive,
)
from xnat_tui.sandbox.autobuild import build
from xnat_tui.sandbox.errors import xnat_error
from xnat_tui.sandbox.filters import FilterConfigError, SeriesFilter, parse_filter
from xnat_tui.sandbox.importer import (
    Extraction,
    ImportContext,
    ImportError_,
    ImportOptions,
    ProjectView,
    commit,
    extract,
    extract_single,
    staging_dir,
)
from xnat_tui.sandbox.keys import FAULTS, IMPORTS, SETTINGS, STORE
from xnat_tui.sandbox.limits import ImportCancelled, ImportGuards
from xnat_tui.sandbox.permissions import User, can_read, request_user
from xnat_tui.sandbox.prearchive_store import UNASSIGNED, PrearchiveStore, prearchive_of
from xnat_tui.sandbox.routing import add_route
from xnat_tui.sandbox.store import Store
from xnat_tui.sandbox.tables import parse_bool
from xnat_tui.sandbox.writer import WRITER

log = logging.getLogger(__name__)

_CHUNK = 256 * 1024
# RequestUtil: content types whose body *is* the uploaded file, and their extensions.
_UPLOAD_TYPES = {
    "application/zip": ".zip",
    "application/x-gtar": ".tar.gz",
    "application/x-tar": ".tar",
    "application/x-gzip": ".gzip",
    "application/dicom": ".dcm",
    "application/octet-stream": "",
}
KNOWN_HANDLERS = ("DICOM-zip", "gradual-DICOM", "SI", "XAR", "inbox", "automation")
_IMPLEMENTED = ("DICOM-zip", "gradual-DICOM", "SI")
_IN_BODY_SIZE = (
    "In-body File posts must include the file directly as the body of the message. In "
    "this case, the request entity size is {n} but the media type is not application/zip "
    "(i.e. streaming compressed upload)."
)
_BAD_OVERWRITE = "Overwrite flag was not set to a valid option. ('append' or 'delete')"
_IN_BODY_MULTIPART = (
    "In-body File posts must include the file directly as the body of the message "
    "(not as part of multi-part form data)."
)
_DEST = re.compile(
    r"^/(?P<kind>archive|prearchive)(?:/projects/(?P<p>[^/]+)"
    r"(?:/(?P<a>[^/]+)(?:/(?P<b>[^/]+)(?:/(?P<c>[^/]+)(?:/(?P<d>[^/]+))?)?)?)?)?/?$"
)


@dataclass
class Upload:
    path: Path | None = None
    name: str = ""
    files: int = 0
    params: dict[str, str] = field(default_factory=dict)


def _is_upload_type(ctype: str) -> bool:
    return ctype in _UPLOAD_TYPES or ctype.startswith(("text/", "image/"))


async def _save_body(request: web.Request, path: Path) -> None:
    async with aiofiles.open(path, "wb") as out:
        async for chunk in request.content.iter_chunked(_CHUNK):
            await out.write(chunk)


async def read_upload(request: web.Request, tmp: Path) -> Upload:
    """Parameters from query + form fields, and at most one uploaded file on disk."""
    # First value wins, as Restlet's getFirstValue.
    up = Upload(params={key: request.query.getone(key) for key in request.query})
    raw_type = request.headers.get("Content-Type", "")
    ctype = raw_type.split(";")[0].strip().lower()
    inbody = parse_bool(up.params.get("inbody"))
    remainder = request.match_info.get("name", "")
    if ctype.startswith("multipart/"):
        if inbody:
            raise xnat_error(406, _IN_BODY_MULTIPART)
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                break
            filename = getattr(part, "filename", None)
            name = getattr(part, "name", None) or ""
            if filename:
                up.files += 1
                if up.files == 1:
                    up.path = tmp
                    up.name = filename.replace("\\", "/").rsplit("/", 1)[-1]
                    async with aiofiles.open(tmp, "wb") as out:
                        while chunk := await part.read_chunk(_CHUNK):  # type: ignore[union-attr]
                            await out.write(chunk)
                else:
                    while await part.read_chunk(_CHUNK):  # type: ignore[union-attr]
                        pass
            else:
                value = await part.text()  # type: ignore[union-attr]
                if name == "reference":
                    raise xnat_error(400, "The reference parameter is not supported here.")
                up.params.setdefault(name, value)
        return up
    if ctype == "application/x-www-form-urlencoded":
        form = await request.post()
        for key in form:
            value = form.getone(key)
            if isinstance(value, str):
                up.params.setdefault(key, value)
        return up
    if inbody or _is_upload_type(ctype):
        length = request.content_length
        if (length is None or length < 1) and ctype != "application/zip":
            raise xnat_error(400, _IN_BODY_SIZE.format(n=-1 if length is None else length))
        up.path = tmp
        up.files = 1
        up.name = remainder or "upload" + _UPLOAD_TYPES.get(ctype, "")
        await _save_body(request, tmp)
    return up


def parse_dest(dest: str) -> dict[str, str]:
    """``UriParserUtils.parseURI`` for the ``dest`` parameter → its properties."""
    path = re.sub(r"^/(data|REST)(?=/)", "", dest.strip())
    m = _DEST.match(path)
    if m is None:
        raise ValueError(dest)
    props = {"kind": m["kind"]}
    if m["p"]:
        props["PROJECT_ID"] = m["p"]
    if m["kind"] == "archive":
        if m["a"] is not None:
            if m["a"] != "subjects" or m["b"] is None:
                raise ValueError(dest)
            props["SUBJECT_ID"] = m["b"]
            if m["c"] is not None:
                if m["c"] != "experiments" or m["d"] is None:
                    raise ValueError(dest)
                props["EXPT_ID"] = m["d"]
    else:
        if m["c"] is not None:
            raise ValueError(dest)
        if m["a"]:
            props["PREARC_TIMESTAMP"] = m["a"]
        if m["b"]:
            props["PREARC_SESSION_FOLDER"] = m["b"]
    return props


def import_context(store: Store, user: User) -> ImportContext:
    """Snapshot of the projects the user may read, with their filters (§7.4)."""
    readable: dict[str, ProjectView] = {}
    for row in store.list_projects():
        pid = str(row["id"])
        if can_read(user, pid):
            readable[pid] = ProjectView(pid, int(row["prearchive_code"]), _filter(store, pid))
    aliases: dict[str, str] = {}
    for pid in readable:
        for alias in store.project_aliases(pid):
            aliases[alias] = pid
    return ImportContext(readable, aliases, _filter(store, None), anonymizer_for(store, None))


def _filter(store: Store, project: str | None) -> SeriesFilter | None:
    row = store.get_config("seriesImportFilter", "config", project)
    if row is None or str(row["status"]) == "disabled":
        return None
    try:
        return parse_filter(str(row["contents"]))
    except FilterConfigError as exc:
        log.warning("ignoring series import filter of %s: %s", project or "site", exc)
        return None


def _options(params: dict[str, str]) -> ImportOptions:
    def strict_true(key: str) -> bool:
        return params.get(key, "").lower() == "true"

    return ImportOptions(
        project=params.get("PROJECT_ID") or None,
        subject=params.get("SUBJECT_ID"),
        label=params.get("EXPT_LABEL") or None,
        timestamp=params.get("PREARC_TIMESTAMP") or None,
        folder=params.get("PREARC_SESSION_FOLDER") or None,
        visit=params.get("VISIT", ""),
        subtype=params.get("SUBTYPE", ""),
        source=params.get("SOURCE", ""),
        timezone=params.get("TIMEZONE", ""),
        prevent_anon=strict_true("prevent_anon"),
        prevent_auto_commit=strict_true("prevent_auto_commit"),
        auto_archive=auto_archive_requested(params),
        rename=strict_true("rename"),
        ignore_unparsable=strict_true("Ignore-Unparsable"),  # PrearcUtils.parseParam
    )


def auto_archive_requested(params: dict[str, str]) -> bool:
    """``GradualDicomImporter.isAutoArchive``: ``AA`` or ``auto-archive`` = true."""
    return params.get("AA", "").lower() == "true" or params.get("auto-archive", "").lower() == (
        "true"
    )


def merge_flags(params: dict[str, str]) -> tuple[bool, bool]:
    """``Importer.parseOverrideValue`` → (overrideExceptions, allowSessionMerge)."""
    value = params.get("overwrite")
    if value is None:
        return False, False
    lower = value.lower()
    if lower in ("delete", "override"):
        return True, True
    return False, True


def wrap(uri: str) -> str:
    return uri if uri.startswith("/data/") else "/data" + uri


def respond(uris: list[str], fmt: str | None) -> web.Response:
    """``Importer.represent``: text/uri-list by default; ``format=txt|html``."""
    fmt = (fmt or "").lower()
    if fmt in ("txt", "text", "text/plain"):
        body = wrap(uris[0]) if len(uris) == 1 else "".join(wrap(u) + "\r\n" for u in uris)
        return web.Response(text=body, content_type="text/plain")
    if fmt in ("html", "text/html"):
        return web.Response(text=_html_summary(uris), content_type="text/html")
    body = "".join(wrap(u) + "\r\n" for u in uris)
    return web.Response(body=body.encode(), content_type="text/uri-list")


def _html_summary(uris: list[str]) -> str:
    pre = [u for u in uris if u.startswith("/prearchive")]
    arc = [u for u in uris if u.startswith("/archive")]
    out = ["<html><head></head><body class='yui-skin-sam'>"]
    if pre or arc:
        out.append("The following sessions have been uploaded:<br>")
        if pre:
            out.append(f"<br>A total of {len(pre)} session(s) have been moved to pre-archive.<br>")
        for u in arc:
            parts = u.split("/")
            out.append(
                f"<br>&nbsp;&nbsp;&nbsp;<a target='_parent' href='/data{html.escape(u)}'>"
                f"{html.escape(parts[7] if len(parts) > 7 else u)}</a> has been archived for "
                f"project {html.escape(parts[3] if len(parts) > 3 else '')}"
            )
        out.append("</body></html>")
    else:
        out.append("ERROR: The process could not be completed due to exceptions - <br>")
        for u in uris:
            out.append(f"<br><span style='color:#DD0000'>{html.escape(u)}</span>")
        out.append("Your data may be available in the prearchive for your review.</body></html>")
    return "".join(out)


async def handle_import(request: web.Request) -> web.StreamResponse:
    fmt = request.query.get("format")
    try:
        return await _handle_import(request)
    except web.HTTPException as exc:
        if (fmt or "").lower() == "html" and exc.status >= 400:
            # Importer.respondToException: an HTML request gets the message in a page.
            message = getattr(exc, "message", exc.reason)
            return web.Response(text=_html_summary([str(message)]), content_type="text/html")
        raise


async def _handle_import(request: web.Request) -> web.StreamResponse:
    user = request_user(request)
    store = request.app[STORE]
    tmp_root = store.data_dir / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    upload_path = tmp_root / f"upload-{uuid.uuid4().hex}"
    try:
        up = await read_upload(request, upload_path)
        return await _import(request, store, user, up)
    finally:
        upload_path.unlink(missing_ok=True)


async def _import(request: web.Request, store: Store, user: User, up: Upload) -> web.Response:
    params = up.params
    handler = params.get("import-handler")
    if "src" in params:
        # Importer.retrievePrestoreFile: the sandbox keeps no user cache, so every
        # well-formed src names a file that does not exist.
        if not re.match(r"^/user/cache/resources/[^/]+/files/.+", params["src"]):
            raise xnat_error(400, "src uri is invalid.")
        raise xnat_error(404, "Unknown src file.")
    if up.files == 0:
        raise xnat_error(400, "Unable to identify upload format.")
    if up.files > 1:
        raise xnat_error(400, "Importer is limited to one uploaded resource at a time.")
    if "Ignore-Unparsable" not in params and params.get("action", "").lower() == "commit":
        params["Ignore-Unparsable"] = "true"
    if params.get("prearchive_code") == "1":
        if "overwrite" in params:
            # XNAT's check `!delete || !append` is always true (xnat-api.md §5.2).
            raise xnat_error(400, _BAD_OVERWRITE)
        row = store.resolve_project(params.get("project", "") or params.get("PROJECT_ID", ""))
        code = int(row["prearchive_code"]) if row is not None else 0
        params["overwrite"] = "delete" if code == 5 else "append"
    if handler is None:
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        handler = "gradual-DICOM" if ctype == "application/dicom" else "DICOM-zip"
    if handler not in KNOWN_HANDLERS:
        raise xnat_error(404, f"Unknown importer implementation specified: {handler}")
    if handler not in _IMPLEMENTED:
        raise xnat_error(501, f"The sandbox does not implement the {handler} importer.")
    assert up.path is not None
    return await _dicom_import(request, store, user, up, handler)


async def _dicom_import(
    request: web.Request, store: Store, user: User, up: Upload, handler: str
) -> web.Response:
    params = dict(up.params)
    dest = params.get("dest")
    named_prearchive = False
    if dest:
        try:
            props = parse_dest(dest)
        except ValueError:
            raise xnat_error(400, "Parameter dest format error") from None
        params["action"] = "commit"
        archive_dest = props.pop("kind") == "archive"
        params["AA"] = params["auto-archive"] = "true" if archive_dest else "false"
        expt = props.pop("EXPT_ID", None)
        params.update(props)
        if expt:
            row = store.find_experiment(props.get("PROJECT_ID", ""), expt)
            params["EXPT_LABEL"] = str(row["label"]) if row is not None else expt
        named_prearchive = "PREARC_SESSION_FOLDER" in props
    for src, dst in (
        ("project", "PROJECT_ID"),
        ("subject", "SUBJECT_ID"),
        ("session", "EXPT_LABEL"),
    ):
        if src in params:
            params[dst] = params[src]
    opts = _options(params)
    opts.single_study = handler == "DICOM-zip" and named_prearchive
    ctx = import_context(store, user)
    pre = prearchive_of(store)
    staging = staging_dir(store.data_dir)
    assert up.path is not None
    fn = extract_single if handler == "gradual-DICOM" else extract
    guards = request.app[IMPORTS]
    guard = guards.open(
        request.app[SETTINGS].import_limits,
        upload_size=up.path.stat().st_size,
        pause=request.app[FAULTS].import_pause(request.path),
    )
    try:
        extraction: Extraction = await asyncio.to_thread(
            fn, up.path, up.name, ctx, opts, staging, guard
        )
    except BaseException as exc:
        # The worker stops at its next chunk and removes what it staged itself.
        guard.cancel()
        await asyncio.to_thread(shutil.rmtree, staging, True)
        if isinstance(exc, ImportCancelled):
            message = "The server is shutting down; the upload was not imported."
            raise xnat_error(503, message) from None
        raise
    finally:
        guards.close(guard)
    # The writer job removes the staging folder itself: were this request cancelled
    # meanwhile, removing it here would pull staged files from under the running job.
    uris = await request.app[WRITER].run(
        _place, store, pre, user, extraction, opts, params, handler, staging
    )
    return respond(uris, params.get("format"))


def _place(
    store: Store,
    pre: PrearchiveStore,
    user: User,
    extraction: Extraction,
    opts: ImportOptions,
    params: dict[str, str],
    handler: str,
    staging: Path,
) -> list[str]:
    """Phase 2 on the writer thread: prearchive rows and files, then build/archive."""
    try:
        uris = commit(pre, extraction, opts)
    except ImportError_ as exc:
        raise xnat_error(exc.status, exc.message) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if extraction.failure is not None:
        raise xnat_error(extraction.failure.status, extraction.failure.message)
    if not uris and extraction.last_ignored is not None:
        if handler == "SI":
            raise xnat_error(400, "Upload did not include parsable files for session generation.")
        raise xnat_error(extraction.last_ignored.status, extraction.last_ignored.message)
    commit_requested = params.get("action", "").lower() == "commit" or handler == "SI"
    if commit_requested and uris:
        uris = _build_and_archive(store, pre, user, uris, params, handler)
    return uris


def _build_and_archive(
    store: Store,
    pre: PrearchiveStore,
    user: User,
    uris: list[str],
    params: dict[str, str],
    handler: str,
) -> list[str]:
    """``DicomZipImporter.xmlBuild``: build each session, archive when AA is set."""
    override, allow_merge = merge_flags(params)
    auto = auto_archive_requested(params)
    archived: list[str] = []
    errors: list[tuple[str, ArchiveError]] = []
    for uri in uris:
        _, _, _, project, ts, folder = uri.split("/", 5)
        s = pre.find(project, ts, folder)
        if s is None:
            continue
        built = build(pre, s)
        if not auto:
            continue
        if project == UNASSIGNED:
            errors.append((uri, ArchiveError(400, UNASSIGNED_ARCHIVE)))
            continue
        opts = ArchiveOptions(
            user=user.login,
            override=override,
            allow_merge=allow_merge or built.autoarchive != "Manual",
            overwrite_files=params.get("overwrite_files", "").lower() == "true",
        )
        try:
            archived.append(archive(store, pre, built, opts))
        except ArchiveError as exc:
            errors.append((uri, exc))
    if errors:
        failed_uri, first = errors[0]
        if handler == "SI":
            raise xnat_error(first.status, first.message)
        raise xnat_error(
            400,
            f"unable to archive for the Prearchive session {wrap(failed_uri)}: "
            f"Failed to archive {len(errors)} of {len(uris)} session(s): {first.message}",
        )
    return archived if auto else uris


_LEFTOVER = re.compile(r"\A(upload|import)-[0-9a-f]{32}\Z")


def remove_leftovers(data_dir: Path) -> int:
    """Delete the upload bodies and staging folders of imports a kill cut off.

    Only names this module creates (``upload-<uuid hex>``, ``import-<uuid hex>``) directly
    under ``<data_dir>/tmp`` are touched. Returns how many were removed."""
    tmp_root = data_dir / "tmp"
    try:
        entries = list(tmp_root.iterdir())
    except OSError:
        return 0
    removed = 0
    for path in entries:
        if not _LEFTOVER.match(path.name):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed += not path.exists()
    if removed:
        log.info("removed %d leftover temporary upload(s) under %s", removed, tmp_root)
    return removed


async def _remove_leftovers(app: web.Application) -> None:
    await asyncio.to_thread(remove_leftovers, app[STORE].data_dir)


async def _stop_imports(app: web.Application) -> None:
    app[IMPORTS].stop_all()


async def method_not_allowed(request: web.Request) -> web.StreamResponse:
    raise xnat_error(405, "Method Not Allowed")


def setup(app: web.Application) -> None:
    """Attach the import service routes to the sandbox application."""
    app[IMPORTS] = ImportGuards()
    app.on_startup.append(_remove_leftovers)
    app.on_shutdown.append(_stop_imports)
    for template in ("/services/import", "/services/import/{name:.+}"):
        add_route(app, "POST", template, handle_import)
        add_route(app, "GET", template, method_not_allowed)
        add_route(app, "PUT", template, method_not_allowed)
