"""Async XNAT REST client and typed errors (no Textual).

``from xnat_tui.xnat import XnatClient, Credentials`` and ``async with XnatClient(creds) as
xnat: ...``. Errors are in :mod:`xnat_tui.xnat.errors`, results in :mod:`xnat_tui.xnat.models`,
series filters in :mod:`xnat_tui.xnat.filters`. Label rules are the application layer's
(:mod:`xnat_tui.workflow.labels`).
"""

from typing import TYPE_CHECKING, Any

from xnat_tui.xnat.credentials import Credentials, normalise_server
from xnat_tui.xnat.errors import (
    AuthenticationError,
    Conflict,
    ConnectionFailed,
    NotFound,
    PermissionDenied,
    ProtocolError,
    RequestRejected,
    ServerError,
    SessionExpired,
    SessionRenewed,
    TLSError,
    UsageError,
    XnatError,
)

if TYPE_CHECKING:
    from xnat_tui.xnat.client import XnatClient, prearchive_parts


def __getattr__(name: str) -> Any:
    # aiohttp loads only when the client is used: `labels` stays cheap for the CLI and UI.
    if name in ("XnatClient", "prearchive_parts"):
        from xnat_tui.xnat import client

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AuthenticationError",
    "Conflict",
    "ConnectionFailed",
    "Credentials",
    "NotFound",
    "PermissionDenied",
    "ProtocolError",
    "RequestRejected",
    "ServerError",
    "SessionExpired",
    "SessionRenewed",
    "TLSError",
    "UsageError",
    "XnatClient",
    "XnatError",
    "normalise_server",
    "prearchive_parts",
]
