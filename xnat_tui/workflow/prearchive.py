"""Prearchive triage: what is in the prearchive, what archiving would do, and doing it.

Pure domain logic shared by the triage screen and ``xnat-tui prearchive``. Server
access goes through the small :class:`PrearchiveOps` protocol so the rules here are
tested without a server and the same runner drives both front ends.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from xnat_tui.units import human_bytes
from xnat_tui.workflow.labels import label_problem
from xnat_tui.xnat.models import ExistingSession
from xnat_tui.xnat.prearchive_ops import ScanInfo

UNASSIGNED = "Unassigned"

# XNAT's prearchive table columns, in DatabaseSession order (xnat-api.md §6.1).
COLUMNS: tuple[str, ...] = (
    "project",
    "timestamp",
    "lastmod",
    "uploaded",
    "scan_date",
    "scan_time",
    "subject",
    "folderName",
    "name",
    "tag",
    "status",
    "url",
    "autoarchive",
    "prevent_anon",
    "prevent_auto_commit",
    "SOURCE",
    "VISIT",
    "PROTOCOL",
    "TIMEZONE",
)

OVERWRITE_MODES: tuple[str, ...] = ("none", "append", "delete")

# Statuses from which XNAT's archiver will take a session (a failed archive may be retried).
ARCHIVABLE = frozenset({"READY", "CONFLICT", "ERROR"})
# Received but never built: the session document does not exist yet.
UNBUILT = frozenset({"RECEIVING", "RECEIVING_INTERRUPT"})


def is_busy(status: str) -> bool:
    """An operation holds the entry (running, queued or locked): XNAT refuses others."""
    return (
        status.startswith("_")
        or status.startswith("QUEUED_")
        or status in {"BUILDING", "ARCHIVING", "MOVING", "DELETING", "SEPARATING"}
    )


@dataclass(frozen=True)
class PrearchiveRow:
    """One row of ``GET /data/prearchive/projects``; ``raw`` keeps XNAT's columns verbatim."""

    raw: Mapping[str, str]

    @classmethod
    def from_mapping(cls, row: Mapping[str, object]) -> PrearchiveRow:
        return cls({str(k): "" if v is None else str(v) for k, v in row.items()})

    def get(self, key: str) -> str:
        return self.raw.get(key, "")

    @property
    def url(self) -> str:
        return self.get("url")

    @property
    def project(self) -> str:
        return self.get("project") or UNASSIGNED

    @property
    def status(self) -> str:
        return self.get("status")

    @property
    def subject(self) -> str:
        return self.get("subject")

    @property
    def label(self) -> str:
        return self.get("name") or self.get("folderName")

    @property
    def study_uid(self) -> str:
        return self.get("tag")

    @property
    def timestamp(self) -> str:
        return self.get("timestamp")

    @property
    def unassigned(self) -> bool:
        return self.project == UNASSIGNED

    @property
    def busy(self) -> bool:
        return is_busy(self.status)

    def as_json(self) -> dict[str, str]:
        """XNAT's columns first in XNAT's order, then anything else the server sent."""
        out = {k: self.raw[k] for k in COLUMNS if k in self.raw}
        out.update({k: v for k, v in self.raw.items() if k not in out})
        return out


def parse_rows(rows: Iterable[Mapping[str, object]]) -> list[PrearchiveRow]:
    return [PrearchiveRow.from_mapping(r) for r in rows]


# --- filtering and sorting -------------------------------------------------------------


@dataclass(frozen=True)
class RowFilter:
    """Empty fields match everything; text matches any visible column, case-insensitively."""

    project: str = ""
    status: str = ""
    text: str = ""

    def matches(self, row: PrearchiveRow) -> bool:
        if self.project and row.project.lower() != self.project.lower():
            return False
        if self.status and not _status_matches(row.status, self.status):
            return False
        needle = self.text.strip().lower()
        if needle:
            haystack = " ".join(row.raw.values()).lower()
            return all(word in haystack for word in needle.split())
        return True


def _status_matches(status: str, wanted: str) -> bool:
    # "ARCHIVING" should also find QUEUED_ARCHIVING and the _ARCHIVING lock.
    base = status.removeprefix("QUEUED_").lstrip("_")
    return wanted.upper() in (status.upper(), base.upper())


def filter_rows(rows: Iterable[PrearchiveRow], flt: RowFilter) -> list[PrearchiveRow]:
    return [r for r in rows if flt.matches(r)]


SORT_KEYS: tuple[str, ...] = ("project", "timestamp", "subject", "name", "status", "scan_date")


def sort_rows(
    rows: Iterable[PrearchiveRow], key: str, reverse: bool = False
) -> list[PrearchiveRow]:
    """Stable sort by one column, ties broken by upload timestamp then url."""
    if key not in COLUMNS:
        raise ValueError(f"unknown sort column {key!r}")

    def sort_key(row: PrearchiveRow) -> tuple[str, str, str]:
        value = row.project if key == "project" else row.get(key)
        return (value.lower(), row.timestamp, row.url)

    return sorted(rows, key=sort_key, reverse=reverse)


# --- what archiving would do -----------------------------------------------------------


class Outcome(enum.Enum):
    NEW = "new"
    MERGE = "merge"
    CONFLICT = "conflict"
    BLOCKED = "blocked"
    # The server could not be asked; archiving is left for the server to decide.
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ArchiveTarget:
    project: str
    subject: str
    label: str
    overwrite: str = "none"


@dataclass(frozen=True)
class ArchivePreview:
    outcome: Outcome
    reason: str

    @property
    def allowed(self) -> bool:
        return self.outcome in (Outcome.NEW, Outcome.MERGE, Outcome.UNKNOWN)


def default_target(row: PrearchiveRow, overwrite: str = "none") -> ArchiveTarget:
    project = "" if row.unassigned else row.project
    return ArchiveTarget(project, row.subject, row.label, overwrite)


def status_blocker(row: PrearchiveRow) -> str | None:
    """Why this entry cannot be archived in its current status, or None."""
    if row.status in ARCHIVABLE:
        return None
    if row.status in UNBUILT:
        return f"{row.status}: not built yet — rebuild it first"
    if row.busy:
        return f"{row.status}: an operation is in progress on this entry"
    return f"{row.status or 'unknown status'}: XNAT will not archive from this status"


def preview_archive(
    row: PrearchiveRow,
    target: ArchiveTarget,
    existing: Sequence[ExistingSession],
    subjects: Sequence[str] | None = None,
) -> ArchivePreview:
    """Classify an archive of ``row`` to ``target`` by XNAT's merge rules (xnat-api.md §5.5).

    ``existing`` are the archived sessions of ``target.project``; ``subjects`` its subject
    labels when known (to say a subject will be created).
    """
    blocker = status_blocker(row)
    if blocker:
        return ArchivePreview(Outcome.BLOCKED, blocker)
    if not target.project or target.project == UNASSIGNED:
        return ArchivePreview(
            Outcome.BLOCKED, "choose a project: XNAT cannot archive from Unassigned"
        )
    for value, what in ((target.subject, "subject label"), (target.label, "session label")):
        problem = label_problem(value, what)
        if problem:
            return ArchivePreview(Outcome.BLOCKED, problem)
    if target.overwrite not in OVERWRITE_MODES:
        return ArchivePreview(Outcome.BLOCKED, f"unknown overwrite mode {target.overwrite!r}")

    move = ""
    if target.project != row.project:
        move = f"moves to {target.project}, then "
    # Session labels match exactly; the archiver finds subjects case-insensitively.
    match = next((e for e in existing if e.label == target.label), None)
    if match is None:
        new_subject = ""
        if subjects is not None and target.subject.lower() not in {s.lower() for s in subjects}:
            new_subject = f" (new subject {target.subject})"
        return ArchivePreview(
            Outcome.NEW,
            f"{move}creates session {target.label} in {target.project}/{target.subject}"
            f"{new_subject}",
        )
    where = f"{target.project}/{match.subject_label}/{match.label}"
    if match.subject_label and match.subject_label.lower() != target.subject.lower():
        return ArchivePreview(
            Outcome.CONFLICT,
            f"{target.label} already exists in {target.project} for another subject "
            f"({match.subject_label}); relabel the session",
        )
    uid_differs = bool(match.study_uid and row.study_uid and match.study_uid != row.study_uid)
    # The archive service always allows a merge; overwrite=append|delete also overrides
    # XNAT's "overridable" checks, the StudyInstanceUID one among them (Archiver.java).
    if uid_differs and target.overwrite == "none":
        return ArchivePreview(
            Outcome.CONFLICT,
            f"{where} exists with another StudyInstanceUID ({match.study_uid}): XNAT refuses "
            "the merge (Invalid modification of session UID); relabel to archive it as a "
            "separate session, or overwrite append/delete to force the merge",
        )
    forced = " despite a different StudyInstanceUID (XNAT 1.8+)" if uid_differs else ""
    # XNAT before 1.8 only merged when asked to (overwrite=append|delete).
    mode = (
        " (XNAT before 1.8 asks for overwrite=append)"
        if target.overwrite == "none"
        else f" (overwrite={target.overwrite})"
    )
    return ArchivePreview(Outcome.MERGE, f"{move}merges into existing {where}{mode}{forced}")


# --- actions ---------------------------------------------------------------------------


class Action(enum.Enum):
    ARCHIVE = "archive"
    MOVE = "move"
    REBUILD = "rebuild"
    DELETE = "delete"


def action_blocker(row: PrearchiveRow, action: Action) -> str | None:
    """Why ``action`` makes no sense for ``row`` right now, or None if it may be tried."""
    if row.busy:
        return f"{row.status}: an operation is in progress"
    if action is Action.ARCHIVE:
        return status_blocker(row)
    return None


@dataclass(frozen=True)
class SessionDetail:
    """What the detail pane shows; parts that failed to load carry their error instead."""

    row: PrearchiveRow
    scans: tuple[ScanInfo, ...] = ()
    scans_error: str = ""
    log: str = ""
    log_error: str = ""
    preview: ArchivePreview | None = None
    preview_error: str = ""

    @property
    def total_files(self) -> int:
        return sum(s.files or 0 for s in self.scans)

    @property
    def total_size(self) -> int:
        return sum(s.size or 0 for s in self.scans)


def human_size(n: int | None) -> str:
    """A server-reported size in decimal units (``xnat_tui.units``); "?" when unknown."""
    return "?" if n is None else human_bytes(n)


class PrearchiveOps(Protocol):
    """The server calls triage needs; implemented over the XNAT client."""

    async def list_prearchive(self, project: str | None = None) -> list[dict[str, str]]: ...

    async def move(self, url: str, project: str) -> str:
        """Move an entry to another project; return its new url."""
        ...

    async def rebuild(self, url: str) -> None: ...

    async def delete(self, url: str) -> None: ...

    async def archive(self, url: str, *, subject: str, label: str, overwrite: str) -> str:
        """Archive an entry; return the archive URI."""
        ...


class TriageOps(PrearchiveOps, Protocol):
    """Read calls for the detail pane, the preview and the project pickers."""

    async def scans(self, url: str) -> list[ScanInfo]: ...

    async def last_log(self, url: str) -> str: ...

    async def existing_sessions(self, project: str) -> list[ExistingSession]: ...

    async def subjects(self, project: str) -> list[str]: ...

    async def editable_projects(self) -> list[str]: ...


async def preview_for(ops: TriageOps, row: PrearchiveRow, target: ArchiveTarget) -> ArchivePreview:
    """Ask the server what the target project holds, then classify (no status checks skipped)."""
    if status_blocker(row) or not target.project or target.project == UNASSIGNED:
        return preview_archive(row, target, [])
    existing, subjects = await asyncio.gather(
        ops.existing_sessions(target.project), ops.subjects(target.project)
    )
    return preview_archive(row, target, existing, subjects)


async def preview_many(
    ops: TriageOps, items: Sequence[tuple[PrearchiveRow, ArchiveTarget]]
) -> list[ArchivePreview]:
    """Previews for a batch, asking the server once per target project.

    A project that cannot be read yields UNKNOWN previews (the server decides at archive
    time) instead of failing the whole batch.
    """
    projects = {
        t.project
        for r, t in items
        if not status_blocker(r) and t.project and t.project != UNASSIGNED
    }

    async def holdings(
        project: str,
    ) -> tuple[str, tuple[list[ExistingSession], list[str]] | str]:
        try:
            existing, subjects = await asyncio.gather(
                ops.existing_sessions(project), ops.subjects(project)
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported per session below
            return project, _error_text(exc)
        return project, (existing, subjects)

    known = dict(await asyncio.gather(*(holdings(p) for p in sorted(projects))))
    out: list[ArchivePreview] = []
    for row, target in items:
        held = known.get(target.project)
        if isinstance(held, str):
            out.append(
                ArchivePreview(
                    Outcome.UNKNOWN,
                    f"could not check {target.project} ({held}); the server decides",
                )
            )
        elif held is None:
            out.append(preview_archive(row, target, []))
        else:
            out.append(preview_archive(row, target, held[0], held[1]))
    return out


async def scans_of(
    ops: TriageOps, rows: Sequence[PrearchiveRow], *, concurrency: int = 4
) -> dict[str, SessionDetail]:
    """Scans of each row (for an exact delete confirmation); failures are kept per row."""
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(row: PrearchiveRow) -> SessionDetail:
        async with gate:
            try:
                return SessionDetail(row, tuple(await ops.scans(row.url)))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the line then says scans are unknown
                return SessionDetail(row, scans_error=_error_text(exc))

    details = await asyncio.gather(*(one(r) for r in rows))
    return {d.row.url: d for d in details}


async def load_detail(ops: TriageOps, row: PrearchiveRow) -> SessionDetail:
    """Scans, last log line and archive preview, each failing on its own."""

    async def scans() -> tuple[tuple[ScanInfo, ...], str]:
        try:
            return tuple(await ops.scans(row.url)), ""
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - shown in the pane, others still load
            return (), _error_text(exc)

    async def log() -> tuple[str, str]:
        try:
            return await ops.last_log(row.url), ""
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001
            return "", _error_text(exc)

    async def preview() -> tuple[ArchivePreview | None, str]:
        try:
            return await preview_for(ops, row, default_target(row)), ""
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001
            return None, _error_text(exc)

    (scan_list, scans_error), (text, log_error), (pv, pv_error) = await asyncio.gather(
        scans(), log(), preview()
    )
    return SessionDetail(row, scan_list, scans_error, text, log_error, pv, pv_error)


@dataclass(frozen=True)
class ActionRequest:
    row: PrearchiveRow
    action: Action
    target: ArchiveTarget | None = None  # archive
    project: str = ""  # move

    def describe(self) -> str:
        name = f"{self.row.project}/{self.row.label}"
        if self.action is Action.ARCHIVE and self.target is not None:
            t = self.target
            return f"archive {name} → {t.project}/{t.subject}/{t.label} (overwrite={t.overwrite})"
        if self.action is Action.MOVE:
            return f"move {name} → {self.project}"
        return f"{self.action.value} {name}"


@dataclass(frozen=True)
class ActionResult:
    request: ActionRequest
    ok: bool
    message: str
    new_url: str = ""  # where the entry lives now (after a move) or the archive URI
    steps: tuple[str, ...] = field(default=())

    @property
    def url(self) -> str:
        return self.request.row.url

    def as_json(self) -> dict[str, object]:
        return {
            "url": self.url,
            "action": self.request.action.value,
            "ok": self.ok,
            "message": self.message,
            "new_url": self.new_url,
        }


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__


async def perform(ops: PrearchiveOps, request: ActionRequest) -> ActionResult:
    """Run one request; failures become a result carrying the server's message."""
    row = request.row
    steps: list[str] = []
    try:
        if request.action is Action.DELETE:
            await ops.delete(row.url)
            return ActionResult(request, True, "deleted", steps=("delete",))
        if request.action is Action.REBUILD:
            await ops.rebuild(row.url)
            return ActionResult(request, True, "rebuilt", row.url, ("rebuild",))
        if request.action is Action.MOVE:
            if not request.project:
                return ActionResult(request, False, "no destination project given")
            if request.project == row.project:
                return ActionResult(request, False, f"already in {row.project}")
            new_url = await ops.move(row.url, request.project)
            return ActionResult(request, True, f"moved to {request.project}", new_url, ("move",))
        target = request.target
        if target is None:
            return ActionResult(request, False, "no archive target given")
        url = row.url
        if target.project != row.project:
            # The archiver archives into the entry's own project, so route it there first.
            url = await ops.move(url, target.project)
            steps.append("move")
        uri = await ops.archive(
            url, subject=target.subject, label=target.label, overwrite=target.overwrite
        )
        steps.append("archive")
        return ActionResult(request, True, f"archived to {uri}", uri, tuple(steps))
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - each session reports its own failure
        done = f" (after {', '.join(steps)})" if steps else ""
        return ActionResult(request, False, _error_text(exc) + done, steps=tuple(steps))


async def perform_many(
    ops: PrearchiveOps,
    requests: Sequence[ActionRequest],
    *,
    concurrency: int = 2,
    on_result: Callable[[ActionResult], Awaitable[None] | None] | None = None,
) -> list[ActionResult]:
    """Run requests with bounded concurrency; results come back in request order.

    XNAT serialises archive work per entry anyway, so a small bound keeps the server
    responsive while a batch of deletes or moves still finishes quickly.
    """
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(req: ActionRequest) -> ActionResult:
        async with gate:
            result = await perform(ops, req)
        if on_result is not None:
            maybe = on_result(result)
            if maybe is not None:
                await maybe
        return result

    return list(await asyncio.gather(*(one(r) for r in requests)))


def delete_summary(
    rows: Sequence[PrearchiveRow], details: Mapping[str, SessionDetail] | None = None
) -> list[str]:
    """One line per entry, naming exactly what a delete removes (with its scans when known)."""
    lines = []
    for r in rows:
        line = (
            f"{r.project}/{r.timestamp}/{r.get('folderName') or r.label}  "
            f"subject {r.subject or '-'}  session {r.label}  {r.status}  "
            f"study {r.study_uid or '-'}"
        )
        detail = (details or {}).get(r.url)
        if detail is not None and detail.scans:
            line += (
                f"  {len(detail.scans)} scans, {detail.total_files} files, "
                f"{human_size(detail.total_size)}"
            )
        elif detail is not None and detail.scans_error:
            line += f"  (scans unknown: {detail.scans_error})"
        lines.append(line)
    return lines
