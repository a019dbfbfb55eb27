"""The upload workbench: sessions found, what the user chose, what each will become.

Plain data: the TUI's panes render it, its screens change it through these methods,
and tests assert on it directly. Labels come from :func:`targets.propose`, the same
function ``xnat-tui upload`` uses, so both propose the same targets.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from xnat_tui.dicom.model import Scan, Session
from xnat_tui.transfer.server import ProjectInfo
from xnat_tui.transfer.source import from_dicom
from xnat_tui.transfer.types import JobState, SourceSession
from xnat_tui.workflow.targets import LabelRules, ProjectLabels, RulesFor, TargetKind, propose


class RowState(StrEnum):
    """What the server will make of a session's target, or where its transfer is."""

    UNCHECKED = "—"
    CHECKING = "checking"
    NEW = "new"
    MERGE = "merge"
    CONFLICT = "conflict"
    INVALID = "invalid"
    NOT_PERMITTED = "not permitted"
    ROUTED = "routed"
    QUEUED = "queued"
    UPLOADING = "uploading"
    PAUSED = "paused"
    VERIFIED = "verified"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @classmethod
    def of_target(cls, kind: TargetKind) -> RowState:
        return _OF_TARGET[kind]

    @classmethod
    def of_job(cls, state: JobState) -> RowState:
        return _OF_JOB[state]

    @property
    def in_transfer(self) -> bool:
        """The session belongs to the transfer engine now: its target is fixed."""
        return self in _TRANSFER

    @property
    def queueable(self) -> bool:
        """Can be queued (a merge only after the user has seen the warning)."""
        return self in (RowState.NEW, RowState.MERGE)

    @property
    def blocking(self) -> bool:
        """A target the user must change before it can be queued."""
        return self in (
            RowState.CONFLICT,
            RowState.INVALID,
            RowState.NOT_PERMITTED,
            RowState.ROUTED,
        )


_TRANSFER = frozenset(
    {
        RowState.QUEUED,
        RowState.UPLOADING,
        RowState.PAUSED,
        RowState.VERIFIED,
        RowState.FAILED,
        RowState.CANCELLED,
    }
)
_OF_TARGET = {
    TargetKind.NEW: RowState.NEW,
    TargetKind.MERGE: RowState.MERGE,
    TargetKind.CONFLICT: RowState.CONFLICT,
    TargetKind.INVALID: RowState.INVALID,
    TargetKind.NOT_PERMITTED: RowState.NOT_PERMITTED,
    TargetKind.ROUTED: RowState.ROUTED,
}
_OF_JOB = {
    JobState.QUEUED: RowState.QUEUED,
    JobState.SENDING: RowState.UPLOADING,
    JobState.COMMITTING: RowState.UPLOADING,
    JobState.VERIFYING: RowState.UPLOADING,
    JobState.PAUSED: RowState.PAUSED,
    JobState.VERIFIED: RowState.VERIFIED,
    JobState.FAILED: RowState.FAILED,
    JobState.CANCELLED: RowState.CANCELLED,
}


@dataclass
class ProjectSummary:
    """What the label editor needs to know about the chosen project."""

    id: str
    name: str = ""
    destination: str = "prearchive"  # where uploads land by the project's setting
    allow_create_subject: bool = True
    allow_bulk_upload: bool = True
    anon_script: bool = False
    filter_summary: str = "none"  # the import filters, in words
    subjects: list[str] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)  # series uid -> reason
    # The settings the planner applies (import filters, anonymization variables).
    settings: ProjectInfo | None = None


@dataclass
class SessionItem:
    session: Session
    selected: bool = False
    excluded: set[str] = field(default_factory=set)  # series the user unchecked
    subject: str = ""
    label: str = ""
    label_edited: bool = False  # typed by the user: patterns no longer overwrite it
    template_error: str = ""  # why the patterns could not make a label for it
    label_notes: tuple[str, ...] = ()  # what cleaning changed in the proposed labels
    state: RowState = RowState.UNCHECKED
    detail: str = ""
    job_id: str | None = None
    # The DICOM routes it to another project: None = not decided yet, True = go there,
    # False = go to the chosen project.
    follow_routing: bool | None = None
    _source: SourceSession | None = field(default=None, repr=False, compare=False)

    @property
    def uid(self) -> str:
        return self.session.study_instance_uid

    @property
    def source(self) -> SourceSession:
        """The session as the planner sees it (headers only, no file lists)."""
        if self._source is None:
            self._source = from_dicom(self.session, files=False)
        return self._source

    @property
    def routed_project(self) -> str:
        """The project the session's DICOM routing names ('' when none)."""
        proposal = self.session.routing_proposal
        return proposal.project.strip() if proposal is not None else ""

    def scans(self) -> list[Scan]:
        return self.session.sorted_scans()

    def included_scans(self, dropped: dict[str, str] | None = None) -> list[Scan]:
        dropped = dropped or {}
        return [
            s
            for s in self.scans()
            if s.series_instance_uid not in self.excluded and s.series_instance_uid not in dropped
        ]

    @property
    def problem_count(self) -> int:
        return len(self.session.problems) + sum(
            len(s.problems) for s in self.session.scans.values()
        )


class Workbench:
    """Sessions keyed by StudyInstanceUID, in the order they were found."""

    def __init__(self, rules: LabelRules | None = None) -> None:
        self.items: dict[str, SessionItem] = {}
        self.project: ProjectSummary | None = None
        # Patterns the user set for this run (bulk mode); else each project's own rules.
        self.rules = rules or LabelRules()
        self.project_rules: RulesFor | None = None
        # What each project holds (labels taken, studies already there), as loaded.
        self.existing: dict[str, ProjectLabels] = {}

    def rules_for(self, project: str, *, explicit: bool = False) -> LabelRules:
        """The label rules for sessions going to ``project``."""
        explicit = explicit or self.rules.explicit
        base = self.rules
        if not explicit and self.project_rules is not None:
            base = self.project_rules(project)
        return LabelRules(base.subject_template, base.session_template, explicit)

    @property
    def subject_pattern(self) -> str:
        return self.rules_for(self.project.id if self.project else "").subject_template

    @property
    def session_pattern(self) -> str:
        return self.rules_for(self.project.id if self.project else "").session_template

    def __len__(self) -> int:
        return len(self.items)

    def get(self, uid: str | None) -> SessionItem | None:
        return self.items.get(uid) if uid else None

    def upsert(self, session: Session) -> tuple[SessionItem, bool]:
        """Add a session found by a scan, or refresh one already known; True if new."""
        item = self.items.get(session.study_instance_uid)
        if item is not None:
            item.session = session
            item._source = None
            self.relabel([item], only_unedited=True)
            return item, False
        item = SessionItem(session=session)
        self.items[item.uid] = item
        self.relabel([item], only_unedited=True)
        return item, True

    def selected(self) -> list[SessionItem]:
        return [i for i in self.items.values() if i.selected]

    def toggle(self, uid: str) -> bool:
        item = self.items[uid]
        item.selected = not item.selected
        return item.selected

    def select_all(self, on: bool | None = None) -> bool:
        """Select every free session, or clear all when everything is already selected."""
        free = [i for i in self.items.values() if not i.state.in_transfer]
        target = on if on is not None else not all(i.selected for i in free)
        for item in free:
            item.selected = target
        return target

    def toggle_series(self, uid: str, series_uid: str) -> bool:
        item = self.items[uid]
        if series_uid in item.excluded:
            item.excluded.discard(series_uid)
            return True
        item.excluded.add(series_uid)
        return False

    def toggle_all_series(self, uid: str) -> None:
        item = self.items[uid]
        if item.excluded:
            item.excluded.clear()
        else:
            item.excluded = {s.series_instance_uid for s in item.scans()}

    # ------------------------------------------------------------ targets

    def routed_elsewhere(self, item: SessionItem) -> str:
        """The other project the item's routing names ('' when none or the same)."""
        routed = item.routed_project
        chosen = self.project.id if self.project is not None else ""
        return routed if routed and routed != chosen else ""

    def target_project(self, item: SessionItem) -> str:
        """Where the item goes: the chosen project unless the user follows routing."""
        routed = self.routed_elsewhere(item)
        if routed and (item.follow_routing or self.project is None):
            return routed
        return self.project.id if self.project is not None else ""

    def routing_unresolved(self, item: SessionItem) -> bool:
        return bool(self.routed_elsewhere(item)) and item.follow_routing is None

    def choose_routing(self, items: Iterable[SessionItem], *, follow: bool) -> list[SessionItem]:
        """Follow the routing (or keep the chosen project) for ``items`` routed elsewhere."""
        changed = [i for i in items if self.routed_elsewhere(i) and not i.state.in_transfer]
        for item in changed:
            item.follow_routing = follow
        self.relabel(changed, only_unedited=True)
        return changed

    def relabel(
        self,
        items: Iterable[SessionItem],
        *,
        only_unedited: bool = False,
        explicit: bool = False,
    ) -> None:
        """Propose subject/label for ``items`` as ``xnat-tui upload`` would.

        ``explicit``: the patterns were just applied by the user (bulk mode), so they
        win over routing labels. Labels of the other sessions count as taken.
        """
        chosen = [i for i in items if not i.state.in_transfer]
        todo = [i for i in chosen if not (only_unedited and i.label_edited)]
        for item in chosen:
            item.state = RowState.UNCHECKED
            item.detail = ""
        if not todo:
            return
        ids = {id(i) for i in todo}
        projects = [self.target_project(i) for i in todo]
        others: dict[str, set[str]] = {}
        for other in self.items.values():
            if id(other) not in ids and other.label:
                others.setdefault(self.target_project(other), set()).add(other.label)

        def existing(project: str) -> ProjectLabels:
            base = self.existing.get(project) or ProjectLabels()
            return ProjectLabels(base.labels | others.get(project, set()), base.known)

        proposals = propose(
            [i.source for i in todo],
            lambda project: self.rules_for(project, explicit=explicit),
            projects=projects,
            existing=existing,
        )
        for item, proposal in zip(todo, proposals, strict=True):
            item.subject, item.label = proposal.subject, proposal.label
            item.template_error = proposal.template_error
            item.label_notes = proposal.notes
            item.label_edited = False

    def set_patterns(self, subject: str, session: str, *, explicit: bool = True) -> None:
        """Patterns the user typed: by default they then win over routing labels."""
        self.rules = LabelRules(subject, session, explicit)

    def set_labels(self, uid: str, *, subject: str | None = None, label: str | None = None) -> None:
        item = self.items[uid]
        if subject is not None and subject != item.subject:
            item.subject = subject
            item.label_edited = True
        if label is not None and label != item.label:
            item.label = label
            item.label_edited = True
        if item.label_edited:
            item.template_error = ""
            item.label_notes = ()
        if not item.state.in_transfer:
            item.state = RowState.UNCHECKED
            item.detail = ""
