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
from urllib.parse import unquote, urlsplit

from xnat_tui.xnat.errors import CleartextRefused, UsageError

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


def normalise_server(url: str) -> str:
    """``xnat.example.org`` → ``https://xnat.example.org``; no trailing slash or ``/data``.

    A user name in the URL (``https://alice@host``) is left out here (:func:`server_user`
    reads it); a password in it is refused: it would sit in shell history, process lists
    and logs.
    """
    text = url.strip()
    if not text:
        raise UsageError("The server URL is empty.")
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    try:
        has_password = parts.password is not None
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        valid, has_password = False, False
    if has_password:
        raise UsageError(
            f"The server URL {redact_url(url)} holds a password; a password is never "
            "taken from a URL (it would be left in shell history, process lists and logs).",
            hint="Give the URL without it, and the user with --user (or user@ in the URL); "
            "the password comes from --password-stdin, XNAT_PASS, ~/.netrc or the prompt.",
        )
    if not valid:
        raise UsageError(
            f"{redact_url(url)!r} is not a server URL; expected something like "
            "https://xnat.example.org"
        )
    path = parts.path.rstrip("/")
    for suffix in ("/data", "/REST"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
    netloc = parts.netloc.rsplit("@", 1)[-1]  # never keep credentials in the URL
    return f"{parts.scheme}://{netloc}{path}"


def server_user(url: str) -> str:
    """The user name of ``https://alice@host`` (percent-decoded), or ""."""
    text = url.strip()
    if "://" not in text:
        text = "https://" + text
    try:
        name = urlsplit(text).username
    except ValueError:
        return ""
    return unquote(name) if name else ""


def redact_url(url: str) -> str:
    """``url`` with the password of its user part (if any) replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    authority, slash, tail = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if at and ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":***"
    authority = f"{userinfo}@{host}" if at else host
    return f"{scheme}{sep}{authority}{slash}{tail}"


def user_from_url(url: str, user: str) -> str:
    """The user for ``url``: ``user`` if given, else the URL's user part.

    A URL naming one user and ``user`` naming another is a usage error: which one was
    meant cannot be guessed, and logging in as the wrong one is what went wrong before.
    """
    in_url = server_user(url)
    if in_url and user and in_url != user:
        raise UsageError(
            f"The server URL names the user {in_url!r} but the user given is {user!r}.",
            hint="Give the user once: --user NAME, or NAME@ in the URL.",
        )
    return user or in_url


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
    # Send the password over plain http:// to a host that is not loopback (--allow-http).
    allow_http: bool = False
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
        raise _netrc_error(target, exc) from None
    except OSError as exc:
        raise UsageError(f"{target}: {exc.strerror}") from None
    found = entries.authenticators(host)
    if not found:
        return "", ""
    login, _account, password = found
    return login or "", password or ""


def _netrc_error(target: Path, exc: netrc.NetrcParseError) -> UsageError:
    """The parse error said plainly: the line when there is one (the permission and
    owner checks have none, and said "(line None)")."""
    message = str(exc.msg).replace("~/.netrc", str(target))
    where = f" (line {exc.lineno})" if exc.lineno else ""
    if "too permissive" in message:
        return UsageError(
            f"{target}: access too permissive (other users can read it), so it is not used{where}.",
            hint=f"Make it private: chmod 600 {target}",
        )
    return UsageError(
        f"{target}: {message}{where}",
        hint="Fix the file, or give the password with --password-stdin or XNAT_PASS.",
    )


def ssl_context(verify: bool, ca_bundle: str = "") -> ssl.SSLContext | bool:
    """What aiohttp's ``ssl=`` takes: False to skip checks, True for its verifying
    default, else a verifying context that also trusts the site's CA."""
    if not verify:
        return False
    if not ca_bundle:
        # aiohttp's default context is ssl.create_default_context(), made when aiohttp
        # is imported (the system's CAs; SSL_CERT_FILE / SSL_CERT_DIR honoured): another
        # would only cost start-up ~25 ms of loading the same CA bundle.
        return True
    bundle = Path(ca_bundle).expanduser()
    if not bundle.exists():
        raise UsageError(
            f"CA bundle {bundle} does not exist.",
            hint="Point --ca-bundle (or ca_bundle in the server profile) at the PEM file "
            "of your site's certificate authority.",
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


def is_loopback_address(host: str) -> bool:
    """A host that cannot be anything but this machine: a literal loopback address
    (127.0.0.0/8, ::1, ::ffff:127.x.y.z) or the name ``localhost``.

    ``localhost`` counts: it is reserved for loopback (RFC 6761), resolved from
    /etc/hosts, and what SSH tunnels are opened on. Other names, even ones ending in
    ``.localhost`` or resolving to 127.0.0.1 today, do not: a name can resolve elsewhere.
    """
    name = host.strip().lower()
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def refuse_cleartext(url: str, *, allow_http: bool, user: str = "") -> None:
    """Refuse to send a password over plain http:// to a host that is not loopback.

    Basic auth is only base64: on http:// anyone on the path reads the password. The
    one check every login goes through (the transport calls it before any request);
    the commands call it early too, before asking for a password.
    """
    parts = urlsplit(url)
    if parts.scheme != "http" or allow_http:
        return
    host = parts.hostname or ""
    if is_loopback_address(host):
        return
    who = f"the password of {user}" if user else "the password"
    raise CleartextRefused(
        f"Refusing to send {who} to {host} over plain HTTP: {url} is not encrypted, so "
        "the password (and every session cookie) could be read on the network.",
        hint=f"Use https://{parts.netloc.rsplit('@', 1)[-1]}{parts.path} if the server "
        "offers it. If this network is trusted, allow plain HTTP with --allow-http, or "
        "allow_http = true in the server's [profiles.NAME] of the config file (in the "
        "login screen: tick 'Allow plain HTTP').",
        url=url,
    )


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
