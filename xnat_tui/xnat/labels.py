"""Label rules (pure): what XNAT and its uploaders accept, and how a target is classified.

XNAT itself does not character-check subject/session labels on PUT, but every XNAT UI,
the Desktop Client and the DICOM importer restrict them to ``[A-Za-z0-9_-]``
(xnat-api.md §9), and the database column is varchar(255). The uploader enforces the same
so a label never breaks a URL or the archive layout.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum

MAX_LABEL_LENGTH = 255
_VALID = re.compile(r"[A-Za-z0-9_-]+")
_INVALID_RUN = re.compile(r"[^A-Za-z0-9_-]+")
_ALLOWED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def is_valid_label(label: str) -> bool:
    return bool(label) and len(label) <= MAX_LABEL_LENGTH and _VALID.fullmatch(label) is not None


def invalid_characters(label: str) -> list[str]:
    """Each offending character once, in order of first appearance."""
    seen: list[str] = []
    for ch in label:
        if ch not in _ALLOWED and ch not in seen:
            seen.append(ch)
    return seen


def describe_char(ch: str) -> str:
    """A character as a user can recognise it, even when it is invisible."""
    names = {" ": "space", "\t": "tab", "\n": "newline", "\r": "carriage return"}
    if ch in names:
        return names[ch]
    if not ch.isprintable() or unicodedata.category(ch).startswith(("Z", "C")):
        return f"U+{ord(ch):04X}"
    return repr(ch)


def label_problem(label: str, what: str = "label") -> str | None:
    """None when valid, else one sentence saying exactly what is wrong."""
    if not label:
        return f"The {what} is empty."
    bad = invalid_characters(label)
    problems: list[str] = []
    if bad:
        listed = ", ".join(describe_char(c) for c in bad)
        noun = "character" if len(bad) == 1 else "characters"
        problems.append(f"contains the invalid {noun} {listed}")
    if len(label) > MAX_LABEL_LENGTH:
        problems.append(f"is {len(label)} characters long (at most {MAX_LABEL_LENGTH})")
    if not problems:
        return None
    return (
        f"The {what} {label!r} "
        + " and ".join(problems)
        + ". Use only letters A-Z a-z, digits, '-' and '_'."
    )


def clean_label(value: str) -> str:
    """Turn any text into label characters: each run of invalid characters becomes ``_``.

    Same rule as the Desktop Client (``/[^A-Z0-9_-]+/gi`` → ``_``); the result is cut to
    255 characters. An empty or all-invalid value stays recognisably bad ("" or "_").
    """
    return _INVALID_RUN.sub("_", value)[:MAX_LABEL_LENGTH]


# ---------------------------------------------------------------- classification


class TargetKind(Enum):
    NEW = "new"  # no session with this label: a new session is created
    MERGE = "merge"  # a session with this label and the same StudyInstanceUID exists
    CONFLICT = "conflict"  # a session with this label holds another study
    DUPLICATE = "duplicate"  # this study is already in the project under another label
    NOT_PERMITTED = "not-permitted"  # project not writable, or subject creation forbidden
    INVALID = "invalid"  # a label breaks the rules above


class SubjectStatus(Enum):
    EXISTS = "exists"
    WILL_BE_CREATED = "will-be-created"
    CREATION_FORBIDDEN = "creation-forbidden"
    INVALID = "invalid"


@dataclass(frozen=True)
class ExistingSession:
    """What the classifier needs to know about a session already on the server."""

    label: str
    study_uid: str
    subject_label: str = ""
    project: str = ""


@dataclass(frozen=True)
class TargetAssessment:
    kind: TargetKind
    subject: SubjectStatus
    messages: tuple[str, ...] = ()
    existing: ExistingSession | None = None
    # Set when the server would file the data under a subject spelled differently.
    subject_match: str = ""
    warnings: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """Can be sent as is (a merge still needs the user's consent)."""
        return self.kind in (TargetKind.NEW, TargetKind.MERGE)


def classify_target(
    *,
    project: str,
    subject: str,
    session: str,
    study_uid: str,
    existing_subjects: Iterable[str],
    existing_sessions: Iterable[ExistingSession],
    allow_create_subject: bool = True,
    writable_projects: Collection[str] | None = None,
    prearchive_labels: Mapping[str, str] | None = None,
) -> TargetAssessment:
    """Classify where a local session would land in ``project``.

    ``existing_sessions`` are the project's archived sessions (label, UID, subject);
    ``prearchive_labels`` maps a prearchive session name to its status, for a warning.
    """
    messages: list[str] = []
    warnings: list[str] = []
    for value, what in ((subject, "subject label"), (session, "session label")):
        problem = label_problem(value, what)
        if problem:
            messages.append(problem)

    subjects = list(existing_subjects)
    subject_match = ""
    if label_problem(subject, "subject label"):
        subject_status = SubjectStatus.INVALID
    elif subject in subjects:
        subject_status = SubjectStatus.EXISTS
    else:
        # The archiver matches subjects case-insensitively (xnat-api.md §5.5).
        folded = [s for s in subjects if s.casefold() == subject.casefold()]
        if folded:
            subject_status = SubjectStatus.EXISTS
            subject_match = folded[0]
            warnings.append(
                f"Subject {subject!r} matches the existing subject {folded[0]!r}; XNAT files "
                f"the session under {folded[0]!r}."
            )
        elif allow_create_subject:
            subject_status = SubjectStatus.WILL_BE_CREATED
        else:
            subject_status = SubjectStatus.CREATION_FORBIDDEN
            messages.append(
                f"Subject {subject!r} does not exist and project {project} does not allow "
                "uploads to create subjects; choose an existing subject."
            )

    if subject_status is SubjectStatus.INVALID or label_problem(session, "session label"):
        return TargetAssessment(
            TargetKind.INVALID, subject_status, tuple(messages), None, subject_match, ()
        )

    if writable_projects is not None and project not in writable_projects:
        return TargetAssessment(
            TargetKind.NOT_PERMITTED,
            subject_status,
            (f"You cannot upload to project {project}: it is not among your writable projects.",),
        )
    if subject_status is SubjectStatus.CREATION_FORBIDDEN:
        return TargetAssessment(
            TargetKind.NOT_PERMITTED, subject_status, tuple(messages), None, subject_match, ()
        )

    if prearchive_labels and session in prearchive_labels:
        warnings.append(
            f"A prearchive session named {session!r} exists in {project} "
            f"(status {prearchive_labels[session]})."
        )

    sessions = list(existing_sessions)
    same_label = next((s for s in sessions if s.label == session), None)
    if same_label is not None:
        target_subject = subject_match or subject
        if not same_label.study_uid:
            kind, msg = (
                TargetKind.CONFLICT,
                f"Session {session!r} already exists in {project} and its StudyInstanceUID is "
                "unknown, so a merge cannot be confirmed.",
            )
        elif same_label.study_uid != study_uid:
            kind, msg = (
                TargetKind.CONFLICT,
                f"Session {session!r} already exists in {project} with another study "
                f"(StudyInstanceUID {same_label.study_uid}); choose another label.",
            )
        elif same_label.subject_label and same_label.subject_label.casefold() != (
            target_subject.casefold()
        ):
            kind, msg = (
                TargetKind.CONFLICT,
                f"Session {session!r} already exists in {project} under subject "
                f"{same_label.subject_label!r}, not {subject!r}.",
            )
        else:
            kind, msg = (
                TargetKind.MERGE,
                f"Session {session!r} already exists in {project} with the same study; "
                "the upload merges into it.",
            )
        return TargetAssessment(
            kind, subject_status, (msg,), same_label, subject_match, tuple(warnings)
        )

    same_uid = next((s for s in sessions if study_uid and s.study_uid == study_uid), None)
    if same_uid is not None:
        return TargetAssessment(
            TargetKind.DUPLICATE,
            subject_status,
            (
                f"This study is already in {project} as session {same_uid.label!r}; "
                "uploading it under another label would create a second copy.",
            ),
            same_uid,
            subject_match,
            tuple(warnings),
        )
    creates = subject_status is SubjectStatus.WILL_BE_CREATED
    note = f"New session {session!r}" + (
        f"; subject {subject!r} will be created." if creates else "."
    )
    return TargetAssessment(
        TargetKind.NEW, subject_status, (note,), None, subject_match, tuple(warnings)
    )
