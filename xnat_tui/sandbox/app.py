"""The sandbox web application: middlewares and every route module.

``make_app(store, *, faults=None, session_timeout=900, autobuild_interval=300,
import_limits=None)`` returns an ``aiohttp.web.Application`` whose typed keys (``keys.STORE``,
``keys.FAULTS``, ``keys.SESSIONS``, ``keys.SETTINGS``, ``writer.WRITER``) route modules
read. Middleware
order, outermost first: errors (no traceback ever leaks) → faults → auth. Route
modules each expose ``setup(app)``; the import and prearchive services live in
``import_routes`` and ``prearchive_routes``.
"""

from __future__ import annotations

from aiohttp import web

from xnat_tui.sandbox import (
    archive_routes,
    auth,
    config_routes,
    download_routes,
    import_routes,
    prearchive_routes,
    scan_routes,
    share_routes,
    site,
    writer,
)
from xnat_tui.sandbox import faults as faults_mod
from xnat_tui.sandbox.errors import error_middleware
from xnat_tui.sandbox.faults import FaultInjector, faults_middleware
from xnat_tui.sandbox.keys import FAULTS, SESSIONS, SETTINGS, STORE, Settings
from xnat_tui.sandbox.limits import ImportLimits
from xnat_tui.sandbox.store import Store

# Large uploads stream through request.content; this only bounds request.post() forms.
CLIENT_MAX_SIZE = 1 << 30


def make_app(
    store: Store,
    *,
    faults: FaultInjector | str | None = None,
    session_timeout: float = 900.0,
    autobuild_interval: float = 300.0,
    import_limits: ImportLimits | None = None,
) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware, faults_middleware, auth.auth_middleware],
        client_max_size=CLIENT_MAX_SIZE,
    )
    injector = faults if isinstance(faults, FaultInjector) else FaultInjector(faults)
    app[STORE] = store
    app[FAULTS] = injector
    app[SESSIONS] = auth.SessionManager(session_timeout)
    injector.bind_sessions(app[SESSIONS])
    app[SETTINGS] = Settings(
        data_dir=store.data_dir,
        session_timeout=session_timeout,
        autobuild_interval=autobuild_interval,
        import_limits=import_limits or ImportLimits(),
    )
    writer.setup(app)
    site.setup(app)
    auth.setup(app)
    archive_routes.setup(app)
    share_routes.setup(app)
    scan_routes.setup(app)
    download_routes.setup(app)
    config_routes.setup(app)
    import_routes.setup(app)
    prearchive_routes.setup(app)
    faults_mod.setup_admin(app)
    return app
