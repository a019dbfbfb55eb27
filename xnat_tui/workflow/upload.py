"""An upload session: planner, anonymizers and engine for one logged-in server.

The TUI and ``xnat-tui upload`` both go through :class:`UploadSession`: every job
request is built by :meth:`UploadSession.request`, every plan by the one planner, every
target classified by :func:`targets.classify`. Neither has a plan-building path of its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from xnat_tui.config import Config
from xnat_tui.dicom.dicomedit import RequiredVariable
from xnat_tui.transfer.anon import AnonymizationRefused, AnonymizerSet, missing_variables
from xnat_tui.transfer.engine import TransferEngine, TransformFactory
from xnat_tui.transfer.events import EventStream
from xnat_tui.transfer.journal import Journal
from xnat_tui.transfer.kinds import JobKind
from xnat_tui.transfer.plan import JobRequest, Plan
from xnat_tui.transfer.server import ServerPort
from xnat_tui.transfer.source import from_dicom
from xnat_tui.transfer.types import (
    AnonOptions,
    Compression,
    Destination,
    JobState,
    Overwrite,
    SourceSession,
)
from xnat_tui.workflow.jobs import JobEngine
from xnat_tui.workflow.login import Connection
from xnat_tui.workflow.planner import Planner, ProjectSnapshot
from xnat_tui.workflow.targets import (
    NO_ROUTING,
    LabelRules,
    ProjectLabels,
    RulesFor,
    classify,
    propose,
)
from xnat_tui.workflow.targets import routed_project as routing_of
from xnat_tui.workflow.workbench import ProjectSummary, RowState, SessionItem, Workbench
from xnat_tui.xnat.models import ProjectRef

log = logging.getLogger("xnat_tui.workflow")

# Jobs in these states are resumed at start-up (they need their anonymizer first).
_UNFINISHED = (
    JobState.QUEUED,
    JobState.SENDING,
    JobState.COMMITTING,
    JobState.VERIFYING,
    JobState.PAUSED,
)


class Engine(JobEngine, Protocol):
    """The upload engine (``TransferEngine`` in the app): a job engine that takes plans."""

    async def submit(self, plan: Plan) -> list[str]: ...


@dataclass(frozen=True)
class UploadSettings:
    destination: Destination = Destination.PROJECT
    overwrite: Overwrite = Overwrite.NONE
    concurrency: int = 4
    bandwidth_limit_mbps: float = 0.0
    compression: Compression = Compression.STORED
    # Series that may carry burned-in text under ``basic``: None leaves them out unless
    # the user picked them; True always sends them.
    include_burned_in: bool | None = None


@dataclass
class Anonymization:
    """What a project's uploads are anonymized with in this session."""

    profile: str = "none"  # none | xnat | basic
    options: AnonOptions = field(default_factory=AnonOptions)
    variables: dict[str, str] = field(default_factory=dict)


def label_rules_for(
    config: Config, project: str, *, subject: str | None = None, session: str | None = None
) -> LabelRules:
    """The label templates for ``project``: given ones, else the project's, else defaults.

    Templates given for this run (``subject``/``session``) are explicit: they win over
    routing labels found in the DICOM.
    """
    own = config.projects.get(project)
    d = config.defaults
    return LabelRules(
        subject or (own.subject_pattern if own else "") or d.subject_pattern,
        session or (own.session_pattern if own else "") or d.session_pattern,
        explicit=bool(subject or session),
    )


# (port, journal, transform factory, settings) -> engine
EngineFactory = Callable[[ServerPort, Journal, TransformFactory, UploadSettings], Engine]


def transfer_engine(
    port: ServerPort, journal: Journal, transform_for: TransformFactory, settings: UploadSettings
) -> Engine:
    return TransferEngine(
        port,
        journal,
        concurrency=settings.concurrency,
        bandwidth_limit_mbps=settings.bandwidth_limit_mbps,
        compression=settings.compression,
        transform_for=transform_for,
    )


class UploadSession:
    """Plans uploads to one server and runs them through one engine."""

    def __init__(
        self,
        connection: Connection,
        journal: Journal,
        *,
        settings: UploadSettings | None = None,
        anon_default: Callable[[str], Anonymization] = lambda project: Anonymization(),
        engine_factory: EngineFactory = transfer_engine,
    ) -> None:
        self.connection = connection
        self.journal = journal
        self.settings = settings or UploadSettings()
        self.planner = Planner(connection.port, journal)
        self.anonymizers = AnonymizerSet()
        self._anon_default = anon_default
        self._anon: dict[str, Anonymization] = {}
        self._engine_factory = engine_factory
        self.engine: Engine | None = None
        self._stream: EventStream | None = None
        # The projects the user may upload to, as last listed.
        self.known_projects: list[ProjectRef] = []

    # ------------------------------------------------------------ projects

    async def projects(self) -> list[ProjectRef]:
        """The projects the user may upload to."""
        self.known_projects = await self.connection.projects.uploadable_projects()
        return self.known_projects

    async def project(self, project: str, *, refresh: bool = False) -> ProjectSummary:
        """What the label editor shows of ``project`` (cached until ``refresh``)."""
        if refresh:
            self.planner.refresh()
        view = await self.planner.project(project)
        info = view.info
        for warning in info.warnings:
            log.warning("project %s: %s", project, warning)
        return ProjectSummary(
            id=project,
            name=next((r.secondary_id for r in self.known_projects if r.id == project), ""),
            destination="archive" if info.auto_archive else "prearchive",
            allow_create_subject=info.allow_create_subject,
            allow_bulk_upload=info.allow_bulk_upload,
            anon_script=info.anon_script,
            filter_summary=" | ".join(info.filter_descriptions) or "none",
            subjects=sorted(view.subjects),
            settings=info,
        )

    async def existing(self, project: str, study_uids: Iterable[str]) -> ProjectLabels:
        """Labels taken in ``project`` and the targets of these studies already there."""
        try:
            view: ProjectSnapshot | None = await self.planner.project(project)
        except Exception:  # the plan reports the error per job
            view = None
        return self.planner.existing_labels(project, view, study_uids)

    def dropped_reasons(self, project: ProjectSummary, item: SessionItem) -> dict[str, str]:
        """Series uid → why the project's import filter will drop it (pure, no I/O)."""
        info = project.settings
        if info is None or not info.series_checks:
            return {}
        out: dict[str, str] = {}
        for series in item.source.series:
            reason = info.drop_reason(series)
            if reason:
                out[series.series_instance_uid] = reason
        return out

    # ------------------------------------------------------------ anonymization

    def anonymization(self, project: str) -> Anonymization:
        """This session's choice for ``project``, else the configured profile."""
        chosen = self._anon.get(project)
        if chosen is None:
            chosen = self._anon_default(project)
            chosen.options = chosen.options.for_profile(chosen.profile)
            self._anon[project] = chosen
        return chosen

    def choose_anonymization(
        self, project: str, profile: str, options: AnonOptions, variables: dict[str, str]
    ) -> None:
        self._anon[project] = Anonymization(profile, options.for_profile(profile), dict(variables))

    def set_anon_variables(self, project: str, values: dict[str, str]) -> None:
        self.anonymization(project).variables.update(values)

    def anon_variables_needed(self, project: str) -> list[tuple[str, str]]:
        """(name, description) of the project's script variables still without a value
        (none unless its uploads run the ``xnat`` profile and the project is loaded)."""
        anon = self.anonymization(project)
        if anon.profile != "xnat" or not project:
            return []
        try:
            info = self.planner.cached(project).info
        except KeyError:
            return []
        return [(n, d) for n, d in info.anon_variables if n not in anon.variables]

    def missing_anon_variables(self, project: ProjectSummary, plan: Plan) -> list[tuple[str, str]]:
        """(name, description) of variables the plan's jobs were refused for lacking."""
        if not any(i.code == "anon-variables" for j in plan.jobs for i in j.issues):
            return []
        return self.anon_variables_needed(project.id)

    def script_variables_missing(self, project: str) -> list[RequiredVariable]:
        """Variables the prepared scripts of ``project`` ask for and no value was given."""
        anon = self.anonymization(project)
        required = self.anonymizers.required(project, anon.profile, anon.options)
        return missing_variables(required, anon.variables)

    async def prepare_anonymization(self, projects: Iterable[str]) -> str:
        """Fetch and check the scripts these projects' profiles need; '' or why refused.

        A script that cannot run here refuses the project's uploads (fail closed): the
        reason is returned (and logged) so the caller can say so before anything is sent.
        """
        refused: list[str] = []
        for project in sorted(set(projects)):
            anon = self.anonymization(project)
            if anon.profile in ("", "none"):
                continue
            client = self.connection.client
            try:
                if client is None:
                    raise AnonymizationRefused("not connected to a server to read scripts from")
                await self.anonymizers.prepare(client, project, anon.profile, anon.options)
            except Exception as exc:  # that project's jobs fail with this; others go on
                log.error("anonymization %s for %s: %s", anon.profile, project, exc)
                refused.append(f"{project}: {exc}")
        return "; ".join(refused)

    # ------------------------------------------------------------ requests and plans

    def request(
        self,
        session: SourceSession,
        project: str,
        subject: str,
        label: str,
        *,
        series: Collection[str] | None = None,
        overwrite: Overwrite | None = None,
        label_error: str = "",
        routing_error: str = "",
        label_notes: tuple[str, ...] = (),
    ) -> JobRequest:
        """The one place a job request is made: this session's settings applied."""
        anon = self.anonymization(project) if project else Anonymization()
        return JobRequest(
            session=session,
            project=project,
            subject=subject,
            label=label,
            destination=self.settings.destination,
            overwrite=self.settings.overwrite if overwrite is None else overwrite,
            series=series,
            anonymization=anon.profile,
            label_error=label_error,
            routing_error=routing_error,
            label_notes=label_notes,
            anon_options=anon.options,
            variables=anon.variables,
            include_burned_in=self.settings.include_burned_in,
        )

    async def requests_for(
        self,
        sessions: Sequence[SourceSession],
        rules: LabelRules | RulesFor,
        *,
        project: str | None,
    ) -> list[JobRequest]:
        """Requests for scanned sessions: into ``project``, or (None) where routing says."""
        projects = [project if project is not None else routing_of(s) for s in sessions]
        routable = [(s, p) for s, p in zip(sessions, projects, strict=True) if p]
        uids = [s.study_instance_uid for s, _ in routable]
        existing = {p: await self.existing(p, uids) for p in {p for _, p in routable}}
        proposals = iter(
            propose(
                [s for s, _ in routable],
                rules,
                projects=[p for _, p in routable],
                existing=existing.__getitem__,
            )
        )
        out: list[JobRequest] = []
        for session, target in zip(sessions, projects, strict=True):
            if not target:
                out.append(self.request(session, "", "", "", routing_error=NO_ROUTING))
                continue
            p = next(proposals)
            out.append(
                self.request(
                    session,
                    p.project,
                    p.subject,
                    p.label,
                    label_error=p.template_error,
                    label_notes=p.notes,
                )
            )
        return out

    def requests_for_items(
        self, workbench: Workbench, items: Sequence[SessionItem], *, files: bool = True
    ) -> list[JobRequest]:
        """Requests for workbench rows: their labels, series choice and routing choice."""
        return [
            self.request(
                from_dicom(item.session, files=files) if files else item.source,
                workbench.target_project(item),
                item.subject,
                item.label,
                series={s.series_instance_uid for s in item.included_scans()},
                # A session shown as "merge" was seen by the user (state column, detail
                # and confirmation screen): queueing it means adding series to it.
                overwrite=Overwrite.APPEND
                if item.state is RowState.MERGE and self.settings.overwrite is Overwrite.NONE
                else None,
                label_error=item.template_error,
                label_notes=item.label_notes,
            )
            for item in items
        ]

    async def plan(self, requests: Iterable[JobRequest]) -> Plan:
        return await self.planner.plan(requests)

    async def plan_items(self, workbench: Workbench, items: Sequence[SessionItem]) -> Plan:
        return await self.plan(self.requests_for_items(workbench, items))

    async def load_existing(self, workbench: Workbench, project: str) -> None:
        """Tell the workbench what ``project`` holds, for its label proposals."""
        uids = [i.uid for i in workbench.items.values()]
        workbench.existing[project] = await self.existing(project, uids)

    async def choose_routing(
        self, workbench: Workbench, items: Sequence[SessionItem], *, follow: bool
    ) -> list[SessionItem]:
        """Follow the routing (or not) for ``items``, proposing labels free where they go."""
        if follow:
            for project in sorted({workbench.routed_elsewhere(i) for i in items} - {""}):
                if project not in workbench.existing:
                    await self.load_existing(workbench, project)
        return workbench.choose_routing(items, follow=follow)

    async def classify(
        self,
        workbench: Workbench,
        items: Sequence[SessionItem],
    ) -> dict[str, tuple[RowState, str]]:
        """Per session: (state, one sentence) as the planner sees it right now.

        Each session is planned on its own: this validates *its* target, so the
        project's bulk-upload restriction (a property of a batch) is applied when a
        batch is queued. A label another session of the workbench already targets is a
        conflict. Script variables are asked for when queueing, so a missing value
        does not make a target look impossible here.
        """
        taken: dict[tuple[str, str], list[SessionItem]] = {}
        for other in workbench.items.values():
            if other.label and not other.state.in_transfer:
                taken.setdefault((workbench.target_project(other), other.label), []).append(other)
        out: dict[str, tuple[RowState, str]] = {}
        for n, item in enumerate(items):
            request = self.requests_for_items(workbench, [item], files=False)[0]
            request.overwrite = self.settings.overwrite
            asked_later = [n for n, _ in self.anon_variables_needed(request.project)]
            request.variables = {**{name: "?" for name in asked_later}, **request.variables}
            job = (await self.planner.plan([request])).jobs[0]
            assessment = classify(job, routing_unresolved=workbench.routing_unresolved(item))
            state, detail = RowState.of_target(assessment.kind), assessment.detail
            if item.follow_routing and workbench.routed_elsewhere(item):
                detail += f"; goes to project {request.project}, as its DICOM routes it"
            if asked_later and state.queueable:
                names = ", ".join(asked_later)
                detail += f"; the anonymization script asks for {names} when queued"
            rivals = [o for o in taken.get((request.project, item.label), []) if o is not item]
            if rivals and state.queueable:
                who = rivals[0].session.patient_name or rivals[0].session.patient_id
                state = RowState.CONFLICT
                detail = f"session label {item.label} is also the target of {who}'s session"
            out[item.uid] = (state, detail)
            if n % 8 == 7:
                await asyncio.sleep(0)  # hundreds of sessions never freeze the screen
        return out

    # ------------------------------------------------------------ engine

    async def start(self) -> list[str]:
        """Build the engine on this loop and resume this server's unfinished jobs."""
        unfinished = self.journal.jobs(
            states=list(_UNFINISHED),
            server=self.connection.port.server_url,
            kinds=[JobKind.UPLOAD],
        )
        for job in unfinished:
            self._anon.setdefault(job.project, Anonymization(job.anonymization, job.anon_options))
        await self.prepare_anonymization({j.project for j in unfinished})
        self.engine = self._engine_factory(
            self.connection.port, self.journal, self.anonymizers.transform_for, self.settings
        )
        # Subscribe before start() so the resumed jobs' first events are not missed.
        self._stream = self.engine.subscribe()
        resumed = await self.engine.start(resume=True)
        if resumed:
            log.info("resuming %d unfinished transfer(s)", len(resumed))
        return resumed

    @property
    def stream(self) -> EventStream:
        """The engine's event stream (subscribed before the engine started)."""
        if self._stream is None:
            raise RuntimeError("the transfer engine is not running")
        return self._stream

    def _running(self) -> Engine:
        if self.engine is None:
            raise RuntimeError("the transfer engine is not running")
        return self.engine

    async def submit(self, plan: Plan) -> dict[str, str]:
        """Queue the sendable jobs; StudyInstanceUID → job id."""
        engine = self._running()
        await self.prepare_anonymization({j.request.project for j in plan.sendable})
        ids = await engine.submit(plan)
        self.planner.refresh()
        return {
            job.request.session.study_instance_uid: job_id
            for job, job_id in zip(plan.sendable, ids, strict=False)
        }

    def job_report(self, job_id: str) -> str:
        return job_report(self.journal, job_id)

    async def close(self) -> None:
        """Close the engine (unfinished jobs stay journalled) and the connection."""
        if self._stream is not None:
            self._stream.close()
        if self.engine is not None:
            await self.engine.close()
        await asyncio.to_thread(self.anonymizers.close)
        if self.connection.close is not None:
            await self.connection.close()


def job_report(journal: Journal, job_id: str) -> str:
    """Receipt (if written) and the journal's step log of one job, as text."""
    try:
        job = journal.job(job_id)
    except Exception as exc:  # unknown id: say so instead of failing
        return f"Job {job_id}: {exc}"
    word = job.kind.word
    if job.kind is JobKind.DOWNLOAD:
        place = f"downloaded into {job.params.get('out', '?')}"
    else:
        place = f"destination {job.destination}"
    lines = [
        f"Job {job.id}: {job.display}  [{word(str(job.state))}]",
        f"Server {job.server} as {job.username}; {place}",
    ]
    if job.message:
        lines.append(f"Message: {job.message}")
    if job.result_uri:
        lines.append(f"Result: {job.result_uri}")
    lines += ["", "Series:"]
    for s in journal.series(job_id):
        number = s.number if s.number is not None else "?"
        lines.append(
            f"  {number:>4} {s.description[:30]:<30} {s.file_count:>5} files  {word(str(s.state))}"
            + (f"  ({s.message})" if s.message else "")
        )
    receipt = Path(job.receipt) if job.receipt else None
    if receipt is not None and receipt.is_file():
        lines += ["", f"Receipt {receipt}:", receipt.read_text(encoding="utf-8")]
    lines += ["", "Log:"]
    for step in journal.steps(job_id):
        stamp = time.strftime("%H:%M:%S", time.localtime(step.ts))
        where = f" [{step.series_uid.rsplit('.', 1)[-1]}]" if step.series_uid else ""
        lines.append(
            f"  {stamp} {word(step.step)} {word(step.phase)}{where} {step.detail}".rstrip()
        )
    return "\n".join(lines)
