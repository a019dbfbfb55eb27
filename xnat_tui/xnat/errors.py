"""Typed errors: each one says what happened, what to do, and whether retrying can help.

The transfer engine decides retries from ``retriable`` alone; the UI and CLI show
``str(error)`` and ``hint``. Mapping from HTTP status to class lives here too, so the
client only describes *what it was doing* (an :class:`ErrorContext`).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorContext:
    """What the client was doing, so an error can name it instead of a bare URL."""

    action: str
    user: str = ""
    project: str = ""
    # The permission the action needs, e.g. "edit access to project P".
    permission: str = ""
    # What a 404 means for this call; default: the project is missing or hidden.
    not_found: str = ""


class XnatError(Exception):
    """Base class. ``str(err)`` is the sentence for the user; ``hint`` what to do next."""

    default_hint = ""
    default_retriable = False

    def __init__(
        self,
        message: str,
        *,
        hint: str = "",
        status: int | None = None,
        server_message: str = "",
        method: str = "",
        url: str = "",
        retriable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint or self.default_hint
        self.status = status
        self.server_message = server_message
        self.method = method
        self.url = url
        self._retriable = self.default_retriable if retriable is None else retriable

    @property
    def retriable(self) -> bool:
        """True when the same request may succeed later without the user changing anything."""
        return self._retriable

    def describe(self) -> str:
        """Message plus hint, for one-shot CLI output."""
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class AuthenticationError(XnatError):
    """The server refused the credentials (wrong password, unknown user, dead token)."""

    default_hint = (
        "Check the user name and password (or the alias token and its secret: tokens expire "
        "after 2 days by default). Too many failed attempts lock the account."
    )


class SessionExpired(AuthenticationError):
    """The HTTP session expired and logging in again failed."""

    default_hint = (
        "The session timed out and the stored credentials no longer work (password changed "
        "or alias token expired). Log in again; unfinished transfers can be resumed."
    )


class SessionRenewed(XnatError):
    """The session expired while a one-shot body was streaming; it was renewed, send again."""

    default_retriable = True
    default_hint = "The session was renewed; sending the same data again will work."


class PermissionDenied(XnatError):
    default_hint = "Ask a project owner or the XNAT admin for the missing permission."


class NotFound(XnatError):
    default_hint = "Check the spelling (IDs and labels are case-sensitive) and your access."


class Conflict(XnatError):
    """The server refused the request as it stands (409/400 family); repeating won't help."""

    default_hint = (
        "Read the server's message; change the label, choose overwrite/merge, or fix the data."
    )


class RequestRejected(XnatError):
    """Another 4xx the client did not expect (405, 406, 415...)."""

    default_hint = "This looks like a client/server mismatch; please report it with the message."


class ServerError(XnatError):
    default_retriable = True
    default_hint = "The server failed; the request is retried automatically a few times."


class ConnectionFailed(XnatError):
    """Unreachable, refused, DNS failure, timeout or a connection dropped mid-request."""

    default_retriable = True
    default_hint = "Check the server URL, the network/VPN and any HTTPS_PROXY/NO_PROXY settings."


class TLSError(ConnectionFailed):
    default_retriable = False
    default_hint = (
        "If the server uses a private certificate authority, pass --ca-bundle PATH (its "
        'PEM file) or set `ca_bundle = "/path/to/ca.pem"` in the server profile; '
        "--insecure skips verification entirely (not recommended)."
    )


class UsageError(XnatError):
    """Missing or contradictory connection settings; exit code 2 in the CLI."""


class CleartextRefused(UsageError):
    """A password would go over plain http:// to a host that is not loopback."""


class ProtocolError(XnatError):
    """The server answered 2xx with something the client cannot interpret."""

    default_hint = "The server may not be XNAT, or a proxy/login page answered instead."


# ---------------------------------------------------------------- body parsing

_TOMCAT_MESSAGE = re.compile(r"<b>\s*message\s*</b>\s*(?:<u>)?(.*?)(?:</u>)?\s*</p>", re.I | re.S)
_HEAD = re.compile(r"<head>.*?</head>|<style.*?</style>|<script.*?</script>", re.I | re.S)
_TITLE = re.compile(r"<title>(.*?)</title>", re.I | re.S)
_TAGS = re.compile(r"<[^>]+>")
# Markup inside the message itself (XNAT's login failure text carries <ul><li>, which
# Tomcat escapes): only real tag shapes, so "a < b > c" survives.
_MESSAGE_TAGS = re.compile(r"</?[A-Za-z][A-Za-z0-9]*(?:\s[^<>]*)?/?>")
_SPACE = re.compile(r"\s+")
_MAX_MESSAGE = 500


def _squash(text: str) -> str:
    unescaped = html.unescape(_TAGS.sub(" ", text))
    return _SPACE.sub(" ", _MESSAGE_TAGS.sub(" ", unescaped)).strip()


def extract_server_message(body: str, content_type: str = "") -> str:
    """The human message inside an XNAT error body (Tomcat HTML report or plain text)."""
    text = body.strip()
    if not text:
        return ""
    looks_html = "html" in content_type.lower() or text[:200].lower().lstrip().startswith(
        ("<!doctype html", "<html")
    )
    if looks_html:
        match = _TOMCAT_MESSAGE.search(text)
        message = _squash(match.group(1)) if match else ""
        if not message:
            without_head = _HEAD.sub(" ", text)
            message = _squash(without_head)
        if not message:
            title = _TITLE.search(text)
            message = _squash(title.group(1)) if title else ""
        text = message
    if len(text) > _MAX_MESSAGE:
        text = text[: _MAX_MESSAGE - 1] + "…"
    return text


# Archive-step failures XNAT reports as 500 "FAILED: <cause>" (xnat-api.md §5.5): they are
# conflicts a retry cannot fix.
_CONFLICT_MARKERS = (
    "session already exists",
    "invalid modification of session",
    "session already contains a scan",
    "duplicate archive attempt",
    "concurrent modification",
    "already exists for another subject",
)
_DISK_FULL_MARKERS = ("no space left", "disk full", "insufficient storage", "quota exceeded")


def is_archive_conflict(message: str) -> bool:
    low = message.lower()
    return any(marker in low for marker in _CONFLICT_MARKERS)


def error_for_status(
    status: int,
    server_message: str,
    ctx: ErrorContext,
    *,
    method: str = "",
    url: str = "",
) -> XnatError:
    """The typed error for a non-success HTTP status (401 handled by the caller first)."""
    said = f': "{server_message}"' if server_message else ""

    def build(
        cls: type[XnatError], message: str, hint: str = "", retriable: bool | None = None
    ) -> XnatError:
        return cls(
            message,
            hint=hint,
            retriable=retriable,
            status=status,
            server_message=server_message,
            method=method,
            url=url,
        )

    who = ctx.user or "this user"
    if status == 401:
        return build(
            AuthenticationError,
            f"Cannot {ctx.action}: the server refused the credentials of {who}{said}",
        )
    if status == 403:
        need = ctx.permission or (
            f"access to project {ctx.project}" if ctx.project else "the required permission"
        )
        return build(
            PermissionDenied,
            f"Cannot {ctx.action}: {who} lacks {need}{said}",
            hint=f"Ask a project owner or the XNAT admin to grant {who} {need}.",
        )
    if status == 404:
        if ctx.not_found:
            what = ctx.not_found
        elif ctx.project:
            what = f"project {ctx.project} is not visible to user {who} or does not exist"
        else:
            what = "the server has no such resource"
        return build(NotFound, f"Cannot {ctx.action}: {what}{said}")
    if status == 423:
        return build(
            Conflict,
            f"Cannot {ctx.action}: the session is locked by another operation{said}",
            hint="Wait for the running operation to finish, then try again.",
            retriable=True,
        )
    if status in (400, 409, 412, 417, 422):
        return build(Conflict, f"Cannot {ctx.action}: the server refused it{said}")
    if 400 <= status < 500:
        return build(RequestRejected, f"Cannot {ctx.action}: HTTP {status}{said}")
    if status >= 500:
        if is_archive_conflict(server_message):
            return build(Conflict, f"Cannot {ctx.action}: {server_message}")
        low = server_message.lower()
        if any(marker in low for marker in _DISK_FULL_MARKERS) or status == 507:
            return build(
                ServerError,
                f"Cannot {ctx.action}: the server is out of disk space{said}",
                hint="Tell the XNAT admin; the transfer can be resumed once space is freed.",
                retriable=False,
            )
        return build(
            ServerError,
            f"Cannot {ctx.action}: server error HTTP {status}{said}",
            retriable=status != 501,
        )
    return build(ProtocolError, f"Cannot {ctx.action}: unexpected HTTP {status}{said}")
