"""Planner: local sessions + target choices → jobs checked against the server.

Nothing is sent while planning. Each :class:`PlannedJob` says what would happen
(new session, merge into an existing one, conflict, duplicate, blocked), which series
the project's import filter will drop, whether a subject gets created, and every
problem found. The engine only accepts jobs whose plan has no error.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from xnat_tui.transfer.journal import Journal
from xnat_tui.transfer.server import ProjectInfo, RemoteSession, ServerPort
from xnat_tui.transfer.templates import TemplateError, render_label
from xnat_tui.transfer.types import (
    AnonOptions,
    Destination,
    JobState,
    Overwrite,
    SourceSeries,
    SourceSession,
)

_LABEL = re.compile(r"^[A-Za-z0-9_-]+$")
MAX_LABEL = 255


class Verdict(StrEnum):
    NEW = "new"  # nothing with this label on the server
    MERGE = "merge"  # same label, same StudyInstanceUID: series are added to it
    CONFLICT = "conflict"  # same label, another StudyInstanceUID
    DUPLICATE = "duplicate"  # this study is already there (other label) or already queued
    BLOCKED = "blocked"  # cannot be sent at all (permissions, label, project settings)


@dataclass
class JobRequest:
    """One local session → one target. ``series`` limits the upload to those UIDs."""

    session: SourceSession
    project: str
    subject: str
    label: str
    destination: Destination = Destination.PROJECT
    overwrite: Overwrite = Overwrite.NONE
    series: Collection[str] | None = None
    anonymization: str = "none"
    # Set by :func:`build_requests` when a template could not be rendered.
    label_error: str = ""
    # Basic Profile retain options (ignored by the other profiles).
    anon_options: AnonOptions = field(default_factory=AnonOptions)
    # Values for the variables a script asks for (beyond project/subject/session).
    variables: Mapping[str, str] = field(default_factory=dict)
    # Series that may carry burned-in text: under ``basic`` they are left out unless
    # this is True, or (None) unless they are named in ``series`` (the user's own pick).
    include_burned_in: bool | None = None

    def __post_init__(self) -> None:
        # Callers may hand the TUI's BasicOptions (same fields) or a mapping.
        self.anon_options = AnonOptions.of(self.anon_options).for_profile(self.anonymization)
        self.variables = dict(self.variables or {})


@dataclass
class PlanIssue:
    severity: str  # error | warning | info
    code: str
    message: str


@dataclass
class DroppedSeries:
    series: SourceSeries
    reason: str


@dataclass
class PlannedJob:
    request: JobRequest
    verdict: Verdict
    series: list[SourceSeries]
    dropped: list[DroppedSeries] = field(default_factory=list)
    new_subject: bool = False
    existing: RemoteSession | None = None
    issues: list[PlanIssue] = field(default_factory=list)
    verify_digests: bool = True
    # Left out by this machine's choice (burned-in text under ``basic``), not the server's.
    excluded: list[DroppedSeries] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(i.severity == "error" for i in self.issues)

    @property
    def files_total(self) -> int:
        return sum(s.file_count for s in self.series)

    @property
    def bytes_total(self) -> int:
        return sum(s.size for s in self.series)

    @property
    def target(self) -> str:
        r = self.request
        return f"{r.project}/{r.subject}/{r.label}"

    def error(self, code: str, message: str) -> None:
        self.issues.append(PlanIssue("error", code, message))

    def warn(self, code: str, message: str) -> None:
        self.issues.append(PlanIssue("warning", code, message))

    def to_dict(self) -> dict[str, Any]:
        r = self.request
        return {
            "study_instance_uid": r.session.study_instance_uid,
            "source": str(r.session.root or ""),
            "project": r.project,
            "subject": r.subject,
            "session": r.label,
            "destination": str(r.destination),
            "overwrite": str(r.overwrite),
            "verdict": str(self.verdict),
            "ok": self.ok,
            "new_subject": self.new_subject,
            "existing": None
            if self.existing is None
            else {
                "label": self.existing.label,
                "location": self.existing.location,
                "uri": self.existing.uri,
            },
            "series": [
                {
                    "series_instance_uid": s.series_instance_uid,
                    "series_number": s.series_number,
                    "description": s.description,
                    "files": s.file_count,
                    "bytes": s.size,
                }
                for s in self.series
            ],
            "dropped": [
                {
                    "series_instance_uid": d.series.series_instance_uid,
                    "series_number": d.series.series_number,
                    "description": d.series.description,
                    "reason": d.reason,
                }
                for d in self.dropped
            ],
            "excluded": [
                {
                    "series_instance_uid": d.series.series_instance_uid,
                    "series_number": d.series.series_number,
                    "description": d.series.description,
                    "reason": d.reason,
                }
                for d in self.excluded
            ],
            "anonymization": {
                "profile": r.anonymization,
                "options": r.anon_options.for_profile(r.anonymization).to_dict(),
                "variables": sorted(r.variables),
            },
            "files": self.files_total,
            "bytes": self.bytes_total,
            "issues": [vars(i) for i in self.issues],
        }


@dataclass
class Plan:
    jobs: list[PlannedJob]

    @property
    def ok(self) -> bool:
        return all(j.ok for j in self.jobs)

    @property
    def sendable(self) -> list[PlannedJob]:
        return [j for j in self.jobs if j.ok]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "jobs": [j.to_dict() for j in self.jobs],
            "files": sum(j.files_total for j in self.sendable),
            "bytes": sum(j.bytes_total for j in self.sendable),
        }


def label_problem(label: str, what: str) -> str:
    """Why ``label`` is not a usable XNAT label ('' when it is)."""
    if not label:
        return f"{what} label is empty"
    if len(label) > MAX_LABEL:
        return f"{what} label is longer than {MAX_LABEL} characters"
    if not _LABEL.match(label):
        return f"{what} label {label!r} may only contain letters, digits, '_' and '-'"
    return ""


class _ProjectView:
    def __init__(self, info: ProjectInfo, subjects: set[str], sessions: list[RemoteSession]):
        self.info = info
        self.subjects = subjects
        self.subjects_lower = {s.lower() for s in subjects}
        self.sessions = sessions

    def labels(self) -> set[str]:
        return {s.label for s in self.sessions}


class Planner:
    """Checks requests against the server (and the journal) without sending anything."""

    def __init__(self, server: ServerPort, journal: Journal | None = None) -> None:
        self.server = server
        self.journal = journal
        self._projects: dict[str, _ProjectView | BaseException] = {}

    async def project(self, project: str) -> _ProjectView:
        cached = self._projects.get(project)
        if isinstance(cached, BaseException):
            raise cached
        if cached is not None:
            return cached
        try:
            info = await self.server.project_info(project)
            subjects = await self.server.subjects(project)
            sessions = await self.server.sessions(project)
        except Exception as exc:
            self._projects[project] = exc
            raise
        view = _ProjectView(info, subjects, sessions)
        self._projects[project] = view
        return view

    def refresh(self) -> None:
        """Forget cached project listings (after an upload, or on the user's request)."""
        self._projects.clear()

    async def build_requests(
        self,
        sessions: Sequence[SourceSession],
        *,
        project: str,
        subject_template: str,
        session_template: str,
        destination: Destination = Destination.PROJECT,
        overwrite: Overwrite = Overwrite.NONE,
        anonymization: str = "none",
        anon_options: object | None = None,
        variables: Mapping[str, str] | None = None,
        include_burned_in: bool | None = None,
    ) -> list[JobRequest]:
        """Render label templates for a batch, never handing out a label twice.

        ``anon_options`` is an :class:`AnonOptions` or anything with ``retain_dates``,
        ``retain_uids`` and ``retain_device`` (the TUI's ``BasicOptions``); ``variables``
        are the user's values for the variables the scripts ask for.

        A study that is already on the server (or in the journal) for this project gets
        its existing subject and label back, so a re-run merges or is refused instead
        of creating a second session with the next ``{n}``.
        """
        try:
            view: _ProjectView | None = await self.project(project)
        except Exception:
            view = None  # plan() reports the error per job
        taken: set[str] = view.labels() if view else set()
        requests: list[JobRequest] = []
        for session in sessions:
            known = self._known_target(project, session.study_instance_uid, view)
            error = ""
            if known is not None:
                subject, label = known
            else:
                subject = label = ""
                try:
                    subject = render_label(subject_template, session)
                    label = render_label(session_template, session, subject=subject, taken=taken)
                except TemplateError as exc:
                    error = str(exc)
            taken.add(label)
            requests.append(
                JobRequest(
                    session=session,
                    project=project,
                    subject=subject,
                    label=label,
                    destination=destination,
                    overwrite=overwrite,
                    anonymization=anonymization,
                    label_error=error,
                    anon_options=AnonOptions.of(anon_options).for_profile(anonymization),
                    variables=dict(variables or {}),
                    include_burned_in=include_burned_in,
                )
            )
        return requests

    def _known_target(
        self, project: str, study_uid: str, view: _ProjectView | None
    ) -> tuple[str, str] | None:
        if view is not None:
            for s in view.sessions:
                if s.study_uid == study_uid and s.label:
                    return s.subject, s.label
        if self.journal is not None:
            for job in self.journal.same_target(self.server.server_url, project, study_uid):
                return job.subject, job.label
        return None

    async def plan(self, requests: Iterable[JobRequest]) -> Plan:
        reqs = list(requests)
        jobs: list[PlannedJob] = []
        per_project: dict[str, int] = {}
        for r in reqs:
            per_project[r.project] = per_project.get(r.project, 0) + 1
        seen_uid: dict[tuple[str, str], PlannedJob] = {}
        seen_label: dict[tuple[str, str], PlannedJob] = {}
        for r in reqs:
            job = await self._plan_one(r, per_project[r.project])
            key_uid = (r.project, r.session.study_instance_uid)
            key_label = (r.project, r.label)
            if key_uid in seen_uid:
                job.verdict = Verdict.DUPLICATE
                job.error(
                    "duplicate-in-batch",
                    f"this study is already in this batch as {seen_uid[key_uid].target}",
                )
            elif key_label in seen_label and r.label:
                job.verdict = Verdict.CONFLICT
                job.error(
                    "label-in-batch",
                    f"session label {r.label!r} is used twice in this batch for different studies",
                )
            seen_uid.setdefault(key_uid, job)
            seen_label.setdefault(key_label, job)
            jobs.append(job)
        return Plan(jobs)

    async def _plan_one(self, r: JobRequest, batch_size: int) -> PlannedJob:
        selected = [
            s for s in r.session.series if r.series is None or s.series_instance_uid in r.series
        ]
        job = PlannedJob(request=r, verdict=Verdict.NEW, series=selected)
        if r.label_error:
            job.verdict = Verdict.BLOCKED
            job.error("template", r.label_error)
        for what, value in (("subject", r.subject), ("session", r.label)):
            problem = label_problem(value, what)
            if problem and not r.label_error:
                job.verdict = Verdict.BLOCKED
                job.error("label", problem)
        if not selected:
            job.verdict = Verdict.BLOCKED
            job.error("no-series", "no series selected")
        try:
            view = await self.project(r.project)
        except Exception as exc:
            job.verdict = Verdict.BLOCKED
            text = str(exc)
            job.error("project", text if r.project in text else f"project {r.project}: {text}")
            return job
        info = view.info
        job.verify_digests = not info.anon_script
        for w in info.warnings:
            job.issues.append(PlanIssue("info", "settings", w))
        self._check_anonymization(job, info)
        selected = self._burned_in(job, selected)
        if job.excluded and not selected:
            job.verdict = Verdict.BLOCKED
            job.error(
                "all-excluded",
                "every selected series may carry burned-in text and is left out under the "
                "basic profile (--include-burned-in sends them)",
            )
        # Import filters: shown, never silently lost.
        kept: list[SourceSeries] = []
        for s in selected:
            reason = info.drop_reason(s)
            if reason is None:
                kept.append(s)
            else:
                job.dropped.append(DroppedSeries(s, reason))
        job.series = kept
        if job.dropped:
            names = ", ".join(_series_name(d.series) for d in job.dropped)
            job.warn("filtered", f"the project's import filter will drop: {names}")
        if selected and not kept:
            job.verdict = Verdict.BLOCKED
            job.error("all-filtered", "every selected series would be dropped by the import filter")
        if batch_size > 1 and not info.allow_bulk_upload:
            job.verdict = Verdict.BLOCKED
            job.error(
                "bulk-upload",
                f"project {r.project} does not allow uploading several sessions at once",
            )
        if r.subject and r.subject.lower() not in view.subjects_lower:
            job.new_subject = True
            if not info.allow_create_subject:
                job.verdict = Verdict.BLOCKED
                job.error(
                    "create-subject",
                    f"subject {r.subject} does not exist and project {r.project} does not "
                    "allow creating subjects from uploads",
                )
        self._classify(job, view)
        self._check_journal(job)
        if r.destination is Destination.PREARCHIVE and info.auto_archive:
            job.issues.append(
                PlanIssue(
                    "info",
                    "auto-archive",
                    f"project {r.project} auto-archives; the session is only built "
                    "and stays in the prearchive",
                )
            )
        return job

    def _check_anonymization(self, job: PlannedJob, info: ProjectInfo) -> None:
        """``xnat`` runs the project's scripts here: it fails closed when it cannot."""
        r = job.request
        if r.anonymization != "xnat":
            return
        for problem in info.anon_problems:
            job.verdict = Verdict.BLOCKED
            job.error("anon-script", problem)
        missing = [(n, d) for n, d in info.anon_variables if n not in r.variables]
        if missing:
            job.verdict = Verdict.BLOCKED
            names = ", ".join(f"{n} ({d})" if d else n for n, d in missing)
            job.error(
                "anon-variables",
                f"the anonymization script of project {r.project} needs a value for: {names}",
            )

    def _burned_in(self, job: PlannedJob, selected: list[SourceSeries]) -> list[SourceSeries]:
        """Series whose pixels may carry identifying text: excluded under ``basic``."""
        r = job.request
        kept: list[SourceSeries] = []
        for s in selected:
            if not s.burned_in:
                kept.append(s)
                continue
            why = "; ".join(s.burned_in)
            explicit = r.series is not None and s.series_instance_uid in r.series
            include = r.include_burned_in
            if r.anonymization == "basic" and not (include or (include is None and explicit)):
                job.excluded.append(DroppedSeries(s, f"may carry burned-in text: {why}"))
                continue
            kept.append(s)
            job.warn(
                "burned-in",
                f"series {_series_name(s)} may carry identifying text in its pixels ({why}); "
                "no header anonymization removes it",
            )
        if job.excluded:
            names = ", ".join(_series_name(d.series) for d in job.excluded)
            job.issues.append(
                PlanIssue(
                    "info",
                    "burned-in-excluded",
                    f"left out (burned-in text risk under the basic profile): {names}; "
                    "include them with --include-burned-in",
                )
            )
        return kept

    def _classify(self, job: PlannedJob, view: _ProjectView) -> None:
        r = job.request
        uid = r.session.study_instance_uid
        same_label = [s for s in view.sessions if s.label == r.label]
        elsewhere = [s for s in view.sessions if s.study_uid == uid and s.label != r.label]
        if elsewhere:
            other = elsewhere[0]
            job.existing = other
            job.verdict = Verdict.DUPLICATE
            job.error(
                "duplicate",
                f"this study is already in the {other.location} as "
                f"{other.subject or '?'}/{other.label}; upload it under that label to add to it",
            )
            return
        if not same_label:
            return
        existing = same_label[0]
        job.existing = existing
        where = f"{existing.location} session {existing.subject or '?'}/{existing.label}"
        if existing.study_uid and existing.study_uid != uid:
            if job.verdict is not Verdict.BLOCKED:
                job.verdict = Verdict.CONFLICT
            if r.overwrite is Overwrite.DELETE:
                job.warn(
                    "conflict",
                    f"{where} holds another study; overwrite=delete asks the server to replace it",
                )
            else:
                job.error(
                    "conflict",
                    f"{where} already exists with another StudyInstanceUID; choose another "
                    "label (or overwrite=delete)",
                )
            return
        if job.verdict is not Verdict.BLOCKED:
            job.verdict = Verdict.MERGE
        if existing.subject and existing.subject.lower() != r.subject.lower():
            job.error(
                "subject-mismatch",
                f"{where} belongs to subject {existing.subject}, not {r.subject}",
            )
        elif r.overwrite is Overwrite.NONE:
            job.error(
                "exists",
                f"{where} already exists (same study); choose overwrite=append to merge into it",
            )
        else:
            job.warn("merge", f"series will be merged into the existing {where}")

    def _check_journal(self, job: PlannedJob) -> None:
        if self.journal is None:
            return
        r = job.request
        for prior in self.journal.same_target(
            self.server.server_url, r.project, r.session.study_instance_uid
        ):
            if prior.state.active or prior.state is JobState.PAUSED:
                job.verdict = Verdict.DUPLICATE
                job.error(
                    "queued",
                    f"already queued as transfer {prior.id} ({prior.state}); "
                    f"use 'xnat-tui transfers resume {prior.id}'",
                )
            elif prior.state is JobState.FAILED:
                job.verdict = Verdict.DUPLICATE
                job.error(
                    "failed-before",
                    f"an earlier transfer {prior.id} of this study failed; "
                    f"use 'xnat-tui transfers retry {prior.id}'",
                )


def _series_name(s: SourceSeries) -> str:
    num = "" if s.series_number is None else f"#{s.series_number} "
    return f"{num}{s.description or s.series_instance_uid}".strip()
