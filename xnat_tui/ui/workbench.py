"""The upload workbench: sessions found, what the user chose, what each will become.

Plain data (no Textual): the panes render it, the screen mutates it through these
methods, and tests assert on it directly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from xnat_tui.dicom.model import Scan, Session


class RowState:
    """What the server will make of a session's target, or where its transfer is."""

    UNCHECKED = "—"
    CHECKING = "checking"
    NEW = "new"
    MERGE = "merge"
    CONFLICT = "conflict"
    INVALID = "invalid"
    NOT_PERMITTED = "not permitted"
    QUEUED = "queued"
    UPLOADING = "uploading"
    PAUSED = "paused"
    VERIFIED = "verified"
    FAILED = "failed"
    CANCELLED = "cancelled"

    # A session in one of these belongs to the transfer engine now.
    TRANSFER = frozenset({QUEUED, UPLOADING, PAUSED, VERIFIED, FAILED, CANCELLED})
    # Targets that can be queued (merge needs the user to have seen the warning).
    QUEUEABLE = frozenset({NEW, MERGE})


@dataclass
class ProjectInfo:
    """What the label editor needs to know about the chosen project."""

    id: str
    name: str = ""
    destination: str = "prearchive"  # where uploads land by the project's setting
    allow_create_subject: bool = True
    allow_bulk_upload: bool = True
    anon_script: bool = False
    # Human-readable filter description, and the predicate the planner applies.
    filter_summary: str = "none"
    subjects: list[str] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)  # series uid -> reason

    def has_subject(self, label: str) -> bool:
        return label in self.subjects


@dataclass
class SessionItem:
    session: Session
    selected: bool = False
    excluded: set[str] = field(default_factory=set)  # series the user unchecked
    subject: str = ""
    label: str = ""
    label_edited: bool = False  # typed by the user: patterns no longer overwrite it
    state: str = RowState.UNCHECKED
    detail: str = ""
    job_id: str | None = None

    @property
    def uid(self) -> str:
        return self.session.study_instance_uid

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


_LABEL_JUNK = re.compile(r"[^A-Za-z0-9_-]+")


def clean_label(value: str) -> str:
    """Turn free text into XNAT label characters, the way patterns are applied."""
    return _LABEL_JUNK.sub("_", value.strip()).strip("_")


class _Fields(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


def render_pattern(pattern: str, session: Session, *, subject: str = "", n: int = 1) -> str:
    """Fill ``{PatientID}``-style fields from the session; unknown fields become empty."""
    values = _Fields(session.fields)
    values.setdefault("PatientID", session.patient_id)
    values.setdefault("PatientName", session.patient_name)
    values.setdefault("StudyDate", session.study_date)
    values.setdefault("StudyDescription", session.study_description)
    values.setdefault("AccessionNumber", session.accession_number)
    values["Modality"] = session.modality or values.get("Modality", "")
    values["subject"] = subject
    values["n"] = str(n)
    proposal = session.routing_proposal
    if proposal is not None:
        values["routing.project"] = proposal.project
        values["routing.subject"] = proposal.subject
        values["routing.session"] = proposal.session
    try:
        text = pattern.replace("{routing.", "{routing_").format_map(
            _Fields({k.replace("routing.", "routing_"): v for k, v in values.items()})
        )
    except (ValueError, IndexError, KeyError):
        text = pattern
    return clean_label(text)


class Workbench:
    """Sessions keyed by StudyInstanceUID, in the order they were found."""

    def __init__(self) -> None:
        self.items: dict[str, SessionItem] = {}
        self.project: ProjectInfo | None = None
        self.subject_pattern = "{PatientID}"
        self.session_pattern = "{subject}_{Modality}_{n}"

    def __len__(self) -> int:
        return len(self.items)

    def get(self, uid: str | None) -> SessionItem | None:
        return self.items.get(uid) if uid else None

    def upsert(self, session: Session) -> tuple[SessionItem, bool]:
        """Add a session found by a scan, or refresh one already known; True if new."""
        item = self.items.get(session.study_instance_uid)
        if item is not None:
            item.session = session
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
        free = [i for i in self.items.values() if i.state not in RowState.TRANSFER]
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

    def _counter(self, item: SessionItem) -> int:
        """The ``{n}`` of a pattern: 1 + sessions before it with the same subject and modality."""
        n = 1
        for other in self.items.values():
            if other is item:
                break
            if other.subject == item.subject and other.session.modality == item.session.modality:
                n += 1
        return n

    def relabel(
        self,
        items: Iterable[SessionItem],
        *,
        only_unedited: bool = False,
        use_routing: bool = True,
    ) -> None:
        """Fill subject/label from routing found in the DICOM, else from the patterns.

        Bulk mode applies patterns explicitly (``use_routing=False``) so what the
        user typed as a pattern is what every row gets.
        """
        for item in items:
            if item.state in RowState.TRANSFER:
                continue
            if not (only_unedited and item.label_edited):
                proposal = item.session.routing_proposal if use_routing else None
                if proposal is not None and proposal.subject:
                    item.subject = clean_label(proposal.subject)
                else:
                    item.subject = render_pattern(self.subject_pattern, item.session)
                if proposal is not None and proposal.session:
                    item.label = clean_label(proposal.session)
                else:
                    item.label = render_pattern(
                        self.session_pattern,
                        item.session,
                        subject=item.subject,
                        n=self._counter(item),
                    )
                item.label_edited = False
            item.state = RowState.UNCHECKED
            item.detail = ""

    def set_labels(self, uid: str, *, subject: str | None = None, label: str | None = None) -> None:
        item = self.items[uid]
        if subject is not None and subject != item.subject:
            item.subject = subject
            item.label_edited = True
        if label is not None and label != item.label:
            item.label = label
            item.label_edited = True
        if item.state not in RowState.TRANSFER:
            item.state = RowState.UNCHECKED
            item.detail = ""

    def by_job(self, job_id: str) -> SessionItem | None:
        for item in self.items.values():
            if item.job_id == job_id:
                return item
        return None
