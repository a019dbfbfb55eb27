"""Planner: job requests → jobs checked against the server, nothing sent.

Each :class:`~xnat_tui.transfer.plan.PlannedJob` says what would happen (new session,
merge into an existing one, conflict, duplicate, blocked), which series the project's
import filter will drop, whether a subject gets created, and every problem found. The
engine only accepts jobs whose plan has no error.
"""

from __future__ import annotations

from collections.abc import Iterable

from xnat_tui.transfer.journal import Journal
from xnat_tui.transfer.plan import DroppedSeries, JobRequest, Plan, PlanIssue, PlannedJob, Verdict
from xnat_tui.transfer.server import ProjectInfo, RemoteSession, ServerPort
from xnat_tui.transfer.types import Destination, JobState, Overwrite, SourceSeries
from xnat_tui.workflow.labels import label_problem
from xnat_tui.workflow.targets import ProjectLabels, routed_project


class ProjectSnapshot:
    """One project as the planner sees it: settings, subjects and existing sessions."""

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
        self._projects: dict[str, ProjectSnapshot | BaseException] = {}

    async def project(self, project: str) -> ProjectSnapshot:
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
        view = ProjectSnapshot(info, subjects, sessions)
        self._projects[project] = view
        return view

    def cached(self, project: str) -> ProjectSnapshot:
        """The project as last loaded (KeyError when it was not, or failed to load)."""
        view = self._projects[project]
        if isinstance(view, BaseException):
            raise KeyError(project)
        return view

    def refresh(self) -> None:
        """Forget cached project listings (after an upload, or on the user's request)."""
        self._projects.clear()

    def existing_labels(
        self, project: str, view: ProjectSnapshot | None, study_uids: Iterable[str]
    ) -> ProjectLabels:
        """Labels taken in ``project`` and the targets of studies already there.

        A study found on the server, or journalled for this project, keeps its subject
        and label: a re-run then merges or is refused instead of creating a second
        session with the next ``{n}``.
        """
        known: dict[str, tuple[str, str]] = {}
        if self.journal is not None:
            # One query for the whole workbench (this runs on the TUI's event loop), in
            # creation order as same_target gives them: the first journalled target wins.
            wanted = set(study_uids)
            live = [st for st in JobState if st is not JobState.CANCELLED]
            for job in self.journal.jobs(states=live, server=self.server.server_url):
                if (
                    job.kind.creates_sessions
                    and job.project == project
                    and job.study_uid in wanted
                    and job.label
                ):
                    known.setdefault(job.study_uid, (job.subject, job.label))
        labels: set[str] = set()
        if view is not None:
            labels = view.labels()
            for s in view.sessions:
                if s.study_uid and s.label:
                    known[s.study_uid] = (s.subject, s.label)
        return ProjectLabels(labels=labels, known=known)

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
                # A job already refused for itself stays "blocked": fix that first.
                if job.verdict is not Verdict.BLOCKED:
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
        if r.routing_error:
            job.verdict = Verdict.BLOCKED
            job.error("no-routing", r.routing_error)
            return job
        if r.label_error:
            job.verdict = Verdict.BLOCKED
            job.error("template", r.label_error)
        for note in r.label_notes:
            # Accented letters transliterated deserve a look; separators are routine.
            severity = "warning" if not note.isascii() else "info"
            job.issues.append(PlanIssue(severity, "label-cleaned", f"{note} (cleaned)"))
        for what, value in (("subject label", r.subject), ("session label", r.label)):
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
        routed = routed_project(r.session)
        if routed and routed != r.project:
            job.warn(
                "routed",
                f"the DICOM routes this session to project {routed} "
                f"({r.session.routing.get('source', 'routing')}); it goes to {r.project}",
            )
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

    def _classify(self, job: PlannedJob, view: ProjectSnapshot) -> None:
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
