"""Where each session goes: the proposed target (project, subject, label) and its kind.

Two pure steps the TUI's workbench and ``xnat-tui upload`` share:

- :func:`propose` turns sessions into targets: the project (the chosen one, or the one
  the DICOM routes it to), then subject and session labels. Precedence, per session:
  a study already in that project (on the server or in the journal) keeps its labels,
  so a re-run merges instead of creating a second session; then routing labels found
  in the DICOM (unless the templates were given explicitly); then the templates.
- :func:`classify` turns the planner's verdict on one job into what the user sees:
  new / merge / conflict / invalid / not permitted / routed elsewhere, with a sentence.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from xnat_tui.transfer.plan import PlannedJob, Verdict
from xnat_tui.transfer.types import SourceSession
from xnat_tui.workflow.labels import clean_label
from xnat_tui.workflow.templates import TemplateError, render

# Issue codes that make a target invalid (the user can fix it by relabelling).
_INVALID_CODES = frozenset(
    {"label", "template", "no-series", "all-filtered", "all-excluded", "label-in-batch"}
)


@dataclass(frozen=True)
class LabelRules:
    """How labels are made: templates, and whether they override routing labels.

    ``explicit`` is set when the user gave the templates for this run (``--subject`` /
    ``--session``, or "apply patterns" in bulk mode): what they typed is what every
    session gets. Otherwise routing labels found in the DICOM come first.
    """

    subject_template: str = "{PatientID}"
    session_template: str = "{subject}_{Modality}_{n}"
    explicit: bool = False


# The label rules of a project (templates may be set per project in the config).
RulesFor = Callable[[str], LabelRules]


@dataclass
class ProjectLabels:
    """What a project already holds, as far as label proposals are concerned."""

    labels: set[str] = field(default_factory=set)
    # StudyInstanceUID -> (subject, label) of a study already in the project.
    known: Mapping[str, tuple[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Proposal:
    project: str
    subject: str
    label: str
    # Why no usable label could be made (a field the template names is missing).
    template_error: str = ""
    # What cleaning changed, e.g. "subject label 'Müller^Hans' → Muller_Hans".
    notes: tuple[str, ...] = ()


def routed_project(session: SourceSession) -> str:
    """The project the session's DICOM routing names ('' when none)."""
    return session.routing.get("project", "").strip()


NO_ROUTING = (
    "the DICOM names no project for this session (no 'Project:' routing in the Patient "
    "or Study Comments, and no site routing pattern matched)"
)


def propose(
    sessions: Sequence[SourceSession],
    rules: LabelRules | RulesFor,
    *,
    projects: Sequence[str],
    existing: Callable[[str], ProjectLabels],
) -> list[Proposal]:
    """Targets for ``sessions`` (``projects[i]`` is session i's target project).

    Labels are never handed out twice within one project: each label proposed is added
    to that project's taken set before the next session's ``{n}`` is chosen. ``rules``
    are one set for all, or each target project's own.
    """
    rules_for = rules if callable(rules) else (lambda project: rules)
    taken: dict[str, set[str]] = {}
    out: list[Proposal] = []
    for session, project in zip(sessions, projects, strict=True):
        view = existing(project)
        used = taken.setdefault(project, set(view.labels))
        proposal = _propose_one(session, project, rules_for(project), used, view.known)
        if proposal.label:
            used.add(proposal.label)
        out.append(proposal)
    return out


def _propose_one(
    session: SourceSession,
    project: str,
    rules: LabelRules,
    taken: Collection[str],
    known: Mapping[str, tuple[str, str]],
) -> Proposal:
    prior = known.get(session.study_instance_uid)
    if prior is not None and prior[1]:
        return Proposal(project, prior[0], prior[1])
    routing = {} if rules.explicit else session.routing
    subject_text = routing.get("subject", "").strip()
    label_text = routing.get("session", "").strip()
    subject, label = clean_label(subject_text), clean_label(label_text)
    try:
        if not subject:
            subject, subject_text = render(rules.subject_template, session)
        if not label:
            label, label_text = render(
                rules.session_template, session, subject=subject, taken=taken
            )
    except TemplateError as exc:
        return Proposal(project, subject, label, template_error=str(exc))
    notes = tuple(
        f"{what} {text!r} → {cleaned}"
        for what, text, cleaned in (
            ("subject label", subject_text, subject),
            ("session label", label_text, label),
        )
        if text != cleaned
    )
    return Proposal(project, subject, label, notes=notes)


# ---------------------------------------------------------------- classification


class TargetKind(StrEnum):
    """What the server would make of a target, as the user must know before queueing."""

    NEW = "new"  # no session with this label: a new session is created
    MERGE = "merge"  # same label, same study: the selected series are added to it
    CONFLICT = "conflict"  # same label, another study; or this study is already there
    INVALID = "invalid"  # a label, template or series choice the user must fix
    NOT_PERMITTED = "not permitted"  # the project, its settings or permissions refuse it
    ROUTED = "routed"  # the DICOM routes it to another project: the user must choose

    @property
    def queueable(self) -> bool:
        return self in (TargetKind.NEW, TargetKind.MERGE)


@dataclass(frozen=True)
class Assessment:
    kind: TargetKind
    detail: str


def kind_of_verdict(verdict: Verdict, codes: Collection[str]) -> TargetKind:
    """The kind for a planner verdict (``codes``: the codes of its errors)."""
    if verdict is Verdict.NEW:
        return TargetKind.NEW
    if verdict is Verdict.MERGE:
        return TargetKind.MERGE
    if verdict in (Verdict.CONFLICT, Verdict.DUPLICATE):
        return TargetKind.CONFLICT
    if set(codes) & _INVALID_CODES:
        return TargetKind.INVALID
    return TargetKind.NOT_PERMITTED


def classify(job: PlannedJob, *, routing_unresolved: bool = False) -> Assessment:
    """What ``job``'s target is, in one word and one sentence.

    ``routing_unresolved``: the session's routing names another project than the chosen
    one and the user has not yet said which to follow.
    """
    r = job.request
    routed = routed_project(r.session)
    if routing_unresolved and routed and routed != r.project:
        return Assessment(
            TargetKind.ROUTED,
            f"routed to {routed}: its DICOM names project {routed}, not {r.project}; "
            "follow the routing or upload to the chosen project",
        )
    errors = [i for i in job.issues if i.severity == "error"]
    warnings = [i for i in job.issues if i.severity == "warning"]
    codes = {i.code for i in errors}
    if job.verdict is Verdict.MERGE and codes == {"exists"}:
        where = job.existing.location if job.existing else "server"
        return Assessment(
            TargetKind.MERGE,
            f"session {r.label} already exists in the {where} with this study: "
            "queueing merges the selected series into it",
        )
    if errors:
        verdict = Verdict.BLOCKED if job.verdict in (Verdict.NEW, Verdict.MERGE) else job.verdict
        return Assessment(kind_of_verdict(verdict, codes), errors[0].message)
    notes: list[str] = []
    if job.new_subject:
        notes.append(f"subject {r.subject} will be created")
    if job.verdict is Verdict.MERGE:
        notes.append(f"merges into existing session {r.label}")
    if job.dropped:
        notes.append(f"{len(job.dropped)} series dropped by the import filter")
    notes.extend(w.message for w in warnings[:1])
    return Assessment(
        kind_of_verdict(job.verdict, ()), "; ".join(notes) or f"new session {r.label}"
    )
