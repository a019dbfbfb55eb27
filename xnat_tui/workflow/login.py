"""A logged-in server as the application layer uses it: client, engine port, listings."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from xnat_tui.transfer.server import ServerPort
from xnat_tui.xnat.client import XnatClient
from xnat_tui.xnat.models import ProjectRef


class ProjectLister(Protocol):
    async def uploadable_projects(self) -> list[ProjectRef]: ...


@dataclass
class LoginRequest:
    url: str
    user: str
    password: str = ""
    verify_tls: bool = True
    ca_bundle: str = ""
    profile: str = ""
    # Plain http:// to a host that is not loopback (the profile's allow_http, --allow-http
    # or the login form's checkbox); refused otherwise.
    allow_http: bool = False


@dataclass
class Connection:
    """A logged-in server: the engine's port, the project listing, and the client.

    ``client`` is None only where tests stand in for the server with a port alone;
    what needs it (anonymization scripts, prearchive triage) says so when it is absent.
    """

    url: str
    user: str
    port: ServerPort
    projects: ProjectLister
    client: XnatClient | None = None
    close: Callable[[], Awaitable[None]] | None = None


Connector = Callable[[LoginRequest], Awaitable[Connection]]


async def login(request: LoginRequest) -> Connection:
    """Log in with the real client and wrap it for the engine."""
    from xnat_tui.xnat.credentials import Credentials, normalise_server, user_from_url

    server = normalise_server(request.url)
    user = user_from_url(request.url, request.user)
    creds = Credentials(
        server=server,
        user=user,
        password=request.password,
        verify_tls=request.verify_tls,
        ca_bundle=request.ca_bundle,
        allow_http=request.allow_http,
        source="tui",
    )
    client = XnatClient(creds)
    try:
        await client.login()
    except BaseException:
        await client.close()
        raise
    return connection_for(client, url=creds.server, user=user)


def needs_http_consent(url: str) -> bool:
    """True when ``url`` is plain http:// to a host that is not loopback: logging in
    there needs ``allow_http`` (the login form shows its checkbox then)."""
    from xnat_tui.xnat.credentials import is_loopback_address

    text = url.strip()
    if not text.lower().startswith("http://"):
        return False
    try:
        host = urlsplit(text).hostname or ""
    except ValueError:
        return False
    return bool(host) and not is_loopback_address(host)


def connection_for(
    client: XnatClient, *, url: str, user: str = "", owned: bool = True
) -> Connection:
    """The connection of a client that is logged in (or logs in on first use).

    ``owned``: closing the connection closes the client (not when a caller's
    ``async with`` does that).
    """
    from xnat_tui.transfer.xnat_port import XnatPort

    return Connection(
        url=url,
        user=client.username or user,
        port=XnatPort(client),
        projects=client,
        client=client,
        close=client.close if owned else None,
    )
