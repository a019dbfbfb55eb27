"""Sending sessions over DICOM (C-STORE), for the CLI (``xnat-tui send``) and the TUI.

Plans which labels each session is routed to and the exact values written into the
copies sent (``dicom.routing``, the one routing parser), journals one ``send`` job per
session, and builds the send engine with its REST look-up: after the receiver's idle
time the session is searched in the prearchive and archive by StudyInstanceUID and
the routed labels, instance counts are compared per series, and sessions that landed
as Unassigned or split into several prearchive entries are reported for triage.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from xnat_tui.config import Config, DicomProfile
from xnat_tui.dicom.routing import routing_values
from xnat_tui.transfer.anon import AnonymizerSet
from xnat_tui.transfer.cstore import DicomDestination
from xnat_tui.transfer.cstore_engine import SendEngine, Verification, default_params
from xnat_tui.transfer.journal import JobRecord, Journal, NewJob
from xnat_tui.transfer.kinds import JobKind
from xnat_tui.transfer.types import AnonOptions, Destination, Overwrite, SourceSession
from xnat_tui.workflow.jobs import JobEngine, register
from xnat_tui.workflow.targets import (
    NO_ROUTING,
    LabelRules,
    ProjectLabels,
    RulesFor,
    propose,
    routed_project,
)
from xnat_tui.xnat.errors import NotFound, PermissionDenied

if TYPE_CHECKING:
    from xnat_tui.workflow.login import Connection


@dataclass(frozen=True)
class SendSettings:
    destination: DicomDestination
    routing: str = "xnat"  # xnat | site | none
    routing_tag: str = "PatientComments"
    site_template: str = "xnat://{project}/{subject}/{session}"
    associations: int = 1
    anonymization: str = "none"
    anon_options: AnonOptions = AnonOptions()
    verify: bool = True
    idle_seconds: float = 300.0


@dataclass
class SendItem:
    """One session to send: its labels, what is written into each copy, or why not."""

    session: SourceSession
    project: str = ""
    subject: str = ""
    label: str = ""
    routing: dict[str, str] = field(default_factory=dict)
    problem: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem

    @property
    def files(self) -> int:
        return sum(s.file_count for s in self.session.series)

    def to_dict(self) -> dict[str, Any]:
        return {
            "study_instance_uid": self.session.study_instance_uid,
            "project": self.project,
            "subject": self.subject,
            "session": self.label,
            "routing": dict(self.routing),
            "instances": self.files,
            "problem": self.problem,
        }


def settings_from_profile(profile: DicomProfile, **overrides: Any) -> SendSettings:
    dest = DicomDestination(profile.ae, profile.host, profile.port, profile.calling_ae)
    base: dict[str, Any] = {
        "destination": dest,
        "routing": profile.routing,
        "routing_tag": profile.routing_tag,
        "site_template": profile.site_template,
        "verify": profile.verify,
        "idle_seconds": profile.idle_seconds,
    }
    base.update({k: v for k, v in overrides.items() if v is not None})
    return SendSettings(**base)


def plan(
    sessions: Sequence[SourceSession],
    settings: SendSettings,
    rules: LabelRules | RulesFor,
    *,
    project: str | None = None,
    routed: bool = False,
) -> list[SendItem]:
    """Labels and routing values per session (``--project`` or ``--routed``).

    With routing ``none`` nothing is written and no labels are needed."""
    if settings.routing == "none":
        # Nothing is written; the labels only name the job in the Transfers panel.
        return [
            SendItem(
                s,
                subject=s.attributes.get("PatientID", ""),
                label=s.attributes.get("StudyDescription", "") or s.study_instance_uid[-12:],
            )
            for s in sessions
        ]
    projects = [project or "" for _ in sessions]
    if routed:
        projects = [routed_project(s) for s in sessions]
    proposals = propose(sessions, rules, projects=projects, existing=lambda _p: ProjectLabels())
    out: list[SendItem] = []
    for s, p in zip(sessions, proposals, strict=True):
        item = SendItem(s, p.project, p.subject, p.label)
        if not p.project:
            item.problem = NO_ROUTING if routed else "no project (use --project or --routed)"
        elif p.template_error:
            item.problem = p.template_error
        else:
            _route(item, settings)
        out.append(item)
    return out


def _route(item: SendItem, settings: SendSettings) -> None:
    """The values the copies carry for the item's labels, or why there are none."""
    try:
        item.routing = routing_values(
            settings.routing,
            item.project,
            item.subject,
            item.label,
            xnat_tag=settings.routing_tag,
            site_template=settings.site_template,
        )
    except ValueError as exc:
        item.problem = str(exc)


def plan_labelled(
    entries: Sequence[tuple[SourceSession, str, str, str]], settings: SendSettings
) -> list[SendItem]:
    """Sessions the user has labelled (the TUI's Labels pane): (session, project,
    subject, session label) each; the routing values written follow from the labels."""
    out: list[SendItem] = []
    for session, project, subject, label in entries:
        item = SendItem(session, project, subject, label)
        if settings.routing != "none":
            if not (project and subject and label):
                item.problem = "no project, subject or session label: fill in the Labels pane"
            else:
                _route(item, settings)
        out.append(item)
    return out


def preview_lines(items: Sequence[SendItem], settings: SendSettings) -> list[str]:
    """What the confirmation shows: per session, the exact values written (raw text;
    callers pass every line through ``safe()``)."""
    lines = [
        f"destination {settings.destination} (calling AE {settings.destination.calling_ae}), "
        f"{settings.associations} association(s), anonymization {settings.anonymization}"
    ]
    for it in items:
        head = f"  {it.session.study_instance_uid}: {it.files} instance(s)"
        if it.problem:
            lines.append(f"{head}  REFUSED: {it.problem}")
        elif not it.routing:
            lines.append(f"{head}  sent as they are (no routing written)")
        else:
            written = "; ".join(f"{k} = {v!r}" for k, v in it.routing.items())
            lines.append(f"{head}  -> {it.project}/{it.subject}/{it.label}  writes {written}")
    return lines


def journal_jobs(
    journal: Journal,
    items: Sequence[SendItem],
    settings: SendSettings,
    *,
    server: str = "",
    username: str = "",
) -> list[str]:
    """One ``send`` job per sendable session, journalled before anything is sent."""
    jobs = [
        NewJob(
            # The REST server verifies; without one the destination names the job.
            server=server or f"{OFFLINE_SCHEME}{settings.destination}",
            username=username,
            project=it.project,
            subject=it.subject,
            label=it.label,
            study_uid=it.session.study_instance_uid,
            destination=Destination.PREARCHIVE,
            overwrite=Overwrite.NONE,
            series=list(it.session.series),
            anonymization=settings.anonymization,
            anon_options=settings.anon_options.for_profile(settings.anonymization),
            source_root=str(it.session.root or ""),
            kind=JobKind.SEND,
            params=default_params(
                settings.destination,
                routing=it.routing,
                associations=settings.associations,
                verify=settings.verify and bool(server),
                extra={"idle_seconds": settings.idle_seconds},
            ),
        )
        for it in items
        if it.ok
    ]
    return journal.create_jobs(jobs) if jobs else []


# ---- verification through REST ---------------------------------------------------------


def make_verifier(client: Any) -> Callable[[JobRecord, dict[str, int]], Any]:
    """The look-up after the idle time, on an ``XnatClient``."""

    async def verify(job: JobRecord, sent: dict[str, int]) -> Verification:
        entries = [e for e in await client.prearchive() if e.tag == job.study_uid]
        unassigned = [e for e in entries if e.project in ("", "Unassigned")]
        placed = [e for e in entries if e not in unassigned]
        archived: list[Any] = []
        if job.project and job.label:
            try:
                with_label = await client.experiments(job.project, label=job.label)
            except (NotFound, PermissionDenied):
                with_label = []  # a routed project that does not exist: Unassigned below
            archived = [e for e in with_label if not e.study_uid or e.study_uid == job.study_uid]
        triage = tuple(e.uri for e in entries)
        expected = sum(sent.values())
        if not entries and not archived:
            return Verification(
                False,
                f"the receiver acknowledged {expected} instance(s) but no session with "
                f"StudyInstanceUID {job.study_uid} is in the prearchive or archive "
                "(filtered by the server, still arriving, or not visible to you)",
            )
        if unassigned:
            return Verification(
                False,
                f"landed as Unassigned ({len(unassigned)} prearchive entr"
                f"{'y' if len(unassigned) == 1 else 'ies'}): the receiver found no project "
                "in the routing; route it in prearchive triage",
                triage,
            )
        if len(placed) + (1 if archived else 0) > 1:
            return Verification(
                False,
                f"split into {len(placed) + (1 if archived else 0)} sessions (a pause longer "
                "than the receiver's idle time, or different routing): merge them in "
                "prearchive triage",
                triage,
            )
        counts = await _counts(client, placed[0].uri if placed else archived[0].uri)
        found = sum(counts.values())
        where = (
            f"prearchive {placed[0].project}/{placed[0].name}"
            if placed
            else f"archive {job.project}/{job.label}"
        )
        labels = (placed[0].project, placed[0].name) if placed else (job.project, job.label)
        if job.project and labels != (job.project, job.label):
            return Verification(
                False,
                f"filed as {labels[0]}/{labels[1]}, not {job.project}/{job.label}",
                triage,
            )
        if found < expected:
            return Verification(
                False, f"{found} of {expected} instance(s) found in {where}", triage
            )
        return Verification(True, f"verified: {found} instance(s) in {where}")

    return verify


async def _counts(client: Any, uri: str) -> dict[str, int]:
    """Instances per scan of a prearchive or archived session."""
    return {scan: len(files) for scan, files in (await client.session_files(uri)).items()}


# ---- the engine for the Transfers panel and `transfers resume` ----------------------------


def engine_for(
    journal: Journal,
    *,
    client: Any = None,
    idle_seconds: float = 300.0,
    anonymizers: AnonymizerSet | None = None,
    **options: Any,
) -> SendEngine:
    anon = anonymizers or AnonymizerSet()
    return SendEngine(
        journal,
        verifier=make_verifier(client) if client is not None else None,
        idle_time=idle_seconds,
        transform_for=anon.transform_for,
        **options,
    )


# A send journalled without a REST server names its receiver instead (dicom://AE@host:port).
OFFLINE_SCHEME = "dicom://"


def is_offline_send(job: JobRecord) -> bool:
    """A send to a bare DICOM receiver: resumed without logging in (nothing to verify)."""
    return job.kind is JobKind.SEND and job.server.startswith(OFFLINE_SCHEME)


def offline_engine(journal: Journal, config: Config) -> JobEngine:
    """The engine for sends that need no REST server (``is_offline_send`` jobs)."""
    idle = max((d.idle_seconds for d in config.dicom.values()), default=300.0)
    return engine_for(journal, idle_seconds=idle)


async def build(connection: Connection, journal: Journal, config: Config) -> JobEngine:
    """Registered for ``send`` jobs: the idle time is the longest configured one."""
    idle = max((d.idle_seconds for d in config.dicom.values()), default=300.0)
    engine = engine_for(journal, client=connection.client, idle_seconds=idle)
    return engine


register([JobKind.SEND], build)
