"""What the engine needs from a server, as a small protocol.

The engine never builds URLs itself: it talks to a :class:`ServerPort`. The real
implementation wraps ``xnat_tui.xnat.XnatClient`` (:mod:`xnat_tui.transfer.xnat_port`);
tests use an in-memory fake. Keeping the surface this small is what lets the journal,
scheduler and verifier be tested without a network.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from xnat_tui.transfer.types import SourceSeries

SeriesCheck = Callable[[SourceSeries], str | None]
"""Why the server will drop a series (a series import filter), or None if it keeps it."""

BodyFactory = Callable[[], AsyncIterable[bytes]]
"""Makes a fresh zip stream of one series; called again if the request must be resent
(e.g. a transparent re-login), so each call re-reads the files."""


class TransferError(Exception):
    """A failure the engine reports to the user.

    ``retriable`` says whether sending again later may succeed (5xx, timeouts, dropped
    connections, disk full); ``status`` is the HTTP status when there was one.
    """

    def __init__(self, message: str, *, retriable: bool = False, status: int | None = None):
        super().__init__(message)
        self.retriable = retriable
        self.status = status


class SourceChanged(TransferError):
    """A local file vanished, became unreadable or changed since it was scanned."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}", retriable=False)
        self.path = path
        self.reason = reason


def is_retriable(exc: BaseException) -> bool:
    """Classify any exception from a server call: only transient failures are retried."""
    flag = getattr(exc, "retriable", None)
    if isinstance(flag, bool):
        return flag
    if isinstance(exc, SourceChanged):
        return False
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError, ConnectionError)):
        return True
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        return status >= 500 or status in (408, 429)
    # aiohttp's ClientError family (dropped connection, payload errors) is transient;
    # checked by name so this module does not import aiohttp.
    return any(
        cls.__name__ in ("ClientError", "ServerDisconnectedError") for cls in type(exc).__mro__
    )


@dataclass
class SeriesFilter:
    """A series import filter (xnat-api.md §7.4): which series the server will drop."""

    mode: str  # blacklist | whitelist | modalityMap
    patterns: list[str] = field(default_factory=list)
    enabled: bool = True
    scope: str = "project"

    def drops(self, description: str) -> bool:
        if not self.enabled or self.mode not in ("blacklist", "whitelist"):
            return False
        matched = any(_safe_match(p, description) for p in self.patterns)
        return matched if self.mode == "blacklist" else not matched

    def __call__(self, series: SourceSeries) -> str | None:
        if self.drops(series.description):
            return f"{self.scope} series import filter ({self.mode})"
        return None


def _safe_match(pattern: str, text: str) -> bool:
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


@dataclass
class ProjectInfo:
    id: str
    allow_create_subject: bool = True
    allow_bulk_upload: bool = True
    prearchive_code: int = 0
    series_checks: list[SeriesCheck] = field(default_factory=list)
    # A server-side anon script rewrites files, so digests cannot be compared.
    anon_script: bool = False
    warnings: list[str] = field(default_factory=list)
    # Why the ``xnat`` profile cannot run the project's scripts here (a script the user
    # may not read, or one outside the supported DicomEdit subset): such jobs are refused.
    anon_problems: list[str] = field(default_factory=list)
    # (name, description) of variables the project's scripts need from the user.
    anon_variables: list[tuple[str, str]] = field(default_factory=list)

    def drop_reason(self, series: SourceSeries) -> str | None:
        for check in self.series_checks:
            reason = check(series)
            if reason:
                return reason
        return None

    @property
    def auto_archive(self) -> bool:
        return self.prearchive_code >= 4


@dataclass
class RemoteSession:
    """A session that already exists on the server (archive or prearchive)."""

    label: str
    subject: str
    study_uid: str
    location: str  # "archive" | "prearchive"
    uri: str  # /data/... path usable for listings (and commit when in the prearchive)
    status: str = ""  # prearchive status (RECEIVING, READY, ...)
    project: str = ""


@dataclass(frozen=True)
class RemoteFile:
    name: str
    size: int
    digest: str = ""  # MD5 hex when the server gives it


@dataclass(frozen=True)
class CommitOutcome:
    archived: bool
    uri: str


class ServerPort(Protocol):
    """The server calls the engine makes; every method may raise (see ``is_retriable``)."""

    @property
    def server_url(self) -> str: ...

    @property
    def username(self) -> str: ...

    async def project_info(self, project: str) -> ProjectInfo: ...

    async def subjects(self, project: str) -> set[str]: ...

    async def sessions(self, project: str) -> list[RemoteSession]:
        """Archived experiments and prearchive entries of the project."""
        ...

    async def import_series(
        self,
        body: BodyFactory,
        *,
        project: str,
        subject: str,
        session: str,
        overwrite: str,
        extra: Mapping[str, str] | None = None,
    ) -> str:
        """POST one series zip; return the prearchive URI ('' if the server kept nothing)."""
        ...

    async def commit(self, uri: str, *, auto_archive: bool | None) -> CommitOutcome: ...

    async def session_files(self, session: RemoteSession) -> dict[str, list[RemoteFile]]:
        """Files of each scan (scan ID → files) of an archived or prearchived session."""
        ...
