"""Credentials and the connection-level settings that go with them (TLS, proxy)."""

from __future__ import annotations

import ipaddress
import netrc
import os
import re
import ssl
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from xnat_tui.xnat.errors import UsageError

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


def normalise_server(url: str) -> str:
    """``xnat.example.org`` → ``https://xnat.example.org``; no trailing slash or ``/data``."""
    text = url.strip()
    if not text:
        raise UsageError("The server URL is empty.")
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"{url!r} is not a server URL; expected something like https://xnat.example.org"
        )
    path = parts.path.rstrip("/")
    for suffix in ("/data", "/REST"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
    netloc = parts.netloc.rsplit("@", 1)[-1]  # never keep credentials in the URL
    return f"{parts.scheme}://{netloc}{path}"


def is_alias_token(user: str) -> bool:
    """XNAT alias tokens are UUIDs used as the Basic user name (xnat-api.md §2.5)."""
    return bool(_UUID.match(user.strip()))


@dataclass(frozen=True)
class Credentials:
    server: str
    user: str
    password: str = field(repr=False)
    verify_tls: bool = True
    ca_bundle: str = ""
    # Where the password came from ("prompt", "stdin", "netrc", "env", ...), for messages.
    source: str = ""

    @property
    def is_token(self) -> bool:
        return is_alias_token(self.user)

    @property
    def host(self) -> str:
        return urlsplit(self.server).hostname or ""


def netrc_credentials(host: str, path: str | os.PathLike[str] | None = None) -> tuple[str, str]:
    """(login, password) for ``host`` from ``$NETRC`` or ``~/.netrc``; ("", "") if none."""
    explicit = path or os.environ.get("NETRC")
    target = Path(explicit) if explicit else Path.home() / ".netrc"
    if not target.is_file():
        return "", ""
    try:
        # Without an explicit file, netrc also refuses one that others can read.
        entries = netrc.netrc(str(target)) if explicit else netrc.netrc()
    except netrc.NetrcParseError as exc:
        raise UsageError(
            f"{target}: {exc.msg} (line {exc.lineno})",
            hint="Fix the file, or give the password with --password-stdin or XNAT_PASS.",
        ) from None
    except OSError as exc:
        raise UsageError(f"{target}: {exc.strerror}") from None
    found = entries.authenticators(host)
    if not found:
        return "", ""
    login, _account, password = found
    return login or "", password or ""


def ssl_context(verify: bool, ca_bundle: str = "") -> ssl.SSLContext | bool:
    """What aiohttp's ``ssl=`` takes: False to skip checks, else a verifying context."""
    if not verify:
        return False
    if not ca_bundle:
        # The default context honours SSL_CERT_FILE / SSL_CERT_DIR.
        return ssl.create_default_context()
    bundle = Path(ca_bundle).expanduser()
    if not bundle.exists():
        raise UsageError(
            f"CA bundle {bundle} does not exist.",
            hint="Point ca_bundle at the PEM file of your site's certificate authority.",
        )
    try:
        # The site CA is added to the system's, not instead of them.
        context = ssl.create_default_context()
        if bundle.is_dir():
            context.load_verify_locations(capath=str(bundle))
        else:
            context.load_verify_locations(cafile=str(bundle))
        return context
    except (ssl.SSLError, OSError) as exc:
        raise UsageError(f"CA bundle {bundle} cannot be used: {exc}") from None


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def proxy_for(url: str) -> str | None:
    """The proxy from HTTPS_PROXY/HTTP_PROXY for ``url``, honouring NO_PROXY.

    Loopback is never proxied, whatever the environment says: the sandbox and SSH tunnels
    live there, and a corporate proxy cannot reach them.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host or is_loopback(host):
        return None
    if urllib.request.proxy_bypass_environment(host):  # type: ignore[attr-defined]
        return None
    proxies = urllib.request.getproxies_environment()
    return proxies.get(parts.scheme) or None
