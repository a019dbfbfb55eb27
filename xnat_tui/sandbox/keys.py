"""Typed application keys shared by every sandbox route module.

``app[STORE]`` (Store), ``app[FAULTS]`` (FaultInjector), ``app[SESSIONS]``
(SessionManager), ``app[SETTINGS]`` (Settings: data_dir, session_timeout,
autobuild_interval, import_limits), ``app[IMPORTS]`` (ImportGuards: the running
imports, stopped at shutdown). Route modules read them from ``request.app``.

Per request: ``request[USER]`` (``permissions.User`` or None — prefer
``permissions.request_user(request)``, which raises 401 when absent),
``request[SESSION]`` (the ``auth.HttpSession``), ``request[LOGOUT]`` (set True by a
handler that ended the session, so no cookie is re-issued).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from xnat_tui.sandbox.limits import ImportGuards, ImportLimits
from xnat_tui.sandbox.store import Store

if TYPE_CHECKING:
    from xnat_tui.sandbox.auth import HttpSession, SessionManager
    from xnat_tui.sandbox.faults import FaultInjector
    from xnat_tui.sandbox.permissions import User


@dataclass
class Settings:
    data_dir: Path
    session_timeout: float = 900.0
    autobuild_interval: float = 300.0
    site_id: str = "XNAT"
    version: str = "1.8.10"
    import_limits: ImportLimits = field(default_factory=ImportLimits)


STORE = web.AppKey("store", Store)
SETTINGS = web.AppKey("settings", Settings)
IMPORTS = web.AppKey("imports", ImportGuards)
FAULTS: web.AppKey[FaultInjector] = web.AppKey("faults")
SESSIONS: web.AppKey[SessionManager] = web.AppKey("sessions")

USER: web.RequestKey[User | None] = web.RequestKey("user")
SESSION: web.RequestKey[HttpSession] = web.RequestKey("session")
LOGOUT = web.RequestKey("session_invalidated", bool)
