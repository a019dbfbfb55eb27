"""Prearchive and archive-service routes (xnat-api.md §6).

* ``GET /data/prearchive[/projects[/P[,P2]]]`` — the 19-column listing (no
  totalRecords); ``?tag=`` for admins.
* ``/data/prearchive/projects/P/TS/FOLDER`` — GET (session document, ``format=json``
  one-row table, ``format=zip``), POST ``action=commit|build|move|reset-status|
  set-status``, DELETE; sub-resources ``scans``, ``scans/S/resources``,
  ``.../resources/R/files[/name]``, ``resources``, ``logs``, ``logs/last``.
* ``POST /data/services/prearchive/move|delete|rebuild`` and ``/data/services/archive``.

Permissions: a project's prearchive needs edit rights (owner, member, admin);
Unassigned is for site admins only. The auto-build task is registered here too.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from aiohttp import web
from multidict import MultiDict
from stream_zip import NO_COMPRESSION_64, stream_zip

from xnat_tui.sandbox.archiver import (
    UNASSIGNED_ARCHIVE,
    ArchiveError,
    ArchiveOptions,
    archive,
    scans_of,
)
from xnat_tui.sandbox.autobuild import build, start_autobuild
from xnat_tui.sandbox.errors import xnat_error
from xnat_tui.sandbox.import_routes import merge_flags, parse_dest, wrap
from xnat_tui.sandbox.keys import STORE
from xnat_tui.sandbox.permissions import User, can_edit, request_user
from xnat_tui.sandbox.prearchive_store import (
    CODE_NAMES,
    COLUMNS,
    STATUSES,
    UNASSIGNED,
    PrearchiveStore,
    PrearcSession,
    java_timestamp,
    prearchive_of,
)
from xnat_tui.sandbox.routing import add_route
from xnat_tui.sandbox.store import Store
from xnat_tui.sandbox.tables import Table, render_table
from xnat_tui.sandbox.writer import WRITER

_LOCKED = {
    "BUILDING",
    "ARCHIVING",
    "MOVING",
    "DELETING",
    "SEPARATING",
    "QUEUED_ARCHIVING",
    "QUEUED_BUILDING",
    "QUEUED_DELETING",
    "QUEUED_MOVING",
    "QUEUED_SEPARATING",
}
_NO_ACCESS = "The current user does not have access to the requested project: "
_MODIFY_DENIED = "Unable to modify session data for destination project."
_SRC = re.compile(r"^(?:/data|/REST)?/prearchive/projects/([^/]+)/([^/]+)/([^/]+)/?$")
_NOT_BUILT = (
    "The named session exists, but its XNAT session document is not available. The "
    "session is likely invalid or incomplete."
)


def _pre(request: web.Request) -> tuple[Store, PrearchiveStore]:
    store = request.app[STORE]
    return store, prearchive_of(store)


def _locked(s: PrearcSession) -> bool:
    return s.status in _LOCKED or s.status.startswith("_")


def may_modify(user: User, project: str) -> bool:
    """Prearchive rights: edit on the project; Unassigned for site admins."""
    if project in ("", UNASSIGNED):
        return user.admin
    return can_edit(user, project)


async def all_params(request: web.Request) -> MultiDict[str]:
    """Query, then form or JSON body parameters (XNAT reads all three)."""
    params: MultiDict[str] = MultiDict(request.query)
    if request.method in ("POST", "PUT") and request.can_read_body:
        ctype = request.content_type
        if ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, str):
                    params.add(key, value)
        elif ctype == "application/json" or ctype.endswith("+json"):
            try:
                body = await request.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                body = None
            if isinstance(body, dict):
                for key, value in body.items():
                    if isinstance(value, str | int | float | bool):
                        params.add(key, str(value))
    return params


def listing(
    request: web.Request, sessions: list[PrearcSession], default: str = "json"
) -> web.Response:
    table = Table.from_dicts(COLUMNS, [s.row() for s in sessions])
    return render_table(request, table, default=default)


# ---- listing ------------------------------------------------------------------------------


async def list_sessions(request: web.Request) -> web.Response:
    user = request_user(request)
    store, pre = _pre(request)
    wanted = request.match_info.get("projects", "")
    tag = request.query.get("tag")
    if tag is not None and not user.admin:
        raise xnat_error(403, "Only site administrators may query the prearchive by tag.")
    if wanted:
        keys: list[str] = []
        for name in [p for p in wanted.split(",") if p]:
            if name == UNASSIGNED:
                if not user.admin:
                    raise xnat_error(403, _NO_ACCESS + name)
                keys.append("")
                continue
            row = store.resolve_project(name)
            if row is None or not can_edit(user, str(row["id"])):
                raise xnat_error(403, _NO_ACCESS + name)
            keys.append(str(row["id"]))
    else:
        keys = [str(r["id"]) for r in store.list_projects() if can_edit(user, str(r["id"]))]
        if user.admin:
            keys.append("")
    return listing(request, pre.sessions(keys, tag))


async def refresh(request: web.Request) -> web.Response:
    user = request_user(request)
    if not user.admin:
        raise xnat_error(403, "Only site administrators may refresh the prearchive.")
    return web.Response(status=200)


# ---- one session ------------------------------------------------------------------------


def session_or_error(request: web.Request, *, modify: bool = True) -> PrearcSession:
    user = request_user(request)
    _, pre = _pre(request)
    project = request.match_info["project"]
    s = pre.find(project, request.match_info["timestamp"], request.match_info["folder"])
    if project != UNASSIGNED and request.app[STORE].get_project(project) is None:
        raise xnat_error(404, f"The requested project {project} does not exist.")
    if not may_modify(user, "" if project == UNASSIGNED else project):
        raise xnat_error(403, _MODIFY_DENIED if modify else f"Unable to read project {project}.")
    if s is None:
        raise xnat_error(404, "Unknown prearchive session.")
    return s


async def get_session(request: web.Request) -> web.StreamResponse:
    s = session_or_error(request, modify=False)
    _, pre = _pre(request)
    fmt = (request.query.get("format") or "").lower()
    if fmt in ("json", "csv", "html"):
        return listing(request, [s])
    if fmt == "zip":
        return await _zip_session(request, pre, s)
    path = pre.xml_path(s)
    if not s.built or not path.exists():
        raise xnat_error(404, _NOT_BUILT)
    return web.Response(text=path.read_text(encoding="utf-8"), content_type="text/xml")


async def _zip_session(
    request: web.Request, pre: PrearchiveStore, s: PrearcSession
) -> web.StreamResponse:
    root = pre.session_dir(s)
    # Walking a session of thousands of files is blocking I/O: off the loop, like the reads.
    paths = await asyncio.to_thread(lambda: sorted(p for p in root.rglob("*") if p.is_file()))

    def members() -> Iterator[tuple[str, datetime, int, Any, Iterator[bytes]]]:
        for p in paths:

            def chunks(path: Any = p) -> Iterator[bytes]:
                with path.open("rb") as fh:
                    while block := fh.read(1 << 16):
                        yield block

            rel = f"{s.folder}/{p.relative_to(root).as_posix()}"
            yield rel, datetime.fromtimestamp(p.stat().st_mtime), 0o600, NO_COMPRESSION_64, chunks()

    resp = web.StreamResponse(
        headers={
            "Content-Type": "application/zip",
            "Content-Disposition": f'attachment; filename="{s.folder}.zip"',
        }
    )
    await resp.prepare(request)
    it = iter(stream_zip(members()))
    while True:
        chunk = await asyncio.to_thread(next, it, None)
        if chunk is None:
            break
        await resp.write(chunk)
    await resp.write_eof()
    return resp


def _uri_list(uri: str, status: int = 200) -> web.Response:
    return web.Response(status=status, body=wrap(uri).encode(), content_type="text/uri-list")


async def post_session(request: web.Request) -> web.Response:
    user = request_user(request)
    store, pre = _pre(request)
    params = await all_params(request)
    action = params.get("action")
    if not action:
        raise xnat_error(
            400, f"No action parameter was specified for the request by user {user.login}"
        )
    s = session_or_error(request)
    return await request.app[WRITER].run(_act, store, pre, s.id, action, params, user)


def _act(
    store: Store,
    pre: PrearchiveStore,
    session_id: int,
    action: str,
    params: MultiDict[str],
    user: User,
) -> web.Response:
    """One session action, on the writer thread (the row is re-read: it may be gone)."""
    s = _current(pre, session_id)
    if action == "commit":
        return _commit(store, pre, s, params, user)
    if action == "build":
        if _locked(s):
            raise xnat_error(409, "session document locked")
        build(
            pre,
            s,
            visit=params.get("VISIT"),
            protocol=params.get("PROTOCOL") or params.get("SUBTYPE"),
            timezone=params.get("TIMEZONE"),
            source=params.get("SOURCE"),
        )
        return _uri_list(s.url)
    if action == "move":
        moved = _move(store, pre, s, params.get("newProject", ""), user)
        return _uri_list(moved.url, status=301)
    if action == "reset-status":
        pre.set_status(s.id, "READY" if s.built and pre.xml_path(s).exists() else "RECEIVING")
        return _uri_list(s.url)
    if action == "set-status":
        status = params.get("status", "")
        if status not in STATUSES:
            raise xnat_error(400, f"Unknown prearchive status: {status}")
        pre.set_status(s.id, status)
        return _uri_list(s.url)
    raise xnat_error(400, f"Unsupported action: {action}")


def _commit(
    store: Store, pre: PrearchiveStore, s: PrearcSession, params: MultiDict[str], user: User
) -> web.Response:
    if _locked(s):
        raise xnat_error(409, "session document locked")
    built = build(
        pre,
        s,
        visit=params.get("VISIT"),
        protocol=params.get("PROTOCOL") or params.get("SUBTYPE"),
        timezone=params.get("TIMEZONE"),
        source=params.get("SOURCE"),
    )
    if not _auto_archive(store, built, params):
        return _uri_list(built.url)
    opts = ArchiveOptions(
        user=user.login,
        allow_merge=True,  # QueueBasedImageCommit(..., overrideExceptions=false, merge=true)
        overwrite_files=params.get("overwrite_files", "").lower() == "true",
    )
    try:
        uri = archive(store, pre, built, opts)
    except ArchiveError as exc:
        raise xnat_error(500, f"FAILED: {exc.message}") from None
    return web.Response(status=301, body=wrap(uri).encode(), content_type="text/uri-list")


def _auto_archive(store: Store, s: PrearcSession, params: MultiDict[str]) -> bool:
    """``PrearcSession.isAutoArchive``: row code, else AA param, else project code ≥ 4."""
    if s.autoarchive in ("AutoArchive", "AutoArchiveOverwrite"):
        return True
    for key in ("AA", "auto-archive"):
        if key in params:
            return params[key].lower() == "true"
    if not s.project:
        return False
    row = store.get_project(s.project)
    return row is not None and int(row["prearchive_code"]) >= 4


def _move(
    store: Store, pre: PrearchiveStore, s: PrearcSession, new_project: str, user: User
) -> PrearcSession:
    if not new_project:
        raise xnat_error(400, "The newProject parameter is required to move a session.")
    row = store.resolve_project(new_project)
    if row is None or not can_edit(user, str(row["id"])):
        raise xnat_error(403, _MODIFY_DENIED)
    target = str(row["id"])
    if target == s.project:
        return s
    if _locked(s):
        raise xnat_error(409, "session document locked")
    if pre.find(target, s.timestamp, s.folder) is not None:
        raise xnat_error(
            409,
            f"A prearchive resource with session {s.folder} and timestamp {s.timestamp} "
            f"already exists in the project {target}",
        )
    moved = pre.move(s, target, CODE_NAMES.get(int(row["prearchive_code"]), "Manual"))
    pre.log(s.id, f"Moved to project {target} by {user.login}")
    return moved


async def delete_session(request: web.Request) -> web.Response:
    s = session_or_error(request)
    _, pre = _pre(request)
    await request.app[WRITER].run(lambda: pre.delete(_current(pre, s.id)))
    return web.Response(status=200)


def _current(pre: PrearchiveStore, session_id: int) -> PrearcSession:
    s = pre.get(session_id)
    if s is None:
        raise xnat_error(404, "Unknown prearchive session.")
    return s


# ---- sub-resources ----------------------------------------------------------------------


async def list_scans(request: web.Request) -> web.Response:
    s = session_or_error(request, modify=False)
    _, pre = _pre(request)
    rows = [
        {"ID": sc.scan, "xsiType": sc.xsi_type, "series_description": sc.series_description}
        for sc in scans_of(pre.files(s.id))
    ]
    return render_table(request, Table.from_dicts(["ID", "xsiType", "series_description"], rows))


async def list_scan_resources(request: web.Request) -> web.Response:
    s = session_or_error(request, modify=False)
    _, pre = _pre(request)
    files = pre.files_of_scan(s.id, request.match_info["scan"])
    if not files:
        raise xnat_error(404, f"Unknown scan: {request.match_info['scan']}")
    row = {"label": "DICOM", "file_count": len(files), "file_size": sum(f.size for f in files)}
    return render_table(request, Table.from_dicts(["label", "file_count", "file_size"], [row]))


async def list_session_resources(request: web.Request) -> web.Response:
    session_or_error(request, modify=False)
    return render_table(request, Table.from_dicts(["label", "file_count", "file_size"], []))


def _resource_files(request: web.Request) -> tuple[PrearcSession, list[Any]]:
    s = session_or_error(request, modify=False)
    _, pre = _pre(request)
    files = pre.files_of_scan(s.id, request.match_info["scan"])
    if not files or request.match_info["resource"] != "DICOM":
        raise xnat_error(404, "Unknown resource.")
    return s, files


async def list_files(request: web.Request) -> web.Response:
    _, files = _resource_files(request)
    base = request.path.rstrip("/")
    rows = [{"Name": f.name, "Size": f.size, "URI": f"{base}/{f.name}"} for f in files]
    return render_table(request, Table.from_dicts(["Name", "Size", "URI"], rows))


async def get_file(request: web.Request) -> web.StreamResponse:
    s, files = _resource_files(request)
    _, pre = _pre(request)
    name = request.match_info["name"]
    for f in files:
        if f.name == name:
            return web.FileResponse(
                pre.file_path(s, f), headers={"Content-Type": "application/dicom"}
            )
    raise xnat_error(404, f"Unknown file: {name}")


async def get_logs(request: web.Request) -> web.Response:
    s = session_or_error(request, modify=False)
    _, pre = _pre(request)
    rows = [{"id": i, "date": java_timestamp(d), "entry": e} for i, d, e in pre.logs(s.id)]
    return render_table(request, Table.from_dicts(["id", "date", "entry"], rows))


async def get_last_log(request: web.Request) -> web.Response:
    s = session_or_error(request, modify=False)
    _, pre = _pre(request)
    logs = pre.logs(s.id)
    return web.Response(text=logs[-1][2] if logs else "", content_type="text/plain")


# ---- batch services -------------------------------------------------------------------------


def _sources(
    pre: PrearchiveStore, user: User, srcs: list[str], *, modify: bool = True
) -> list[PrearcSession]:
    found: list[PrearcSession] = []
    for src in srcs:
        m = _SRC.match(src.strip())
        if m is None:
            raise xnat_error(400, f"Invalid src URI ({src})")
        project, ts, folder = m.groups()
        s = pre.find(project, ts, folder)
        if s is None:
            raise xnat_error(404, f"{src} not found.")
        if modify and not may_modify(user, s.project):
            raise xnat_error(403, _MODIFY_DENIED)
        found.append(s)
    return found


async def batch(request: web.Request) -> web.Response:
    user = request_user(request)
    store, pre = _pre(request)
    params = await all_params(request)
    operation = request.match_info["operation"]
    result = await request.app[WRITER].run(_batch, store, pre, user, params, operation)
    return listing(request, result, default="xml")


def _batch(
    store: Store, pre: PrearchiveStore, user: User, params: MultiDict[str], operation: str
) -> list[PrearcSession]:
    sessions = _sources(pre, user, params.getall("src", []))
    result: list[PrearcSession] = []
    if operation == "move":
        target = params.get("newProject", "")
        for s in sessions:
            result.append(_move(store, pre, s, target, user))
    elif operation == "delete":
        for s in sessions:
            if _locked(s):
                raise xnat_error(409, "session document locked")
        for s in sessions:
            s.status = "QUEUED_DELETING"
            result.append(s)
            pre.delete(s)
    elif operation == "rebuild":
        override = params.get("overrideLock", "").lower() == "true"
        for s in sessions:
            if _locked(s) and not override:
                raise xnat_error(409, "session document locked")
            result.append(build(pre, s))
    else:
        raise xnat_error(404, f"Unknown prearchive operation: {operation}")
    return result


async def archive_service(request: web.Request) -> web.StreamResponse:
    user = request_user(request)
    store, pre = _pre(request)
    params = await all_params(request)
    srcs = params.getall("src", [])
    by_parts = not srcs and params.get("project") and params.get("PREARC_TIMESTAMP")
    if by_parts:
        srcs = [
            f"/prearchive/projects/{params['project']}/{params['PREARC_TIMESTAMP']}/"
            f"{params.get('PREARC_SESSION_FOLDER', '')}"
        ]
    if not srcs:
        raise xnat_error(404, "Unknown prearchive session.")
    for src in srcs:
        if re.match(r"^(?:/data|/REST)?/archive/", src):
            raise xnat_error(400, f"Invalid src URI ({src})")
        m = _SRC.match(src.strip())
        if m is not None and m.group(1) == UNASSIGNED:
            raise xnat_error(400, UNASSIGNED_ARCHIVE)
    sessions = _sources(pre, user, srcs)
    override, allow_merge = merge_flags(dict(params))
    if len(sessions) == 1:
        # Archiver.initialize + finishSingleSessionArchive (1.8.11): a single session is
        # committed with allowSessionMerge=true, and append or delete both override the
        # archiver's exceptions (e.g. the StudyInstanceUID check).
        override = params.get("overwrite", "").lower() in ("append", "delete")
        allow_merge = True
    opts = ArchiveOptions(
        user=user.login,
        override=override,
        allow_merge=allow_merge,
        overwrite_files=params.get("overwrite_files", "").lower() == "true",
    )
    dest = params.get("dest")
    if dest:
        try:
            props = parse_dest(dest)
        except ValueError:
            raise xnat_error(400, f"Invalid dest URI ({dest})") from None
        opts.project = props.get("PROJECT_ID")
        opts.subject = props.get("SUBJECT_ID")
        opts.label = props.get("EXPT_ID")
    if not by_parts and params.get("project"):
        opts.project = params["project"]
    opts.subject = (
        params.get("subject_ID")
        or params.get("xnat:subjectAssessorData/subject_ID")
        or params.get("subject")
        or opts.subject
    )
    opts.label = params.get("label") or params.get("session") or opts.label
    if opts.project:
        row = store.resolve_project(opts.project)
        if row is None or not can_edit(user, str(row["id"])):
            raise xnat_error(403, _MODIFY_DENIED)
        opts.project = str(row["id"])
    writer = request.app[WRITER]
    if len(sessions) == 1:
        requested = params.get("auto-archive", params.get("AA"))
        uri, auto = await writer.run(_archive_one, store, pre, sessions[0].id, opts, requested)
        if params.get("redirect", "").lower() == "true" or auto:
            location = f"{request.scheme}://{request.host}{wrap(uri)}"
            raise web.HTTPSeeOther(location=location)
        return web.Response(body=(wrap(uri) + "\r\n").encode(), content_type="text/uri-list")
    result = await writer.run(_archive_many, store, pre, sessions, opts)
    return listing(request, result, default="xml")


def _archive_one(
    store: Store,
    pre: PrearchiveStore,
    session_id: int,
    opts: ArchiveOptions,
    requested: str | None,
) -> tuple[str, bool]:
    """Archive one session on the writer thread → (archive URI, auto-archive)."""
    s = _current(pre, session_id)
    if _locked(s):
        raise xnat_error(403, "Operation already in progress on this prearchive entry.")
    auto = requested.lower() == "true" if requested else s.autoarchive != "Manual"
    if auto:
        opts.allow_merge = True
    try:
        return archive(store, pre, s, opts), auto
    except ArchiveError as exc:
        raise xnat_error(exc.status, exc.message) from None


def _archive_many(
    store: Store, pre: PrearchiveStore, sessions: list[PrearcSession], opts: ArchiveOptions
) -> list[PrearcSession]:
    result: list[PrearcSession] = []
    for s in sessions:
        current = pre.get(s.id)
        if current is None:  # deleted or moved while the request waited for the writer
            s.status = "ERROR"
            result.append(s)
            continue
        try:
            archive(store, pre, current, opts)
            s.status = "QUEUED_ARCHIVING"
        except ArchiveError as exc:
            s.status = "CONFLICT" if exc.status == 409 else "ERROR"
        result.append(s)
    return result


async def not_allowed(request: web.Request) -> web.StreamResponse:
    raise xnat_error(405, "Method Not Allowed")


def setup(app: web.Application) -> None:
    """Attach the prearchive routes to the sandbox application."""
    base = "/prearchive/projects/{project}/{timestamp}/{folder}"
    add_route(app, "GET", "/prearchive", list_sessions)
    add_route(app, "PUT", "/prearchive", refresh)
    add_route(app, "GET", "/prearchive/projects", list_sessions)
    add_route(app, "GET", "/prearchive/projects/{projects}", list_sessions)
    add_route(app, "GET", base, get_session)
    add_route(app, "POST", base, post_session)
    add_route(app, "DELETE", base, delete_session)
    add_route(app, "GET", base + "/logs", get_logs)
    add_route(app, "GET", base + "/logs/last", get_last_log)
    add_route(app, "GET", base + "/scans", list_scans)
    add_route(app, "GET", base + "/resources", list_session_resources)
    add_route(app, "GET", base + "/scans/{scan}/resources", list_scan_resources)
    add_route(app, "GET", base + "/scans/{scan}/resources/{resource}/files", list_files)
    add_route(app, "GET", base + "/scans/{scan}/resources/{resource}/files/{name}", get_file)
    add_route(app, "POST", "/services/prearchive/{operation}", batch)
    add_route(app, "POST", "/services/archive", archive_service)
    add_route(app, "GET", "/services/archive", not_allowed)
    start_autobuild(app)
