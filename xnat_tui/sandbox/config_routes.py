"""Config service and anonymization settings (xnat-api.md §7.2-7.4).

Site scope ``/data/config[/{tool}[/{path}]]`` and project scope
``/data/projects/{P}/config[/{tool}[/{path}]]``: ``contents=true`` (raw text),
``accept-not-found=true`` (204 instead of 404), ``version=N``,
``action=getHistory``, ``defaultToSiteWide=true``; without ``contents`` the JSON
table of §7.2. PUT: site scope needs a site admin, project scope an owner (delete
permission) — body text or JSON ``{"contents": ..., "status": ...}``,
``?status=enabled|disabled``; 201 new / 200 updated.

Anon scripts are plain entries: tool ``anon``, site path ``script``, project path
``projects/<P>`` (any leading ``/`` is dropped, XNAT's ``fixAnonPath``). Series
import filters: tool ``seriesImportFilter``, path ``config``. The ``/xapi/anonymize``
routes read and write the same entries.

Helpers for other modules: ``config_contents(store, tool, path, project=None)`` →
contents when present and enabled, else None; ``anon_path(project)``.
"""

from __future__ import annotations

import json
import sqlite3

from aiohttp import web

from xnat_tui.sandbox.errors import xnat_error
from xnat_tui.sandbox.keys import STORE
from xnat_tui.sandbox.permissions import User, can_delete, can_read, request_user
from xnat_tui.sandbox.routing import add_route
from xnat_tui.sandbox.store import Store
from xnat_tui.sandbox.tables import Table, parse_bool, render_table

CONFIG_COLUMNS = (
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
)

DEFAULT_ANON_SCRIPT = """version "6.1"
project != "Unassigned" ? (0008,1030) := project
(0010,0010) := subject
(0010,0020) := session
"""


def anon_path(project: str) -> str:
    return f"projects/{project}"


def config_contents(store: Store, tool: str, path: str, project: str | None = None) -> str | None:
    row = store.get_config(tool, _normalise(tool, path), project)
    if row is None or row["status"] == "disabled":
        return None
    return str(row["contents"])


def _normalise(tool: str, path: str) -> str:
    # fixAnonPath: "/projects/P" and "projects/P" name the same anon script.
    return path.strip("/")


def _record(row: sqlite3.Row) -> dict[str, str]:
    return {
        "tool": row["tool"],
        "path": row["path"],
        "project": row["project"],
        "user": row["user"],
        "create_date": row["create_date"],
        "reason": row["reason"],
        "contents": row["contents"],
        "unversioned": "true" if row["unversioned"] else "false",
        "version": str(row["version"]),
        "status": row["status"],
    }


def _scope(request: web.Request, user: User) -> str | None:
    """The project of a project-scoped route (checked), or None for site scope."""
    project = request.match_info.get("project")
    if project is None:
        return None
    store = request.app[STORE]
    if store.get_project(project) is None:
        raise xnat_error(404, f"The requested project {project} does not exist.")
    if not can_read(user, project):
        raise xnat_error(403, f"User {user.login} can not access project {project}")
    return project


def _not_found(request: web.Request, user: User, project: str | None, tool: str, path: str) -> None:
    if parse_bool(request.query.get("accept-not-found")):
        raise web.HTTPNoContent()
    raise xnat_error(
        404,
        f"Config not found for user {user.login} and project {project or 'null'} "
        f"on tool [{tool}] path [{path}]",
    )


async def list_tools(request: web.Request) -> web.Response:
    user = request_user(request)
    project = _scope(request, user)
    tools = sorted({r["tool"] for r in request.app[STORE].list_configs(project=project)})
    return render_table(request, Table.from_dicts(["tool"], [{"tool": t} for t in tools]))


async def get_tool(request: web.Request) -> web.Response:
    user = request_user(request)
    project = _scope(request, user)
    tool = request.match_info["tool"]
    rows = request.app[STORE].list_configs(tool, project)
    if not rows:
        _not_found(request, user, project, tool, "")
    return render_table(request, Table.from_dicts(CONFIG_COLUMNS, [_record(r) for r in rows]))


async def get_config(request: web.Request) -> web.Response:
    user = request_user(request)
    project = _scope(request, user)
    store = request.app[STORE]
    tool = request.match_info["tool"]
    path = _normalise(tool, request.match_info["path"])
    if request.query.get("action") == "getHistory":
        history = store.config_history(tool, path, project)
        if not history:
            _not_found(request, user, project, tool, path)
        table = Table.from_dicts(CONFIG_COLUMNS, [_record(r) for r in history])
        return render_table(request, table)
    version: int | None = None
    if "version" in request.query:
        try:
            version = int(request.query["version"])
        except ValueError:
            raise xnat_error(400, "The version parameter must be an integer.") from None
    row = store.get_config(tool, path, project, version)
    if row is None and project is not None and parse_bool(request.query.get("defaultToSiteWide")):
        row = store.get_config(tool, path, None, version)
    if parse_bool(request.query.get("contents")):
        if row is None or row["status"] == "disabled":
            _not_found(request, user, project, tool, path)
        assert row is not None
        return web.Response(text=row["contents"], content_type="text/plain")
    if row is None:
        _not_found(request, user, project, tool, path)
    assert row is not None
    return render_table(request, Table.from_dicts(CONFIG_COLUMNS, [_record(row)]))


async def put_config(request: web.Request) -> web.Response:
    user = request_user(request)
    project = _scope(request, user)
    tool = request.match_info["tool"]
    path = _normalise(tool, request.match_info["path"])
    if project is None and not user.admin:
        raise xnat_error(403, "Only site administrators can change site-wide configurations.")
    if project is not None and not can_delete(user, project):
        raise xnat_error(
            403, f"User {user.login} does not have permission to change settings of {project}"
        )
    status = request.query.get("status")
    if status is not None and status not in ("enabled", "disabled"):
        raise xnat_error(400, f"Invalid status: {status}. Use enabled or disabled.")
    body = await request.text() if request.can_read_body else ""
    contents: str | None = body if body else None
    if body and request.content_type == "application/json":
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and ("contents" in parsed or "status" in parsed):
            contents = parsed.get("contents")
            status = parsed.get("status", status)
            if contents is not None and not isinstance(contents, str):
                contents = json.dumps(contents)
    if contents is None and status is None:
        raise xnat_error(
            400,
            "You must specify either the status querystring parameter or a configuration "
            "object in the request body.",
        )
    created = request.app[STORE].put_config(
        tool,
        path,
        contents,
        user=user.login,
        project=project,
        status=status,
        reason=request.query.get("reason", ""),
    )
    return web.Response(status=201 if created else 200)


# ---- /xapi/anonymize ----------------------------------------------------------------


def _project_checked(request: web.Request, user: User) -> str:
    project = request.match_info["project"]
    store = request.app[STORE]
    if store.get_project(project) is None or not can_read(user, project):
        raise xnat_error(404, f"No project found with ID {project}")
    return project


async def xapi_anon_get(request: web.Request) -> web.Response:
    user = request_user(request)
    store = request.app[STORE]
    if "project" in request.match_info:
        project: str | None = _project_checked(request, user)
        assert project is not None
        row = store.get_config("anon", anon_path(project), project)
    else:
        project = None
        row = store.get_config("anon", "script", None)
    if request.path.endswith("/enabled"):
        return web.json_response(row is not None and row["status"] == "enabled")
    return web.Response(text=row["contents"] if row else "", content_type="text/plain")


async def xapi_anon_put(request: web.Request) -> web.Response:
    user = request_user(request)
    store = request.app[STORE]
    if "project" in request.match_info:
        project: str | None = _project_checked(request, user)
        assert project is not None
        if not can_delete(user, project):
            raise xnat_error(403, "Forbidden")
        path = anon_path(project)
    else:
        if not user.admin:
            raise xnat_error(403, "Forbidden")
        project, path = None, "script"
    if request.path.endswith("/enabled") or "flag" in request.match_info:
        flag = request.match_info.get("flag") or request.query.get("enable", "true")
        store.put_config(
            "anon",
            path,
            None,
            user=user.login,
            project=project,
            status="enabled" if parse_bool(flag) else "disabled",
        )
        return web.Response(status=200)
    store.put_config("anon", path, await request.text(), user=user.login, project=project)
    return web.Response(status=200)


async def xapi_anon_default(request: web.Request) -> web.Response:
    request_user(request)
    return web.Response(text=DEFAULT_ANON_SCRIPT, content_type="text/plain")


def setup(app: web.Application) -> None:
    for base, archive in (("", False), ("/projects/{project}", True)):
        add_route(app, "GET", base + "/config", list_tools, archive=archive)
        add_route(app, "GET", base + "/config/{tool}", get_tool, archive=archive)
        add_route(app, "GET", base + "/config/{tool}/{path:.+}", get_config, archive=archive)
        add_route(app, "PUT", base + "/config/{tool}/{path:.+}", put_config, archive=archive)
        add_route(app, "POST", base + "/config/{tool}/{path:.+}", put_config, archive=archive)
    router = app.router
    router.add_get("/xapi/anonymize/default", xapi_anon_default)
    router.add_get("/xapi/anonymize/site", xapi_anon_get)
    router.add_put("/xapi/anonymize/site", xapi_anon_put)
    router.add_get("/xapi/anonymize/site/enabled", xapi_anon_get)
    router.add_put("/xapi/anonymize/site/enabled", xapi_anon_put)
    router.add_put("/xapi/anonymize/site/enabled/{flag}", xapi_anon_put)
    router.add_get("/xapi/anonymize/projects/{project}", xapi_anon_get)
    router.add_put("/xapi/anonymize/projects/{project}", xapi_anon_put)
    router.add_get("/xapi/anonymize/projects/{project}/enabled", xapi_anon_get)
    router.add_put("/xapi/anonymize/projects/{project}/enabled", xapi_anon_put)
    router.add_put("/xapi/anonymize/projects/{project}/enabled/{flag}", xapi_anon_put)
