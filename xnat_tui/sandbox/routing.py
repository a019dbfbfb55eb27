"""Route registration under every prefix XNAT answers on.

``add_route(app, method, template, handler, archive=False)`` registers ``template``
(written without prefix, e.g. ``/projects/{project}``) under ``/data`` and ``/REST``;
with ``archive=True`` also under ``/data/archive`` and ``/REST/archive``
(XNAT's ``attachArchiveURI``), each also with a trailing ``/`` (Restlet matches by
prefix), and GET routes also answer HEAD. Every route module uses it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PREFIXES = ("/data", "/REST")


def add_route(
    app: web.Application, method: str, template: str, handler: Handler, *, archive: bool = False
) -> None:
    prefixes: list[str] = list(PREFIXES)
    if archive:
        prefixes += [p + "/archive" for p in PREFIXES]
    catch_all = template.endswith((":.+}", ":.*}"))
    methods = [method, "HEAD"] if method == "GET" else [method]
    for prefix in prefixes:
        paths = [prefix + template]
        if not catch_all:
            # Restlet matches templates by prefix, so "/data/projects/" is the project list.
            paths.append(prefix + template + "/")
        for path in paths:
            for verb in methods:
                app.router.add_route(verb, path, handler)
