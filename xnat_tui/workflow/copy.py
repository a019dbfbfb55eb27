"""Copying and moving sessions between projects: selection, labels, checks, plan, engine.

``xnat-tui copy`` / ``xnat-tui move`` (and the TUI) go through :class:`CopySession`:

1. :meth:`CopySession.sources` resolves the selection (sessions, subjects or a whole
   project) and lists every file with its MD5 (``xnat.download_ops.session_files``);
2. :meth:`CopySession.check_permissions` refuses up front, with the reason: read on
   the source, create in the destination, delete on the source for a move;
3. :meth:`CopySession.requests` makes one upload request per session (labels from
   templates over the source's labels, or from a CSV map) and the one planner
   (``workflow.planner``) classifies each target in the destination exactly as for
   an upload (new, merge, conflict, subject to be created, not permitted) and applies
   the destination's series import filters;
4. :meth:`CopySession.differences` says what the destination will do differently
   from the source (series filters, anonymization scripts);
5. the jobs (kind ``copy`` or ``move``) run in :class:`~xnat_tui.transfer.copy_engine.CopyEngine`,
   which streams source → destination with no local copy (``via_disk`` keeps one).

XNAT's native alternatives are here too: :func:`share` (links only) and
:func:`change_primary` (the server moves the files), each label checked first.

Label templates: ``{routing.subject}`` and ``{routing.session}`` are the source's
subject and session labels (a copied session's "routing" is where it came from), and
the DICOM fields XNAT keeps for a session (``{PatientID}``, ``{PatientName}``,
``{StudyDate}``, ``{Modality}``, ``{AccessionNumber}``) and ``{n}`` work as for uploads.
"""

from __future__ import annotations

import asyncio
import csv
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from xnat_tui.config import Config
from xnat_tui.dicom.routing import PatternLike
from xnat_tui.transfer.anon import AnonymizerSet
from xnat_tui.transfer.copy_engine import CopyEngine, SourceFileInfo, SourceReader
from xnat_tui.transfer.copy_routing import DEFAULT_PATTERNS
from xnat_tui.transfer.journal import Journal
from xnat_tui.transfer.kinds import JobKind
from xnat_tui.transfer.plan import JobRequest, Plan, PlannedJob
from xnat_tui.transfer.remote_source import Wanted, remote_path
from xnat_tui.transfer.types import (
    AnonOptions,
    Destination,
    JobState,
    Overwrite,
    SourceFile,
    SourceSeries,
    SourceSession,
)
from xnat_tui.workflow.browse import Selection
from xnat_tui.workflow.jobs import JobEngine, register
from xnat_tui.workflow.login import Connection
from xnat_tui.workflow.planner import Planner
from xnat_tui.workflow.targets import Assessment, TargetKind, classify
from xnat_tui.workflow.templates import TemplateError, render
from xnat_tui.xnat import download_ops, share_ops
from xnat_tui.xnat.client import XnatClient
from xnat_tui.xnat.models import Experiment, RemoteFile, data_uri

log = logging.getLogger("xnat_tui.workflow")

SUBJECT_TEMPLATE = "{routing.subject}"
SESSION_TEMPLATE = "{routing.session}"
# Reads of one source file before its scan is given back to the engine's retry policy.
FETCH_ATTEMPTS = 4


class CopyError(Exception):
    """A selection, map or label problem the user must fix; nothing was copied."""


@dataclass(frozen=True)
class CopySettings:
    destination: Destination = Destination.PROJECT
    anonymization: str = "none"  # none | xnat (the destination's scripts) | basic
    anon_options: AnonOptions = field(default_factory=AnonOptions)
    variables: dict[str, str] = field(default_factory=dict)
    concurrency: int = 4
    via_disk: Path | None = None
    # The site's routing conventions ([defaults] routing_patterns): the routing strings
    # a copy rewrites for the destination are the ones the scanner would read.
    routing_patterns: tuple[PatternLike, ...] = DEFAULT_PATTERNS


def settings_for(
    config: Config,
    *,
    destination: Destination | None = None,
    anonymization: str | None = None,
    concurrency: int | None = None,
    via_disk: Path | None = None,
) -> CopySettings:
    """The settings of one copy: what was given, else ``[copy]``, else ``[defaults]``."""
    where = config.copy.destination or config.defaults.destination
    return CopySettings(
        destination=destination or Destination(where),
        anonymization=anonymization or config.copy.anonymization,
        concurrency=concurrency or config.defaults.concurrency,
        via_disk=via_disk,
        routing_patterns=tuple(config.defaults.routing_patterns),
    )


@dataclass
class Source:
    """One source session with everything a copy needs to know about it."""

    experiment: Experiment
    session: SourceSession
    digests: dict[str, str]  # file URI -> MD5 as listed
    scans: dict[str, str]  # series UID -> source scan ID

    @property
    def label(self) -> str:
        return self.experiment.label

    @property
    def subject(self) -> str:
        return self.experiment.subject_label


@dataclass(frozen=True)
class Target:
    subject: str
    label: str


@dataclass(frozen=True)
class RowCheck:
    """One session of a copy as the destination would take it (the TUI's label table)."""

    source: Source
    target: Target | str  # the labels, or why none could be made
    assessment: Assessment  # new / merge / conflict / invalid / not permitted
    job: PlannedJob

    @property
    def queueable(self) -> bool:
        return self.assessment.kind.queueable


@dataclass(frozen=True)
class Checked:
    """Every session checked in the destination: what would be queued, and why not."""

    plan: Plan
    rows: list[RowCheck]
    refusal: str  # the permission refusal ('' when allowed), applying to every row

    @property
    def queueable(self) -> list[RowCheck]:
        return [r for r in self.rows if r.queueable]

    def sendable_plan(self) -> Plan:
        return Plan([r.job for r in self.queueable])


# ---- selection and listing ------------------------------------------------------------


async def select(
    client: XnatClient,
    project: str,
    *,
    sessions: Sequence[str] = (),
    subjects: Sequence[str] = (),
    everything: bool = False,
) -> list[Experiment]:
    """The source sessions named (label or accession ID), of the subjects named, or all."""
    found = await client.experiments(project)
    if everything:
        return found
    out: list[Experiment] = []
    for name in sessions:
        hit = [e for e in found if name in (e.label, e.id)]
        if not hit:
            raise CopyError(f"project {project} has no session {name}")
        out += hit
    for name in subjects:
        hit = [e for e in found if name in (e.subject_label, e.subject_id)]
        if not hit:
            raise CopyError(f"project {project} has no session of subject {name}")
        out += hit
    unique: dict[str, Experiment] = {e.id: e for e in out}
    return list(unique.values())


async def describe(client: XnatClient, experiment: Experiment) -> Source:
    """List the session's scans and files (MD5 included) as planner input."""
    listed = await download_ops.session_files(client, experiment.id)
    scans = {s.id: s for s in await client.scans(f"/data/experiments/{experiment.id}")}
    by_scan: dict[str, list[download_ops.ListedFile]] = {}
    for f in listed:
        if f.scan_id:
            by_scan.setdefault(f.scan_id, []).append(f)
    raw = experiment.raw
    attributes = {
        "PatientID": str(raw.get("dcmPatientId", "")),
        "PatientName": str(raw.get("dcmPatientName", "")),
        "StudyDate": experiment.date.replace("-", ""),
        "AccessionNumber": str(raw.get("dcmAccessionNumber", "")),
        "Modality": experiment.modality,
    }
    series: list[SourceSeries] = []
    scan_of: dict[str, str] = {}
    digests: dict[str, str] = {}
    for scan_id in sorted(by_scan, key=_natural):
        info = scans.get(scan_id)
        uid = str(info.raw.get("UID", "")) if info is not None else ""
        uid = uid or f"{experiment.id}.scan.{scan_id}"
        files = sorted(by_scan[scan_id], key=lambda f: f.relpath)
        for f in files:
            digests[f.uri] = f.digest
        scan_of[uid] = scan_id
        description = info.series_description if info is not None else ""
        number = int(scan_id) if scan_id.isdigit() else None
        series.append(
            SourceSeries(
                series_instance_uid=uid,
                series_number=number,
                description=description,
                modality=experiment.modality,
                files=[SourceFile(Path(remote_path(f.uri)), f.size or 0) for f in files],
                headers={
                    "SeriesDescription": description,
                    "Modality": experiment.modality,
                    "SeriesInstanceUID": uid,
                    **({"SeriesNumber": scan_id} if number is not None else {}),
                },
            )
        )
    session = SourceSession(
        study_instance_uid=experiment.study_uid or f"{experiment.id}.study",
        series=series,
        attributes=attributes,
        routing={"subject": experiment.subject_label, "session": experiment.label},
    )
    return Source(experiment, session, digests, scan_of)


def only_scans(source: Source, scans: Iterable[str]) -> Source:
    """``source`` with only the scans named (IDs); the rest is left out of the copy."""
    keep = set(scans)
    uids = {uid for uid, scan in source.scans.items() if scan in keep}
    series = [s for s in source.session.series if s.series_instance_uid in uids]
    return Source(
        source.experiment,
        replace(source.session, series=series),
        source.digests,
        {uid: scan for uid, scan in source.scans.items() if uid in uids},
    )


def _natural(text: str) -> tuple[int, int | str]:
    return (0, int(text)) if text.isdigit() else (1, text)


def read_map(path: Path) -> dict[str, Target]:
    """``--map FILE.csv``: columns ``source`` (session label or ID), ``subject``,
    ``session`` (a header row with these names; extra columns are ignored)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise CopyError(f"{path}: {exc.strerror or exc}") from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise CopyError(f"{path}: not a readable CSV file ({exc})") from None
    out: dict[str, Target] = {}
    for n, row in enumerate(rows, start=2):
        source = (row.get("source") or "").strip()
        subject = (row.get("subject") or "").strip()
        session = (row.get("session") or "").strip()
        if not source or not subject or not session:
            raise CopyError(
                f"{path} line {n}: needs the columns source, subject and session, each filled"
            )
        if source in out:
            raise CopyError(f"{path} line {n}: session {source} is mapped twice")
        out[source] = Target(subject, session)
    return out


# ---- the session ------------------------------------------------------------------


class CopySession:
    """Plans copies/moves from one project to another on one server and runs them."""

    def __init__(
        self,
        connection: Connection,
        journal: Journal,
        *,
        settings: CopySettings | None = None,
    ) -> None:
        if connection.client is None:
            raise ValueError("copying needs a client connection")
        self.connection = connection
        self.client: XnatClient = connection.client
        self.journal = journal
        self.settings = settings or CopySettings()
        self.planner = Planner(connection.port, journal)
        self.anonymizers = AnonymizerSet()
        self.engine: CopyEngine | None = None
        self._permissions: share_ops.Permissions | None = None

    async def sources(
        self,
        project: str,
        *,
        sessions: Sequence[str] = (),
        subjects: Sequence[str] = (),
        everything: bool = False,
    ) -> list[Source]:
        picked = await select(
            self.client, project, sessions=sessions, subjects=subjects, everything=everything
        )
        return list(await asyncio.gather(*(describe(self.client, e) for e in picked)))

    async def selected(self, selection: Selection) -> list[Source]:
        """The browser's selection as sources; a session picked with only some of its
        scans keeps only those (a move refuses such a pick: it deletes whole sessions)."""
        found = {e.id: e for e in await self.client.experiments(selection.project)}
        missing = [s.label for s in selection.sessions if s.id not in found]
        if missing:
            raise CopyError(f"no longer in {selection.project}: {', '.join(missing)}")
        picked = [found[s.id] for s in selection.sessions]
        sources = list(await asyncio.gather(*(describe(self.client, e) for e in picked)))
        for i, sel in enumerate(selection.sessions):
            if sel.scans:
                sources[i] = only_scans(sources[i], sel.scans)
        return sources

    async def shared_refusal(self, project: str, sessions: Sequence[tuple[str, str]]) -> str:
        """Why a move out of ``project`` is refused ('' when it is not): a session only
        shared into it keeps its files in the project it comes from, and deleting it
        from ``project`` would only unshare it. ``sessions``: (accession ID, label)."""
        primaries = await asyncio.gather(
            *(share_ops.primary_project(self.client, sid) for sid, _ in sessions)
        )
        shared = [
            (label, home)
            for (_, label), home in zip(sessions, primaries, strict=True)
            if home and home != project
        ]
        if not shared:
            return ""
        names = ", ".join(f"{label} (from {home})" for label, home in shared)
        return (
            f"only shared into {project}: {names}. A shared session's files belong to the "
            f"project it comes from, and deleting it from {project} would only unshare it: "
            "move it from there, or copy it"
        )

    async def permissions(self) -> share_ops.Permissions:
        """What the user may read, create and delete where (asked once per session)."""
        if self._permissions is None:
            self._permissions = await share_ops.permissions(self.client)
        return self._permissions

    async def destinations(self, source: str) -> list[str]:
        """Projects a copy from ``source`` could go to: those the user may read, except
        ``source`` (ones without create rights are offered, and refused with the reason)."""
        perms = await self.permissions()
        return sorted((perms.read | perms.create) - {source})

    async def check_permissions(
        self, source: str, dest: str, *, move: bool, create_subjects: bool = True
    ) -> str:
        """Why the copy or move may not go ahead ('' when it may), before anything moves."""
        perms = await self.permissions()
        return perms.refusal(source, dest, move=move, create_subjects=create_subjects)

    def targets(
        self,
        sources: Sequence[Source],
        *,
        subject_template: str = SUBJECT_TEMPLATE,
        session_template: str = SESSION_TEMPLATE,
        mapping: dict[str, Target] | None = None,
        overrides: Mapping[str, Target] | None = None,
    ) -> list[Target | str]:
        """Each source's destination labels, or why none could be made. ``overrides``
        (source session ID → labels) are the ones the user typed (the TUI's table)."""
        out: list[Target | str] = []
        taken: set[str] = set()
        for s in sources:
            typed = (overrides or {}).get(s.experiment.id)
            if typed is not None:
                taken.add(typed.label)
                out.append(typed)
                continue
            if mapping is not None:
                target = mapping.get(s.label) or mapping.get(s.experiment.id)
                out.append(target or f"session {s.label} is not in the map")
                continue
            try:
                subject, _ = render(subject_template, s.session)
                label, _ = render(session_template, s.session, subject=subject, taken=taken)
            except TemplateError as exc:
                out.append(str(exc))
                continue
            taken.add(label)
            out.append(Target(subject, label))
        return out

    def requests(
        self,
        sources: Sequence[Source],
        targets: Sequence[Target | str],
        dest: str,
        *,
        move: bool,
        rewritten_on_arrival: bool = False,
    ) -> list[JobRequest]:
        """``rewritten_on_arrival``: the server may rewrite what arrives in ``dest``
        (:meth:`rewritten_on_arrival`): a file whose MD5 then differs from the source's
        is compared by count."""
        kind = JobKind.MOVE if move else JobKind.COPY
        out: list[JobRequest] = []
        for s, t in zip(sources, targets, strict=True):
            subject, label, error = ("", "", t) if isinstance(t, str) else (t.subject, t.label, "")
            out.append(
                JobRequest(
                    session=s.session,
                    project=dest,
                    subject=subject,
                    label=label,
                    destination=self.settings.destination,
                    overwrite=Overwrite.NONE,
                    anonymization=self.settings.anonymization,
                    anon_options=self.settings.anon_options,
                    variables=self.settings.variables,
                    label_error=error,
                    include_burned_in=True,  # a copy keeps every scan the source has
                    kind=kind,
                    params={
                        "mode": str(kind),
                        "source": {
                            "project": s.experiment.project,
                            "subject": s.subject,
                            "session": s.label,
                            "id": s.experiment.id,
                        },
                        "digests": s.digests,
                        "scans": s.scans,
                        "rewritten_on_arrival": rewritten_on_arrival,
                    },
                )
            )
        return out

    async def plan(self, requests: Iterable[JobRequest]) -> Plan:
        return await self.planner.plan(requests)

    async def check(
        self, sources: Sequence[Source], targets: Sequence[Target | str], dest: str, *, move: bool
    ) -> Checked:
        """Each session classified in ``dest`` as an upload's target is (one planner, one
        classifier); a permission refusal makes every row 'not permitted' with its reason."""
        source = sources[0].experiment.project if sources else ""
        refusal = await self.check_permissions(source, dest, move=move) if sources else ""
        rewrites = await self.rewritten_on_arrival(dest) if sources else False
        plan = await self.plan(
            self.requests(sources, targets, dest, move=move, rewritten_on_arrival=rewrites)
        )
        rows: list[RowCheck] = []
        for s, t, job in zip(sources, targets, plan.jobs, strict=True):
            assessment = classify(job)
            if refusal:
                assessment = Assessment(TargetKind.NOT_PERMITTED, refusal)
            rows.append(RowCheck(s, t, assessment, job))
        return Checked(plan, rows, refusal)

    async def rewritten_on_arrival(self, dest: str) -> bool:
        """Whether the server may rewrite what arrives in ``dest`` (its project's or the
        site's anonymization script, which XNAT applies on arrival): copied files whose
        MD5 differs from the source's are then compared by count (those it left alone
        still by MD5), as ``differences`` tells the user."""
        dst = await self.client.project_settings(dest)
        scripts = (dst.site_anon,) + (
            () if self.settings.anonymization == "xnat" else (dst.project_anon,)
        )  # "xnat": the project's script was applied here, to what was sent
        return any(a is not None and a.enabled and a.contents for a in scripts)

    async def differences(self, source: str, dest: str) -> list[str]:
        """What the destination does differently from the source project (one line each)."""
        src = await self.client.project_settings(source)
        dst = await self.client.project_settings(dest)
        notes: list[str] = []

        if dst.project_filter != src.project_filter:
            if dst.project_filter is not None:
                notes.append(
                    f"{dest} has its own series import filter ({dst.project_filter.mode}): "
                    "scans it drops are left out of the copy (listed in the plan)"
                )
            else:
                notes.append(f"{dest} has no series import filter ({source} has one)")
        src_anon = src.project_anon.contents if src.project_anon else ""
        dst_anon = dst.project_anon.contents if dst.project_anon else ""
        if dst_anon != src_anon:
            if dst_anon and self.settings.anonymization == "xnat":
                notes.append(
                    f"{dest}'s project anonymization script is applied here before sending "
                    f"({source} {'has another' if src_anon else 'has none'})"
                )
            elif dst_anon:
                notes.append(
                    f"{dest} has a project anonymization script ({source} "
                    f"{'has another' if src_anon else 'has none'}); XNAT applies it on arrival, "
                    "so the copied files will differ from the source (verified by count)"
                )
            else:
                notes.append(f"{dest} has no project anonymization script ({source} has one)")
        return notes

    # ---- engine -----------------------------------------------------------------
    async def start(self) -> list[str]:
        projects = {
            j.project
            for j in self.journal.jobs(
                server=self.connection.port.server_url, kinds=[JobKind.COPY, JobKind.MOVE]
            )
            if not j.state.finished
        }
        await self._prepare_anonymization(projects)
        self.engine = build_engine(self.connection, self.journal, self.settings, self.anonymizers)
        return await self.engine.start(resume=True)

    async def _prepare_anonymization(
        self, projects: Iterable[str], anonymizers: AnonymizerSet | None = None
    ) -> str:
        refused: list[str] = []
        profile = self.settings.anonymization
        anons = anonymizers or self.anonymizers
        for project in sorted(set(projects)):
            try:
                await anons.prepare(self.client, project, profile, self.settings.anon_options)
            except Exception as exc:
                refused.append(f"{project}: {exc}")
        return "; ".join(refused)

    async def submit(self, plan: Plan) -> list[str]:
        if self.engine is None:
            raise RuntimeError("the copy engine is not running")
        return await self.queue(self.engine, plan)

    async def queue(self, engine: CopyEngine, plan: Plan) -> list[str]:
        """Journal and queue the plan's sendable jobs on ``engine`` (the Transfers panel's
        copy engine in the TUI), their anonymization prepared there first."""
        projects = {j.request.project for j in plan.sendable}
        if engine.anonymizers is None:
            engine.anonymizers = self.anonymizers  # not expected: build_engine sets one
        refused = await self._prepare_anonymization(projects, engine.anonymizers)
        if refused:
            raise CopyError(f"anonymization refused: {refused}; nothing was copied")
        return await engine.submit(plan)

    async def close(self) -> None:
        if self.engine is not None:
            await self.engine.close()
        await asyncio.to_thread(self.anonymizers.close)


def build_engine(
    connection: Connection,
    journal: Journal,
    settings: CopySettings,
    anonymizers: AnonymizerSet | None = None,
) -> CopyEngine:
    client = connection.client
    if client is None:
        raise ValueError("copying needs a client connection")
    return CopyEngine(
        connection.port,
        journal,
        source_reader(client, via_disk=settings.via_disk),
        anonymizers=anonymizers or AnonymizerSet(),
        concurrency=settings.concurrency,
        routing_patterns=settings.routing_patterns,
    )


def source_reader(client: XnatClient, *, via_disk: Path | None = None) -> SourceReader:
    """The engine's view of the source: verified fetches, listings, the delete."""

    async def fetch(wanted: Wanted) -> bytes:
        listed = download_ops.ListedFile(
            scan_id="",
            resource="",
            relpath=wanted.uri.rsplit("/files/", 1)[-1],
            uri=wanted.uri,
            size=wanted.size,
            digest=wanted.digest,
        )
        # One file is retried on its own (a dropped read, a damaged body): the engine
        # would otherwise resend the whole scan for one bad file.
        for attempt in range(1, FETCH_ATTEMPTS + 1):
            try:
                data = await download_ops.fetch_verified(client, listed)
                break
            except Exception as exc:
                if attempt == FETCH_ATTEMPTS or not getattr(exc, "retriable", False):
                    raise
                await asyncio.sleep(min(2.0, 0.1 * 2**attempt))
        if via_disk is not None:
            await asyncio.to_thread(_keep, via_disk, wanted.uri, data)
        return data

    async def list_source(session_id: str) -> list[SourceFileInfo]:
        files = await download_ops.session_files(client, session_id)
        return [SourceFileInfo(f.scan_id, f.uri, f.size or 0, f.digest) for f in files]

    async def list_dest(uri: str) -> dict[str, list[RemoteFile]]:
        return await client.session_files(data_uri(uri))

    async def delete_source(src: dict[str, str]) -> bool:
        gone = await share_ops.delete_experiment(
            client, src["project"], src["subject"], src["session"], remove_files=True
        )
        # A 404 is "already gone" only if the project no longer lists it: a path the
        # server does not know (a label it spells otherwise) deletes nothing.
        if (
            not gone
            and src.get("id")
            and await share_ops.listed_in(client, src["project"], src["id"])
        ):
            raise CopyError(
                f"the server answered 404 to deleting {src['project']}/{src['session']}, "
                "and still lists it: nothing was deleted"
            )
        return gone

    return SourceReader(fetch, list_source, list_dest, delete_source)  # type: ignore[arg-type]


def _keep(root: Path, uri: str, data: bytes) -> None:
    """``--via-disk``: the file under ROOT/<session id>/scans/<scan>/<resource>/<path>."""
    tail = uri.split("/experiments/", 1)[-1]
    parts = [p for p in tail.split("/") if p not in ("", ".", "..")]
    target = root.joinpath(*parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(target)


# ---- XNAT's native alternatives -------------------------------------------------------


async def share(
    client: XnatClient, sources: Sequence[Experiment], dest: str, targets: Sequence[Target]
) -> list[str]:
    """Share each subject, then each session, with its label: links only (§B.1)."""
    lines: list[str] = []
    for e, t in zip(sources, targets, strict=True):
        subj = await share_ops.share_subject(client, e.project, e.subject_label, dest, t.subject)
        if not subj.ok:
            lines.append(f"subject {e.subject_label}: {subj.conflict} (going on)")
        r = await share_ops.share_experiment(
            client, e.project, e.subject_label, e.label, dest, t.label
        )
        lines.append(
            f"{e.label} shared into {dest} as {t.subject}/{t.label}"
            if r.ok
            else f"{e.label}: not shared: {r.conflict}"
        )
    return lines


async def change_primary(
    client: XnatClient, sources: Sequence[Experiment], dest: str, targets: Sequence[Target]
) -> list[str]:
    """Make ``dest`` each session's primary project (the server moves the files, §B.2).

    XNAT carries on despite a label clash, so every label is checked first and nothing
    moves if any is taken."""
    taken = [t.label for t in targets if not await share_ops.label_free(client, dest, t.label)]
    if taken:
        raise CopyError(
            f"session label(s) already used in {dest}: {', '.join(taken)}; nothing was moved"
        )
    lines: list[str] = []
    for e, t in zip(sources, targets, strict=True):
        # The subject first, as XNAT's UI does: a session move leaves its subject behind.
        subj = await share_ops.share_subject(client, e.project, e.subject_label, dest, t.subject)
        if not subj.ok:
            lines.append(f"subject {e.subject_label}: {subj.conflict} (going on)")
        await share_ops.change_primary(client, e.project, e.subject_label, e.label, dest, t.label)
        lines.append(f"{e.label} moved to {dest} as {t.label} (files moved by the server)")
    return lines


async def _build(connection: Connection, journal: Journal, config: Config) -> JobEngine:
    """For ``transfers resume/retry`` and the Transfers panel: anonymizers of the
    unfinished and failed (retryable) copy jobs prepared first (each job journals its
    own profile)."""
    anons = AnonymizerSet()
    if connection.client is not None:
        for job in journal.jobs(
            server=connection.port.server_url, kinds=[JobKind.COPY, JobKind.MOVE]
        ):
            retryable = not job.state.finished or job.state is JobState.FAILED
            if retryable and job.anonymization not in ("", "none"):
                try:
                    await anons.prepare_job(connection.client, job)
                except Exception as exc:  # that job fails with the reason; others go on
                    log.error("anonymization for copy job %s: %s", job.id, exc)
    settings = CopySettings(concurrency=config.defaults.concurrency)
    return build_engine(connection, journal, settings, anons)


register([JobKind.COPY, JobKind.MOVE], _build)
