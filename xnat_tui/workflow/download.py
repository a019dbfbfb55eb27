"""Downloads, for the CLI and the TUI alike: what to fetch, where each file goes.

A download is planned from a request (``--project``, subjects, sessions by label or
ID, scan types, resource), from the browser's :class:`Selection`, or from the
"Catalog XML" of XNAT's Download Images page; each session becomes one journalled job
with its full file list (URI, size, MD5) and each file's local path in the chosen
layout. :func:`build` makes the engine (registered for ``JobKind.DOWNLOAD``).

Layouts (``--layout``), under the output folder:

* ``xnat`` — as XNAT's own zip (and xnatpy's ``download_dir``):
  ``SESSION/scans/ID-TYPE/resources/RES/files/PATH``
* ``session`` — ``SUBJECT/SESSION/ID-TYPE/PATH`` (``.../ID-TYPE/RES/PATH`` when the
  session's files come from more than one resource)
* ``flat`` — every file of a session in one folder: ``SESSION/ID-PATH`` (``/`` in
  ``PATH`` becomes ``_``; ``ID-RES-PATH`` with several resources)

A catalog puts each scan resource's files in the folder its entry names, as the
Desktop Client does. Every name from the server is made a safe path component:
nothing can escape the output folder.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from xnat_tui.config import DOWNLOAD_LAYOUTS, Config
from xnat_tui.transfer.download import (
    DownloadEngine,
    PlannedDownload,
    PlannedFile,
    PlannedScan,
    part_name,
)
from xnat_tui.transfer.journal import Journal
from xnat_tui.transfer.kinds import JobKind
from xnat_tui.workflow.jobs import register
from xnat_tui.workflow.login import Connection
from xnat_tui.xnat import download_ops
from xnat_tui.xnat.client import XnatClient
from xnat_tui.xnat.errors import NotFound, ProtocolError, UsageError
from xnat_tui.xnat.models import Experiment

if TYPE_CHECKING:  # the browser's model: not loaded by every download's start
    from xnat_tui.workflow.browse import Selection

LAYOUTS = DOWNLOAD_LAYOUTS
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]")
_TYPE = re.compile(r"\W")


class DownloadProblem(UsageError):
    """What was asked for cannot be downloaded as asked (unknown session, bad layout)."""


def safe_component(text: str, fallback: str = "_") -> str:
    """One path component from a server-given name: no separators, no control
    characters, never ``.``/``..`` or empty."""
    clean = _UNSAFE.sub("_", text).strip()
    if clean in ("", ".", ".."):
        return fallback
    return clean


def safe_relpath(relpath: str) -> list[str]:
    """A resource's inner path as components; ``..`` or an absolute path is refused."""
    parts = [p for p in relpath.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        raise DownloadProblem(
            f"the server listed a file path that is not inside its resource: {relpath!r}"
        )
    return [safe_component(p) for p in parts]


@dataclass(frozen=True)
class SessionRef:
    project: str
    subject: str
    id: str
    label: str
    uid: str = ""


def local_path(
    out: Path,
    layout: str,
    session: SessionRef,
    scan_id: str,
    scan_type: str,
    f: download_ops.ListedFile,
    *,
    several_resources: bool,
) -> Path:
    label = safe_component(session.label or session.id)
    scan = safe_component(scan_id)
    kind = _TYPE.sub("_", scan_type)
    scan_folder = f"{scan}-{kind}" if kind else scan
    res = safe_component(f.resource or "files")
    parts = safe_relpath(f.relpath)
    if layout == "xnat":
        return out.joinpath(label, "scans", scan_folder, "resources", res, "files", *parts)
    if layout == "session":
        subject = safe_component(session.subject or "unknown-subject")
        extra = [res] if several_resources else []
        return out.joinpath(subject, label, scan_folder, *extra, *parts)
    if layout == "flat":
        name = "_".join(parts)
        middle = f"{scan}-{res}-" if several_resources else f"{scan}-"
        return out / label / safe_component(middle + name)
    raise DownloadProblem(f"unknown layout {layout!r}: choose {', '.join(LAYOUTS)}")


def _plan_session(
    session: SessionRef,
    files: Sequence[download_ops.ListedFile],
    types: dict[str, str],
    out: Path,
    layout: str,
    params: dict[str, str],
) -> PlannedDownload:
    several = len({f.resource for f in files}) > 1
    scans: dict[tuple[str, str], list[PlannedFile]] = {}
    for f in files:
        local = local_path(
            out, layout, session, f.scan_id, types.get(f.scan_id, ""), f, several_resources=several
        )
        scans.setdefault((f.scan_id, f.resource), []).append(
            PlannedFile(f.scan_id, f.resource, f.uri, local, f.size, f.digest)
        )
    _refuse_clashes(
        ((session.label, p) for group in scans.values() for p in group),
        # In the xnat layout the server's own names meet (scan "1" of type "T1" and scan
        # "1-T1" without one): no other layout is the way out there.
        "choose the xnat layout"
        if layout != "xnat"
        else "download those scans into separate folders (--out, with --scan-type)",
    )
    return PlannedDownload(
        project=session.project,
        subject=session.subject,
        session_id=session.id,
        label=session.label,
        out=out,
        uid=session.uid,
        scans=tuple(
            PlannedScan(scan_id, res, types.get(scan_id, ""), tuple(group))
            for (scan_id, res), group in scans.items()
        ),
        params=params,
    )


def _refuse_clashes(
    files: Iterable[tuple[str, PlannedFile]], hint: str = "choose the xnat layout"
) -> None:
    """Refuses, before anything is fetched, two files (of one session or of two, each
    given with its session's label) that would be saved at one path, or one at the
    path where the other's partial download (``.part``) goes: the later would
    overwrite the earlier, and both would be reported verified."""
    seen: dict[str, tuple[str, PlannedFile]] = {}
    for label, f in files:
        local = os.fspath(f.local)  # text: a Path per file costs ~10x (2,048 files: 35 ms)
        folder, name = os.path.split(local)
        part = os.path.join(folder, part_name(name))
        for path in (local, part):
            if path in seen:
                other, first = seen[path]
                who = f"session {label}" if other == label else f"sessions {other} and {label}"
                raise DownloadProblem(
                    f"{who}: two files would be saved as {path} ({first.uri} and {f.uri}); {hint}"
                )
        seen[local] = seen[part] = (label, f)


@dataclass
class DownloadPlan:
    downloads: list[PlannedDownload] = field(default_factory=list)
    # Sessions that have nothing to download (no such resource, no matching scans).
    empty: list[str] = field(default_factory=list)
    # Catalog entries the server no longer has (deleted since the catalog was made).
    missing: list[str] = field(default_factory=list)

    @property
    def files(self) -> int:
        return sum(len(d.files) for d in self.downloads)

    @property
    def bytes(self) -> int:
        return sum(d.bytes for d in self.downloads)


async def _types(client: XnatClient, session_id: str) -> dict[str, str]:
    return {s.id: s.type for s in await client.scans(f"/data/experiments/{session_id}")}


async def _plan_sessions(
    client: XnatClient,
    sessions: Sequence[SessionRef],
    *,
    out: Path,
    layout: str,
    resource: str,
    scan_types: Sequence[str] = (),
    scan_ids: dict[str, tuple[str, ...]] | None = None,
    concurrency: int = 4,
) -> DownloadPlan:
    if layout not in LAYOUTS:
        raise DownloadProblem(f"unknown layout {layout!r}: choose {', '.join(LAYOUTS)}")
    out = absolute(out)
    limit = asyncio.Semaphore(concurrency)
    wanted_types = {t.lower() for t in scan_types}

    async def one(
        s: SessionRef,
    ) -> tuple[SessionRef, list[download_ops.ListedFile], dict[str, str]]:
        async with limit:
            files, types = await asyncio.gather(
                download_ops.session_files(client, s.id, resource=resource), _types(client, s.id)
            )
        return s, files, types

    plan = DownloadPlan()
    params = {"layout": layout, "resource": resource}
    for s, files, types in await asyncio.gather(*(one(s) for s in sessions)):
        if wanted_types:
            files = [f for f in files if types.get(f.scan_id, "").lower() in wanted_types]
        picked = (scan_ids or {}).get(s.id)
        if picked:
            files = [f for f in files if f.scan_id in picked]
        if not files:
            plan.empty.append(s.label)
            continue
        plan.downloads.append(_plan_session(s, files, types, out, layout, params))
    if len(plan.downloads) > 1:  # each session's own were checked as it was planned
        _refuse_clashes(
            ((f"{d.project}/{d.label}", f) for d in plan.downloads for f in d.files),
            "download these sessions into separate folders (--out)",
        )
    return plan


def _ref(e: Experiment, project: str) -> SessionRef:
    return SessionRef(e.project or project, e.subject_label, e.id, e.label, e.study_uid)


async def plan_request(
    client: XnatClient,
    *,
    project: str,
    out: Path,
    subjects: Sequence[str] = (),
    sessions: Sequence[str] = (),
    scan_types: Sequence[str] = (),
    resource: str = "DICOM",
    layout: str = "xnat",
) -> DownloadPlan:
    """``xnat-tui download --project P [--subject S...] [--session E...] ...``."""
    found = await client.experiments(project)
    chosen = found
    if subjects:
        wanted = set(subjects)
        chosen = [e for e in chosen if e.subject_label in wanted or e.subject_id in wanted]
        known = {e.subject_label for e in found} | {e.subject_id for e in found}
        missing = [s for s in subjects if s not in known]
        if missing:
            raise DownloadProblem(
                f"project {project} has no session of subject(s) {', '.join(missing)}"
            )
    if sessions:
        wanted = set(sessions)
        chosen = [e for e in chosen if e.label in wanted or e.id in wanted]
        known = {e.label for e in chosen} | {e.id for e in chosen}
        missing = [s for s in sessions if s not in known]
        if missing:
            raise DownloadProblem(
                f"no session {', '.join(missing)} in project {project}"
                + (" for the given subject(s)" if subjects else "")
                + " (labels and IDs are case-sensitive)"
            )
    return await _plan_sessions(
        client,
        [_ref(e, project) for e in chosen],
        out=out,
        layout=layout,
        resource=resource,
        scan_types=scan_types,
    )


async def plan_selection(
    client: XnatClient,
    selection: Selection,
    *,
    out: Path,
    layout: str = "xnat",
    resource: str = "DICOM",
) -> DownloadPlan:
    """The browser's selection (sessions, or some scans of them)."""
    refs = [SessionRef(s.project, s.subject_label, s.id, s.label) for s in selection.sessions]
    scan_ids = {s.id: s.scans for s in selection.sessions if s.scans}
    return await _plan_sessions(
        client, refs, out=out, layout=layout, resource=resource, scan_ids=scan_ids
    )


_DESCRIPTION = re.compile(r"Project:\s*([^,]*),\s*subject:\s*([^,]*),\s*label:\s*(.*)$")


async def plan_catalog(
    client: XnatClient, catalog: str | bytes, *, out: Path, concurrency: int = 4
) -> DownloadPlan:
    """A "Catalog XML" (Download Images → Catalog XML): each scan resource's files go
    into the folder its entry names, as the Desktop Client saves them."""
    out = absolute(out)
    try:
        entries = download_ops.parse_catalog(catalog)
    except ProtocolError as exc:  # the user's file, not the server's answer: a usage error
        raise DownloadProblem(exc.message, hint=exc.hint) from None
    if not entries:
        raise DownloadProblem("the catalog lists no scan resources")
    entries = list(dict.fromkeys(entries))  # an entry listed twice is one resource
    limit = asyncio.Semaphore(concurrency)
    plan = DownloadPlan()

    async def listing(
        e: download_ops.CatalogEntry,
    ) -> tuple[download_ops.CatalogEntry, list[download_ops.ListedFile] | None]:
        async with limit:
            try:
                files = await download_ops.resource_files(
                    client, e.session_id, e.scan_id, e.resource
                )
            except NotFound as exc:
                # Deleted since the catalog was made: the rest is fetched, this is said.
                what = f"scan {e.scan_id} " if e.scan_id else ""
                plan.missing.append(f"{e.name or e.session_id}: {what}{e.resource}: {exc}")
                return e, None
            return e, files

    by_session: dict[str, list[tuple[download_ops.CatalogEntry, list[download_ops.ListedFile]]]]
    by_session = {}
    for e, listed in await asyncio.gather(*(listing(e) for e in entries)):
        if listed is not None:
            by_session.setdefault(e.session_id, []).append((e, listed))
    for session_id, parts in by_session.items():
        first = parts[0][0]
        match = _DESCRIPTION.search(first.session_description)
        project, subject, label = match.groups() if match else ("", "", session_id)
        ref = SessionRef(project.strip(), subject.strip(), session_id, label.strip())
        planned: dict[tuple[str, str], list[PlannedFile]] = {}
        for e, files in parts:
            folder = [safe_component(p) for p in e.name.split("/") if p not in ("", ".", "..")]
            for f in files:
                local = out.joinpath(*folder, *safe_relpath(f.relpath))
                planned.setdefault((e.scan_id, e.resource), []).append(
                    PlannedFile(e.scan_id, e.resource, f.uri, local, f.size, f.digest)
                )
        flat = [p for group in planned.values() for p in group]
        if not flat:
            plan.empty.append(ref.label)
            continue
        plan.downloads.append(
            PlannedDownload(
                project=ref.project,
                subject=ref.subject,
                session_id=session_id,
                label=ref.label,
                out=out,
                scans=tuple(
                    PlannedScan(scan_id, res, "", tuple(group))
                    for (scan_id, res), group in planned.items()
                ),
                params={"layout": "catalog"},
            )
        )
    # The catalog names each folder: two sessions' (same labels in two projects) may meet.
    _refuse_clashes(
        ((f"{d.project}/{d.label}", f) for d in plan.downloads for f in d.files),
        "the catalog names the same folder for both: download them into separate folders "
        "(--out), one catalog each",
    )
    return plan


def absolute(out: Path) -> Path:
    """The journal keeps absolute paths: a resume from another folder (or by the TUI)
    must write where the download began."""
    return Path(os.path.abspath(out.expanduser()))


def out_problem(out: Path) -> str | None:
    """Why a download cannot go into ``out``, before anything is asked of the server:
    a file where the folder would be, or no folder that may be written to or created
    (None: as far as can be told without writing)."""
    path = absolute(out)
    existing = path
    while not os.path.lexists(existing) and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        what = "a file, not a folder"
        if os.path.islink(existing) and not existing.exists():
            what = f"a link to {os.readlink(existing)}, which does not exist"
        if existing == path:
            return f"{path} is {what}"
        return f"cannot make the folder {path}: {existing} is {what}"
    if not os.access(existing, os.W_OK | os.X_OK):
        if existing == path:
            return f"no permission to write into {path}"
        return f"cannot make the folder {path}: no permission to write into {existing}"
    return None


def default_out(config: Config) -> Path:
    return Path(config.download.out_dir or "xnat-downloads").expanduser()


def engine_for(
    client: XnatClient, journal: Journal, *, server_url: str, username: str, jobs: int = 8
) -> DownloadEngine:
    return DownloadEngine(
        client, journal, server_url=server_url, username=username, concurrency=jobs
    )


async def build(connection: Connection, journal: Journal, config: Config) -> DownloadEngine:
    """The registered builder: the engine that runs download jobs for ``connection``."""
    if connection.client is None:
        raise LookupError("downloads need a logged-in client")
    return engine_for(
        connection.client,
        journal,
        server_url=connection.port.server_url,
        username=connection.port.username,
        jobs=config.download.jobs,
    )


@dataclass(frozen=True)
class Queued:
    """What one download request set going, for the command to wait on and report."""

    ids: list[str]  # the request's jobs, one per session
    replaced: list[str]  # unfinished ones this request replaced (cancelled)


async def queue(engine: DownloadEngine, plan: DownloadPlan) -> Queued:
    """Submits ``plan``: an unfinished job of the same session and folder goes on (among
    the ids) or is replaced (not waited for). Other unfinished downloads are left for
    'xnat-tui transfers resume': a request runs and reports its own jobs only."""
    await engine.start(resume=False)
    before = set(engine.replaced)
    ids = await engine.submit(plan.downloads)
    return Queued(ids, [j for j in engine.replaced if j not in before])


def summary_lines(plan: DownloadPlan) -> Iterable[str]:
    from xnat_tui.text import safe
    from xnat_tui.units import human_bytes

    for d in plan.downloads:
        yield (
            f"  {safe(d.project)}/{safe(d.subject)}/{safe(d.label)}: {len(d.scans)} scan "
            f"resource(s), {len(d.files)} file(s), {human_bytes(d.bytes)}"
        )
    for label in plan.empty:
        yield f"  {safe(label)}: nothing to download (no matching scans or resource)"
    for entry in plan.missing:
        yield f"  not on the server, not downloaded: {safe(entry)}"


register([JobKind.DOWNLOAD], build)
