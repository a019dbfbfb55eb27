"""What the engine needs from a server, as a small protocol.

The engine never builds URLs itself: it talks to a :class:`ServerPort`. The real
implementation wraps ``xnat_tui.xnat.XnatClient`` (:mod:`xnat_tui.transfer.xnat_port`);
tests use an in-memory fake. Keeping the surface this small is what lets the journal,
scheduler and verifier be tested without a network.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from xnat_tui.transfer.types import SourceSeries
from xnat_tui.xnat.filters import SERIES_DESCRIPTION, SeriesImportFilter, parse_tag
from xnat_tui.xnat.models import RemoteFile

__all__ = [
    "BodyFactory",
    "CommitOutcome",
    "ProjectInfo",
    "RemoteFile",
    "RemoteSession",
    "SeriesCheck",
    "ServerPort",
    "SourceChanged",
    "TransferError",
    "is_retriable",
    "series_check",
]

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


def series_check(flt: SeriesImportFilter) -> SeriesCheck:
    """One of the server's series import filters as a check on a planned series."""

    def check(series: SourceSeries) -> str | None:
        headers: dict[int, str | None] = {}
        for keyword, value in series.headers.items():
            tag = parse_tag(keyword)
            if tag is not None:
                headers[tag] = value
        headers.setdefault(SERIES_DESCRIPTION, series.description)
        kept, why = flt.accepts(headers)
        return None if kept else why

    return check


@dataclass
class ProjectInfo:
    id: str
    allow_create_subject: bool = True
    allow_bulk_upload: bool = True
    prearchive_code: int = 0
    # The site and project series import filters that are on (xnat-api.md §7.4), as the
    # server stores them; those that cannot be evaluated here (modalityMap) keep everything.
    series_filters: list[SeriesImportFilter] = field(default_factory=list)
    # A server-side anon script rewrites files, so digests cannot be compared.
    anon_script: bool = False
    warnings: list[str] = field(default_factory=list)
    # Why the ``xnat`` profile cannot run the project's scripts here (a script the user
    # may not read, or one outside the supported DicomEdit subset): such jobs are refused.
    anon_problems: list[str] = field(default_factory=list)
    # (name, description) of variables the project's scripts need from the user.
    anon_variables: list[tuple[str, str]] = field(default_factory=list)

    @property
    def series_checks(self) -> list[SeriesCheck]:
        """One check per filter that can be evaluated before upload."""
        return [series_check(f) for f in self.series_filters if f.enabled and f.evaluable]

    @property
    def filter_descriptions(self) -> list[str]:
        """How each filter reads, e.g. ``project P blacklist localizer; scout``."""
        return [f.describe() for f in self.series_filters if f.enabled]

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
        """Files of each scan (scan ID → files) of an archived or prearchived session;
        ``RemoteFile.size`` is None and ``digest`` empty when the server does not say."""
        ...
