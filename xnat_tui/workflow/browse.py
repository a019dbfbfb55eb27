"""The server browser's model: projects → subjects → sessions → scans, Textual-free.

Each level is loaded when first opened (:class:`BrowseSource`), the filter narrows the
visible rows to those matching (and their ancestors), and the user's picks form a
:class:`Selection` — a typed value that says nothing about what will be done with it.
Download (issue 17) and copy/move between projects (issue 18) both start from one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from xnat_tui.units import human_bytes
from xnat_tui.xnat import download_ops
from xnat_tui.xnat.client import XnatClient

# ---------------------------------------------------------------- nodes


@dataclass(frozen=True)
class ProjectNode:
    id: str
    name: str = ""
    secondary_id: str = ""


@dataclass(frozen=True)
class SubjectNode:
    project: str
    id: str
    label: str
    sessions: int = 0


@dataclass(frozen=True)
class SessionNode:
    project: str
    id: str
    label: str
    subject_id: str = ""
    subject_label: str = ""
    date: str = ""
    modality: str = ""
    xsi_type: str = ""
    uid: str = ""


@dataclass(frozen=True)
class ScanNode:
    session_id: str
    id: str
    type: str = ""
    description: str = ""
    files: int | None = None
    size: int | None = None


class BrowseSource(Protocol):
    """What the browser reads from a server (a fake in tests)."""

    async def projects(self) -> list[ProjectNode]: ...
    async def subjects(self, project: str) -> list[SubjectNode]: ...
    async def sessions(self, project: str) -> list[SessionNode]: ...
    async def scans(self, session: SessionNode) -> list[ScanNode]: ...


# ---------------------------------------------------------------- the selection


@dataclass(frozen=True)
class SelectedSession:
    """One session picked in the browser; ``scans`` empty means all of its scans."""

    project: str
    id: str
    label: str
    subject_id: str = ""
    subject_label: str = ""
    scans: tuple[str, ...] = ()
    scan_types: tuple[str, ...] = ()  # the picked scans' types, for display and filters


@dataclass(frozen=True)
class Selection:
    """What the user picked: sessions of one project (and maybe some of their scans)."""

    project: str
    sessions: tuple[SelectedSession, ...] = ()

    @property
    def subjects(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.subject_label for s in self.sessions if s.subject_label))

    @property
    def empty(self) -> bool:
        return not self.sessions

    def describe(self) -> str:
        if not self.sessions:
            return "nothing selected"
        partial = sum(1 for s in self.sessions if s.scans)
        text = (
            f"{len(self.sessions)} session(s) of {len(self.subjects)} subject(s) in {self.project}"
        )
        return text + (f" ({partial} with some scans only)" if partial else "")


# ---------------------------------------------------------------- the model


class Kind(StrEnum):
    PROJECT = "project"
    SUBJECT = "subject"
    SESSION = "session"
    SCAN = "scan"


@dataclass(frozen=True)
class Row:
    """One visible line of the tree."""

    # Stable, and unique: a session shared into a second project shows under both, so
    # session and scan keys carry the project they are shown under.
    key: str  # "p:P", "s:P:SUBJ_ID", "e:P:SESSION_ID", "c:P:SESSION_ID:SCAN"
    kind: Kind
    depth: int
    name: str
    count: str
    size: str
    date: str
    modality: str
    mark: str  # ☑ / ☐ / ◐ (some scans) / '' (projects)
    expanded: bool
    loading: bool = False


@dataclass
class BrowseModel:
    """Lazy tree state, filter and selection; the screen renders :meth:`rows`."""

    source: BrowseSource
    projects: list[ProjectNode] = field(default_factory=list)
    subjects: dict[str, list[SubjectNode]] = field(default_factory=dict)
    sessions: dict[str, list[SessionNode]] = field(default_factory=dict)
    scans: dict[str, list[ScanNode]] = field(default_factory=dict)
    expanded: set[str] = field(default_factory=set)
    loading: set[str] = field(default_factory=set)
    filter_text: str = ""
    picked: dict[str, set[str]] = field(default_factory=dict)  # session id → scan ids ('' all)
    picked_project: str = ""  # the project the picked sessions are shown under
    errors: dict[str, str] = field(default_factory=dict)
    cursor: str = ""  # the row the browser was left on (it reopens there)
    # Subjects a filter showed open (for their matching sessions) that the user closed:
    # key → that filter. Another filter opens them again.
    closed: dict[str, str] = field(default_factory=dict)

    # ------------------------------------------------------------ loading
    async def load_projects(self) -> None:
        self.projects = sorted(await self.source.projects(), key=lambda p: p.id.lower())

    async def reload(self) -> None:
        """Everything read again, as it was open: after a copy or a move, or when others
        changed the server. What is gone is closed, and unpicked."""
        opened = sorted(self.expanded, key=lambda k: "pse".index(k[0]))  # parents first
        self.subjects, self.sessions, self.scans = {}, {}, {}
        self.errors.clear()
        await self.load_projects()
        projects = {p.id for p in self.projects}
        self.expanded = set()
        failed: list[str] = []
        for key in opened:
            kind, _, rest = key.partition(":")
            project, _, inner = rest.partition(":")
            if project not in projects or (kind != "p" and f"p:{project}" not in self.expanded):
                continue
            if kind == "s" and not any(s.id == inner for s in self.subjects.get(project, [])):
                continue
            if kind == "e" and self.session(project, inner) is None:
                continue
            try:
                if self.needs_load(key):
                    await self.load(key)
            except Exception:  # kept in errors; the other rows are read all the same
                failed.append(key)
                continue
            self.expanded.add(key)
        picked = self.picked_project
        if self.picked and picked in projects and picked not in self.sessions:
            try:  # its row is closed, yet its picks are checked against the server too
                await self.load(f"p:{picked}")
            except Exception:
                failed.append(f"p:{picked}")
        if picked in self.sessions:
            listed = {e.id for e in self.sessions[picked]}
            self.picked = {k: v for k, v in self.picked.items() if k in listed}
        if failed:
            first = self.errors.get(failed[0], "")
            raise RuntimeError(f"{len(failed)} row(s) could not be read again ({first})")

    def forget_unloaded(self) -> None:
        """Closes the rows whose load did not finish (the browser was left meanwhile,
        which stops its loads): they load when opened again, instead of showing open
        with nothing under them."""
        self.loading.clear()
        self.expanded = {k for k in self.expanded if not self.needs_load(k)}

    def begin_load(self, key: str) -> None:
        """Marks ``key`` as loading (shown at once, before :meth:`load` is awaited)."""
        self.loading.add(key)

    async def load(self, key: str) -> None:
        """Load what opening ``key`` shows (once); errors are kept per key."""
        kind, _, rest = key.partition(":")
        self.begin_load(key)
        try:
            if kind == "p" and rest not in self.sessions:
                subjects, sessions = await asyncio.gather(
                    self.source.subjects(rest), self.source.sessions(rest)
                )
                counts: dict[str, int] = {}
                for e in sessions:
                    counts[e.subject_id] = counts.get(e.subject_id, 0) + 1
                # A session shared without its subject: its subject is not listed in the
                # project, and the session would have no row to sit under.
                known = {s.id for s in subjects}
                subjects = list(subjects) + [
                    SubjectNode(rest, sid, label or sid)
                    for sid, label in {
                        e.subject_id: e.subject_label for e in sessions if e.subject_id not in known
                    }.items()
                ]
                self.subjects[rest] = sorted(
                    (SubjectNode(s.project, s.id, s.label, counts.get(s.id, 0)) for s in subjects),
                    key=lambda s: s.label.lower(),
                )
                self.sessions[rest] = sorted(sessions, key=lambda e: (e.date, e.label))
            elif kind == "e":
                project, _, session_id = rest.partition(":")
                session = self.session(project, session_id)
                if session is not None and session_id not in self.scans:
                    self.scans[session_id] = await self.source.scans(session)
            self.errors.pop(key, None)
        except Exception as exc:
            self.errors[key] = str(exc) or type(exc).__name__
            raise
        finally:
            self.loading.discard(key)

    def needs_load(self, key: str) -> bool:
        kind, _, rest = key.partition(":")
        return (kind == "p" and rest not in self.sessions) or (
            kind == "e" and rest.partition(":")[2] not in self.scans
        )

    # ------------------------------------------------------------ lookups
    def session(self, project: str, session_id: str) -> SessionNode | None:
        """The session as listed under ``project`` (a shared one is in two lists)."""
        for e in self.sessions.get(project, []):
            if e.id == session_id:
                return e
        return None

    def _sessions_of(self, project: str, subject_id: str) -> list[SessionNode]:
        return [e for e in self.sessions.get(project, []) if e.subject_id == subject_id]

    # ------------------------------------------------------------ tree
    def toggle_expand(self, key: str) -> bool:
        """Open or close ``key``; True when it is open now (and may need loading)."""
        if key.startswith("c:"):
            return False
        if self.is_open(key):
            self.expanded.discard(key)
            if self.filter_text:
                self.closed[key] = self.filter_text
            return False
        self.expanded.add(key)
        self.closed.pop(key, None)
        return True

    def is_open(self, key: str) -> bool:
        """Whether ``key`` is shown open: opened, or by a filter matching what it holds
        (from that subject alone: not every row drawn again at each key)."""
        if key in self.expanded:
            return True
        kind, _, rest = key.partition(":")
        project, _, subject_id = rest.partition(":")
        p = next((p for p in self.projects if p.id == project), None)
        s = next((s for s in self.subjects.get(project, []) if s.id == subject_id), None)
        if kind != "s" or not self.filter_text or p is None or s is None:
            return False
        if self._matches(p.id, p.name, p.secondary_id) or self._matches(s.label):
            return False
        return self._opened_by_filter(key, bool(self._session_rows(project, s, False)))

    def _opened_by_filter(self, key: str, matching: bool) -> bool:
        """A subject the filter does not match itself, shown open for its sessions that it
        matches (``matching``), unless the user closed it under this filter."""
        return matching and self.closed.get(key) != self.filter_text

    def _matches(self, *texts: str) -> bool:
        needle = self.filter_text.strip().lower()
        return not needle or any(needle in t.lower() for t in texts if t)

    def rows(self) -> list[Row]:
        """The visible rows, depth-first, filtered (a match keeps its ancestors)."""
        out: list[Row] = []
        for p in self.projects:
            key = f"p:{p.id}"
            children = self._subject_rows(p) if key in self.expanded else []
            if not (self._matches(p.id, p.name, p.secondary_id) or children):
                continue
            subjects = self.subjects.get(p.id)
            count = (
                f"{len(subjects)} subj, {len(self.sessions.get(p.id, []))} sess"
                if subjects is not None
                else ""
            )
            name = p.id + (f"  {p.name}" if p.name and p.name != p.id else "")
            out.append(
                Row(
                    key,
                    Kind.PROJECT,
                    0,
                    name,
                    count,
                    "",
                    "",
                    "",
                    "",
                    key in self.expanded,
                    key in self.loading,
                )
            )
            out += children
        return out

    def _subject_rows(self, p: ProjectNode) -> list[Row]:
        out: list[Row] = []
        project_hit = self._matches(p.id, p.name, p.secondary_id) and bool(self.filter_text)
        for s in self.subjects.get(p.id, []):
            key = f"s:{p.id}:{s.id}"
            children = self._session_rows(p.id, s, project_hit) if key in self.expanded else []
            hit = project_hit or self._matches(s.label)
            if not hit and not children:
                # A filter matching a session label must find it even when closed.
                children = self._session_rows(p.id, s, False) if self.filter_text else []
                if not children:
                    continue
            sessions = self._sessions_of(p.id, s.id)
            shown_open = key in self.expanded or (
                not hit and self._opened_by_filter(key, bool(children))
            )
            out.append(
                Row(
                    key,
                    Kind.SUBJECT,
                    1,
                    s.label,
                    f"{s.sessions} sess",
                    "",
                    "",
                    "",
                    self._mark_many(p.id, sessions),
                    shown_open,
                )
            )
            if shown_open:
                out += children
        return out

    def _session_rows(self, project: str, s: SubjectNode, inherited: bool) -> list[Row]:
        out: list[Row] = []
        for e in self._sessions_of(project, s.id):
            key = f"e:{project}:{e.id}"
            hit = inherited or self._session_hit(e)
            scans = self.scans.get(e.id)
            scan_rows: list[Row] = []
            if key in self.expanded and scans is not None:
                scan_rows = [
                    self._scan_row(project, e, c)
                    for c in scans
                    if hit or self._matches(c.id, c.type, c.description)
                ]
            if not hit and not scan_rows:
                continue
            count = f"{len(scans)} scans" if scans is not None else ""
            size = sum(c.size or 0 for c in scans) if scans else 0
            out.append(
                Row(
                    key,
                    Kind.SESSION,
                    2,
                    e.label,
                    count,
                    human_bytes(size) if size else "",
                    e.date,
                    e.modality,
                    self._mark(project, e.id),
                    key in self.expanded,
                    key in self.loading,
                )
            )
            out += scan_rows
        return out

    def _session_hit(self, e: SessionNode) -> bool:
        return self._matches(e.label, e.modality, e.date, e.id)

    def _scan_row(self, project: str, e: SessionNode, c: ScanNode) -> Row:
        picked = self.picked.get(e.id) if project == self.picked_project else None
        on = picked is not None and ("" in picked or c.id in picked)
        name = f"{c.id}  {c.type or c.description}"
        return Row(
            f"c:{project}:{e.id}:{c.id}",
            Kind.SCAN,
            3,
            name,
            f"{c.files} files" if c.files is not None else "",
            human_bytes(c.size) if c.size else "",
            "",
            "",
            "☑" if on else "☐",
            False,
        )

    def _mark(self, project: str, session_id: str) -> str:
        picked = self.picked.get(session_id) if project == self.picked_project else None
        if not picked:
            return "☐"
        return "☑" if "" in picked else "◐"

    def _mark_many(self, project: str, sessions: Iterable[SessionNode]) -> str:
        marks = {self._mark(project, e.id) for e in sessions}
        if not marks or marks == {"☐"}:
            return "☐"
        return "☑" if marks == {"☑"} else "◐"

    # ------------------------------------------------------------ type-ahead
    def jump(self, prefix: str, start: int = 0) -> int | None:
        """Index of the next visible row (from ``start``, wrapping) whose name starts
        with ``prefix`` (case-insensitive), else the first whose name contains it."""
        rows = self.rows()
        low = prefix.lower()
        order = [(start + offset) % len(rows) for offset in range(len(rows))]
        for i in order:
            if rows[i].name.lower().startswith(low):
                return i
        for i in order:
            if low in rows[i].name.lower():
                return i
        return None

    # ------------------------------------------------------------ selection
    @staticmethod
    def project_of(key: str) -> str:
        """The project a row is shown under (every key but a project's names it second)."""
        return key.partition(":")[2].split(":", 1)[0]

    def toggle(self, key: str) -> str:
        """Select or unselect what ``key`` names; returns a note ('' if none).

        A subject toggles all its sessions (with a filter on: those the filter shows),
        a session all its scans, a scan itself. The selection stays within one project:
        picking elsewhere starts anew.
        """
        kind, _, rest = key.partition(":")
        if kind == "p":
            return "open the project and select subjects, sessions or scans"
        project = self.project_of(key)
        rest = rest.partition(":")[2]  # the key without its project
        sessions: list[SessionNode] = []
        if kind == "s":
            sessions = self._sessions_of(project, rest)
            subject = next((s for s in self.subjects.get(project, []) if s.id == rest), None)
            if not sessions:  # nothing to pick: a selection elsewhere stays as it is
                return f"{subject.label if subject else rest} has no sessions to select"
        note = ""
        if self.picked and project != self.picked_project:
            self.picked.clear()
            note = f"selection moved to project {project}"
        self.picked_project = project
        if kind == "s":
            if self.filter_text.strip() and not (
                (subject is not None and self._matches(subject.label))
                or self._matches(*self._project_texts(project))
            ):
                # The subject is shown for the sessions the filter shows (a match of
                # theirs, or of one of their scans): only those are meant.
                shown = {r.key for r in self.rows() if r.kind is Kind.SESSION}
                sessions = [e for e in sessions if f"e:{project}:{e.id}" in shown]
            all_on = all("" in self.picked.get(e.id, set()) for e in sessions)
            for e in sessions:
                if all_on:
                    self.picked.pop(e.id, None)
                else:
                    self.picked[e.id] = {""}
        elif kind == "e":
            if self.picked.get(rest) == {""}:
                self.picked.pop(rest, None)
            else:
                self.picked[rest] = {""}
        elif kind == "c":
            session_id, _, scan_id = rest.partition(":")
            picked = self.picked.get(session_id, set())
            all_ids = {c.id for c in self.scans.get(session_id, [])}
            if "" in picked:
                picked = set(all_ids)
            picked ^= {scan_id}
            if not picked:
                self.picked.pop(session_id, None)
            else:
                self.picked[session_id] = {""} if picked == all_ids else picked
        return note

    def _project_texts(self, project: str) -> tuple[str, ...]:
        found = next((p for p in self.projects if p.id == project), None)
        return (found.id, found.name, found.secondary_id) if found else (project,)

    def clear_selection(self) -> None:
        self.picked.clear()

    def selection(self) -> Selection:
        chosen: list[SelectedSession] = []
        project = self.picked_project
        # Subjects by the label they have in this project (a shared one's listing gives
        # the label of the project it comes from).
        subject_labels = {s.id: s.label for s in self.subjects.get(project, [])}
        for session_id, picked in self.picked.items():
            e = self.session(project, session_id)
            if e is None:
                continue
            subject_label = subject_labels.get(e.subject_id) or e.subject_label
            scans: tuple[str, ...] = ()
            types: tuple[str, ...] = ()
            if "" not in picked:
                known = {c.id: c for c in self.scans.get(session_id, [])}
                scans = tuple(sorted(picked, key=_natural))
                types = tuple(dict.fromkeys(known[c].type for c in scans if c in known))
            chosen.append(
                SelectedSession(e.project, e.id, e.label, e.subject_id, subject_label, scans, types)
            )
        chosen.sort(key=lambda s: (s.subject_label, s.label))
        return Selection(project if chosen else "", tuple(chosen))


def _natural(text: str) -> tuple[int, int | str]:
    return (0, int(text)) if text.isdigit() else (1, text)


# ---------------------------------------------------------------- the real server


class ClientBrowseSource:
    """:class:`BrowseSource` over a logged-in client."""

    def __init__(self, client: XnatClient) -> None:
        self.client = client

    async def projects(self) -> list[ProjectNode]:
        return [ProjectNode(p.id, p.name, p.secondary_id) for p in await self.client.projects()]

    async def subjects(self, project: str) -> list[SubjectNode]:
        return [SubjectNode(project, s.id, s.label) for s in await self.client.subjects(project)]

    async def sessions(self, project: str) -> list[SessionNode]:
        return [
            SessionNode(
                # As seen in the project browsed: a session shared into it is listed
                # under its label there, and is acted on (downloaded, copied, moved
                # out of) as that project's.
                project=project,
                id=e.id,
                label=e.label,
                subject_id=e.subject_id,
                subject_label=e.subject_label,
                date=e.date,
                modality=e.modality,
                xsi_type=e.xsi_type,
                uid=e.study_uid,
            )
            for e in await self.client.experiments(project)
        ]

    async def scans(self, session: SessionNode) -> list[ScanNode]:
        scans, files = await asyncio.gather(
            self.client.scans(f"/data/experiments/{session.id}"),
            download_ops.session_files(self.client, session.id, resource="ALL"),
        )
        counts: dict[str, int] = {}
        sizes: dict[str, int] = {}
        for f in files:
            counts[f.scan_id] = counts.get(f.scan_id, 0) + 1
            sizes[f.scan_id] = sizes.get(f.scan_id, 0) + (f.size or 0)
        return [
            ScanNode(
                session.id,
                s.id,
                s.type,
                s.series_description,
                counts.get(s.id, 0),
                sizes.get(s.id, 0),
            )
            for s in scans
        ]
