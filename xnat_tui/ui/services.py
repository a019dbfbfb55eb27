"""The UI's doorway to the domain modules: scanning, the server, the planner, the engine.

Screens call these methods (from async workers) and render what comes back; no
HTTP, DICOM parsing or journal access happens anywhere else in ``ui/``. Tests swap
in a fake ``ServerPort``/engine, never a fake of this class's logic.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xnat_tui.dicom.model import ScanBatch, ScanSummary
from xnat_tui.transfer.events import Event, ProgressTick
from xnat_tui.transfer.journal import Journal
from xnat_tui.transfer.planner import JobRequest, Plan, Planner, Verdict
from xnat_tui.transfer.server import ServerPort
from xnat_tui.transfer.source import from_dicom
from xnat_tui.transfer.types import AnonOptions, Destination, Overwrite
from xnat_tui.ui.workbench import ProjectInfo, RowState, SessionItem

log = logging.getLogger("xnat_tui.ui")

ScanEvent = ScanBatch | ScanSummary


@dataclass
class Connection:
    """A logged-in server: the client (for triage and listings) and the engine's port."""

    url: str
    user: str
    port: ServerPort
    client: Any = None  # xnat_tui.xnat.XnatClient in the shipped app
    close: Callable[[], Awaitable[None]] | None = None


@dataclass
class LoginRequest:
    url: str
    user: str
    password: str = ""
    verify_tls: bool = True
    ca_bundle: str = ""
    profile: str = ""


Connector = Callable[[LoginRequest], Awaitable[Connection]]
ScanFunc = Callable[[list[Path]], AsyncIterator[ScanEvent]]


def _verdict_state(verdict: Verdict, codes: set[str]) -> str:
    if verdict is Verdict.NEW:
        return RowState.NEW
    if verdict is Verdict.MERGE:
        return RowState.MERGE
    if verdict in (Verdict.CONFLICT, Verdict.DUPLICATE):
        return RowState.CONFLICT
    if codes & {"label", "template", "no-series", "all-filtered", "label-in-batch"}:
        return RowState.INVALID
    return RowState.NOT_PERMITTED


@dataclass
class Services:
    scan_func: ScanFunc
    connection: Connection | None = None
    planner: Planner | None = None
    engine: Any = None
    journal: Journal | None = None
    destination: Destination = Destination.PROJECT
    overwrite: Overwrite = Overwrite.NONE
    concurrency: int = 4
    bandwidth_limit_mbps: float = 0.0
    transform_for: Callable[[Any], Any] | None = None
    # (port, journal) -> engine; None builds the real TransferEngine.
    engine_factory: Callable[[ServerPort, Journal], Any] | None = None
    # Project id -> anonymization profile (none | xnat | basic), from the config.
    config_anon_for: Callable[[str], str] = lambda project: "none"
    # Chosen in the anonymization preview for this run: project -> profile.
    anon_overrides: dict[str, str] = field(default_factory=dict)
    # ... and its Basic Profile options (a BasicOptions) and script variables, per project.
    anon_options: dict[str, Any] = field(default_factory=dict)
    anon_variables: dict[str, dict[str, str]] = field(default_factory=dict)
    _anons: Any = None
    _projects: list[tuple[str, str]] = field(default_factory=list)
    _stream: Any = None

    # ------------------------------------------------------------ scanning

    def scan(self, paths: list[Path]) -> AsyncIterator[ScanEvent]:
        return self.scan_func(paths)

    # ------------------------------------------------------------ server

    def attach(self, connection: Connection, planner: Planner) -> None:
        self.connection = connection
        self.planner = planner

    async def projects(self) -> list[tuple[str, str]]:
        """(id, name) of the projects the user may upload to."""
        if self.connection is None:
            return []
        lister = getattr(self.connection.port, "uploadable_projects", None)
        if lister is None and self.connection.client is not None:
            lister = getattr(self.connection.client, "uploadable_projects", None)
        if lister is None:
            return []
        rows = await lister()
        out: list[tuple[str, str]] = []
        for row in rows:
            if isinstance(row, tuple):
                out.append((str(row[0]), str(row[1])))
            else:
                pid = getattr(row, "id", None) or getattr(row, "ID", "")
                out.append(
                    (str(pid), str(getattr(row, "name", "") or getattr(row, "secondary_id", "")))
                )
        self._projects = out
        return out

    async def project(self, project: str, *, refresh: bool = False) -> ProjectInfo:
        assert self.planner is not None
        if refresh:
            self.planner.refresh()
        view = await self.planner.project(project)
        info = view.info
        checks = list(getattr(info, "series_checks", []) or [])
        summary = await self._describe_filters(project, checks)
        for warning in getattr(info, "warnings", []) or []:
            log.warning("project %s: %s", project, warning)
        destination = "archive" if info.auto_archive else "prearchive"
        result = ProjectInfo(
            id=project,
            name=dict(self._projects).get(project, ""),
            destination=destination,
            allow_create_subject=info.allow_create_subject,
            allow_bulk_upload=info.allow_bulk_upload,
            anon_script=info.anon_script,
            filter_summary=summary,
            subjects=sorted(view.subjects),
        )
        result.source = info  # type: ignore[attr-defined]
        return result

    def anon_profile_for(self, project: str) -> str:
        return self.anon_overrides.get(project) or self.config_anon_for(project)

    def choose_anonymization(self, project: str, choice: Any) -> None:
        """Remember what the preview settled on (an ``AnonChoice``) for this project."""
        self.anon_overrides[project] = str(choice.profile)
        self.anon_options[project] = getattr(choice, "options", None)
        self.anon_variables[project] = dict(getattr(choice, "variables", None) or {})

    def set_anon_variables(self, project: str, values: dict[str, str]) -> None:
        self.anon_variables.setdefault(project, {}).update(values)

    def missing_anon_variables(self, project: ProjectInfo, plan: Plan) -> list[tuple[str, str]]:
        """(name, description) of script variables the plan's jobs still need values for."""
        if not any(i.code == "anon-variables" for j in plan.jobs for i in j.issues):
            return []
        info = getattr(project, "source", None)
        given = self.anon_variables.get(project.id, {})
        return [
            (str(n), str(d))
            for n, d in getattr(info, "anon_variables", None) or []
            if n not in given
        ]

    async def _describe_filters(self, project: str, checks: list[Any]) -> str:
        """A short human description of the import filters (mode and patterns)."""
        if not checks:
            return "none"
        parts = [
            f"{c.mode} {', '.join(c.patterns)}"
            for c in checks
            if getattr(c, "mode", None) and getattr(c, "patterns", None)
        ]
        client = self.connection.client if self.connection else None
        if not parts and client is not None and hasattr(client, "project_settings"):
            try:
                settings = await client.project_settings(project)
            except Exception:  # the description is a nicety; the checks still apply
                settings = None
            for flt in (
                getattr(settings, "site_filter", None),
                getattr(settings, "project_filter", None),
            ):
                if flt is not None and flt.enabled:
                    rules = "; ".join(r.pattern for r in flt.rules) or "(empty)"
                    parts.append(f"{flt.scope} {flt.mode} {rules}")
        return " | ".join(parts) if parts else f"{len(checks)} active"

    def dropped_reasons(self, project: ProjectInfo, item: SessionItem) -> dict[str, str]:
        """Series uid → why the project's import filter will drop it (pure, no I/O)."""
        info = getattr(project, "source", None)
        if info is None or not getattr(info, "series_checks", None):
            return {}
        out: dict[str, str] = {}
        for series in from_dicom(item.session, files=False).series:
            reason = info.drop_reason(series)
            if reason:
                out[series.series_instance_uid] = reason
        return out

    def requests(
        self, project: ProjectInfo, items: list[SessionItem], *, files: bool = True
    ) -> list[JobRequest]:
        return [
            JobRequest(
                session=from_dicom(item.session, files=files),
                project=project.id,
                subject=item.subject,
                label=item.label,
                destination=self.destination,
                # A session shown as "merge" was seen by the user (state column, detail and
                # the confirmation screen): queueing it means adding series to it.
                overwrite=Overwrite.APPEND
                if item.state == RowState.MERGE and self.overwrite is Overwrite.NONE
                else self.overwrite,
                series={s.series_instance_uid for s in item.included_scans()},
                anonymization=self.anon_profile_for(project.id),
                anon_options=AnonOptions.of(self.anon_options.get(project.id)),
                variables=self.anon_variables.get(project.id, {}),
            )
            for item in items
        ]

    async def plan(self, project: ProjectInfo, items: list[SessionItem]) -> Plan:
        assert self.planner is not None
        return await self.planner.plan(self.requests(project, items))

    async def classify(
        self,
        project: ProjectInfo,
        items: list[SessionItem],
        others: list[SessionItem] | None = None,
    ) -> dict[str, tuple[str, str]]:
        """Per session: (state, one sentence) as the planner sees it right now.

        Each session is planned on its own: this is validation of *its* target, so the
        project's bulk-upload restriction (a property of a batch) is applied when a
        batch is queued, not here. A label another session already targets (``others``,
        default ``items``) is reported as a conflict. The loop yields every few sessions
        so classifying hundreds of them never freezes the screen.
        """
        assert self.planner is not None
        taken: dict[str, list[SessionItem]] = {}
        for other in others if others is not None else items:
            if other.label and other.state not in RowState.TRANSFER:
                taken.setdefault(other.label, []).append(other)
        out: dict[str, tuple[str, str]] = {}
        # Script variables are asked for when the sessions are queued; until then a
        # missing value must not make the target look impossible.
        info = getattr(project, "source", None)
        given = self.anon_variables.get(project.id, {})
        asked_later = [n for n, _ in getattr(info, "anon_variables", None) or [] if n not in given]
        for n, item in enumerate(items):
            # Validation only: the plan's file counts are not shown, so files are not copied.
            request = self.requests(project, [item], files=False)[0]
            request.overwrite = self.overwrite
            request.variables = {**{name: "?" for name in asked_later}, **request.variables}
            plan = await self.planner.plan([request])
            out[item.uid] = self._describe(item, plan.jobs[0])
            if (
                asked_later
                and out[item.uid][0] in RowState.QUEUEABLE
                and request.anonymization == "xnat"
            ):
                state, detail = out[item.uid]
                names = ", ".join(asked_later)
                out[item.uid] = (
                    state,
                    f"{detail}; the anonymization script asks for {names} when queued",
                )
            rivals = [o for o in taken.get(item.label, []) if o.uid != item.uid]
            if rivals and out[item.uid][0] in RowState.QUEUEABLE:
                who = rivals[0].session.patient_name or rivals[0].session.patient_id
                out[item.uid] = (
                    RowState.CONFLICT,
                    f"session label {item.label} is also the target of {who}'s session",
                )
            if n % 8 == 7:
                await asyncio.sleep(0)
        return out

    def _describe(self, item: SessionItem, job: Any) -> tuple[str, str]:
        errors = [i for i in job.issues if i.severity == "error"]
        warnings = [i for i in job.issues if i.severity != "error"]
        if job.verdict is Verdict.MERGE and {i.code for i in errors} == {"exists"}:
            where = job.existing.location if job.existing else "server"
            return (
                RowState.MERGE,
                f"session {item.label} already exists in the {where} with this "
                "study: queueing merges the selected series into it",
            )
        if errors:
            state = _verdict_state(job.verdict, {i.code for i in errors})
            if job.verdict in (Verdict.NEW, Verdict.MERGE):
                state = _verdict_state(Verdict.BLOCKED, {i.code for i in errors})
            return state, errors[0].message
        state = _verdict_state(job.verdict, set())
        notes: list[str] = []
        if job.new_subject:
            notes.append(f"subject {item.subject} will be created")
        if job.verdict is Verdict.MERGE:
            notes.append(f"merges into existing session {item.label}")
        if job.dropped:
            notes.append(f"{len(job.dropped)} series dropped by the import filter")
        notes.extend(w.message for w in warnings[:1])
        return state, "; ".join(notes) or f"new session {item.label}"

    # ------------------------------------------------------------ engine

    async def submit(self, plan: Plan) -> dict[str, str]:
        """Queue the sendable jobs; StudyInstanceUID → job id."""
        if self.engine is None:
            raise RuntimeError("the transfer engine is not running")
        await self._prepare_anonymization(
            {(j.request.project, j.request.anonymization) for j in plan.sendable}
        )
        ids = await self.engine.submit(plan)
        out: dict[str, str] = {}
        for job, job_id in zip(plan.sendable, ids, strict=False):
            out[job.request.session.study_instance_uid] = job_id
        if self.planner is not None:
            self.planner.refresh()
        return out

    # ------------------------------------------------------------ engine life cycle

    async def start(self, connection: Connection) -> list[str]:
        """Log-in done: build planner and engine on this loop; resume unfinished jobs."""
        from xnat_tui.transfer.engine import TransferEngine
        from xnat_tui.transfer.journal import Journal

        journal = self.journal or Journal()
        self.journal = journal
        self.attach(connection, Planner(connection.port, journal))
        from xnat_tui.transfer.anon import AnonymizerSet
        from xnat_tui.transfer.types import JobState

        self._anons = AnonymizerSet()
        if self.transform_for is None:
            self.transform_for = self._anons.transform_for
        # Jobs resumed from an earlier run need their anonymizer before they restart.
        unfinished = journal.jobs(
            states=[
                JobState.QUEUED,
                JobState.SENDING,
                JobState.COMMITTING,
                JobState.VERIFYING,
                JobState.PAUSED,
            ],
            server=connection.port.server_url,
        )
        await self._prepare_anonymization({(j.project, j.anonymization) for j in unfinished})
        if self.engine_factory is not None:
            self.engine = self.engine_factory(connection.port, journal)
        else:
            self.engine = TransferEngine(
                connection.port,
                journal,
                concurrency=self.concurrency,
                bandwidth_limit_mbps=self.bandwidth_limit_mbps,
                transform_for=self.transform_for,
            )
        # Subscribe before start() so the resumed jobs' first events are not missed.
        self._stream = self.engine.subscribe()
        resumed: list[str] = await self.engine.start(resume=True)
        if resumed:
            log.info("resuming %d unfinished transfer(s)", len(resumed))
        return resumed

    async def _prepare_anonymization(self, pairs: set[tuple[str, str]]) -> None:
        """Fetch and parse the scripts each (project, profile) needs, once."""
        if self._anons is None or self.connection is None:
            return
        for project, profile in sorted(pairs):
            if profile in ("", "none"):
                continue
            try:
                await self._anons.prepare(self.connection.client, project, profile)
            except Exception as exc:  # that job fails with this message; others go on
                log.error("anonymization %s for %s cannot be prepared: %s", profile, project, exc)

    async def events(self) -> AsyncIterator[Event]:
        if self.engine is None or self._stream is None:
            return
        for progress in self.engine.snapshot():
            yield ProgressTick((progress,), progress.bytes_sent, progress.bytes_total, 0.0, None)
        async for event in self._stream:
            yield event

    async def job_action(self, action: str, job_id: str | None) -> list[str]:
        engine = self.engine
        if engine is None:
            raise RuntimeError("the transfer engine is not running")
        if action == "pause":
            return list(engine.pause(job_id))
        if action == "pause_all":
            return list(engine.pause(None))
        if action == "resume":
            return list(engine.resume(job_id))
        if action == "resume_all":
            return list(engine.resume(None))
        if action == "cancel":
            return list(engine.cancel(job_id))
        if action == "retry":
            return list(await engine.retry(job_id))
        raise ValueError(f"unknown transfer action {action!r}")

    def job_report(self, job_id: str) -> str:
        """Receipt (if written) and the journal's step log of one job, as text."""
        lines: list[str] = []
        journal = self.journal
        if journal is None:
            return "No journal."
        try:
            job = journal.job(job_id)
        except Exception as exc:  # unknown id: say so instead of failing
            return f"Job {job_id}: {exc}"
        lines.append(f"Job {job.id}: {job.display}  [{job.state}]")
        lines.append(f"Server {job.server} as {job.username}; destination {job.destination}")
        if job.message:
            lines.append(f"Message: {job.message}")
        if job.result_uri:
            lines.append(f"Result: {job.result_uri}")
        lines.append("")
        lines.append("Series:")
        for s in journal.series(job_id):
            lines.append(
                f"  {s.number if s.number is not None else '?':>4} {s.description[:30]:<30} "
                f"{s.file_count:>5} files  {s.state}" + (f"  ({s.message})" if s.message else "")
            )
        receipt_path = Path(job.receipt) if job.receipt else None
        if receipt_path is not None and receipt_path.is_file():
            lines.append("")
            lines.append(f"Receipt {receipt_path}:")
            lines.append(receipt_path.read_text(encoding="utf-8"))
        lines.append("")
        lines.append("Log:")
        for step in journal.steps(job_id):
            stamp = time.strftime("%H:%M:%S", time.localtime(step.ts))
            where = f" [{step.series_uid.rsplit('.', 1)[-1]}]" if step.series_uid else ""
            lines.append(f"  {stamp} {step.step} {step.phase}{where} {step.detail}".rstrip())
        return "\n".join(lines)

    async def stop(self) -> None:
        """Close the engine (unfinished jobs stay journalled) and the connection."""
        if self._stream is not None:
            self._stream.close()
        if self.engine is not None:
            await self.engine.close()
        if self.connection is not None and self.connection.close is not None:
            await self.connection.close()
