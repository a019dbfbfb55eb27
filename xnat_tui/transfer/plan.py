"""A plan: what each local session would become on the server, before anything is sent.

Built by the application layer's planner (``xnat_tui.workflow.planner``); the engine
accepts only jobs whose plan has no error.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from xnat_tui.transfer.kinds import JobKind
from xnat_tui.transfer.server import RemoteSession
from xnat_tui.transfer.types import AnonOptions, Destination, Overwrite, SourceSeries, SourceSession


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
    # Why no target could be made: a template field missing, or (following routing)
    # no routing in the DICOM. The planner refuses such a request with this message.
    label_error: str = ""
    routing_error: str = ""
    # What cleaning did to the labels' source text, shown with the plan.
    label_notes: tuple[str, ...] = ()
    # Basic Profile retain options (ignored by the other profiles).
    anon_options: AnonOptions = field(default_factory=AnonOptions)
    # Values for the variables a script asks for (beyond project/subject/session).
    variables: Mapping[str, str] = field(default_factory=dict)
    # Series that may carry burned-in text: under ``basic`` they are left out unless
    # this is True, or (None) unless they are named in ``series`` (the user's own pick).
    include_burned_in: bool | None = None
    # What the job is (a copy between projects is planned like an upload) and its
    # workflow settings, journalled with it (JobRecord.kind/.params).
    kind: JobKind = JobKind.UPLOAD
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.anon_options = self.anon_options.for_profile(self.anonymization)
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
            # The project the DICOM's routing names, and whether it is another one.
            "routed_project": r.session.routing.get("project", "").strip() or None,
            "routed_elsewhere": r.session.routing.get("project", "").strip() not in ("", r.project),
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
