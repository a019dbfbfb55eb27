"""The target classifier and the label proposals, without the TUI.

``classify`` is what the state column and ``--dry-run`` say about a target; each of its
six kinds must come with a sentence the user can act on. ``propose`` is where every
label comes from, for the TUI and the CLI alike.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from tests.unit.workflow.support import FakePort, FakeProject, archived, make_session, planner
from xnat_tui.transfer.plan import JobRequest, PlannedJob, Verdict
from xnat_tui.transfer.server import ProjectInfo
from xnat_tui.transfer.source import from_dicom
from xnat_tui.transfer.types import Overwrite, SourceSession
from xnat_tui.workflow.targets import (
    NO_ROUTING,
    LabelRules,
    ProjectLabels,
    TargetKind,
    classify,
    kind_of_verdict,
    propose,
)

KNOWN_UID = "1.2.826.0.1.3680043.9.5555.1"
OTHER_UID = "9.9.9.1"


def server() -> FakePort:
    return FakePort(
        {
            "PILOT": FakeProject(
                ProjectInfo("PILOT"),
                subjects={"P001"},
                sessions=[
                    archived("P001_MR_1", "P001", OTHER_UID, "PILOT"),
                    archived("P001_MR_7", "P001", KNOWN_UID, "PILOT"),
                ],
            ),
            "STUDY_A": FakeProject(
                ProjectInfo("STUDY_A", allow_create_subject=False, allow_bulk_upload=False),
                subjects={"P001"},
            ),
        }
    )


async def planned(
    session: SourceSession,
    project: str = "PILOT",
    subject: str = "P001",
    label: str = "P001_MR_2",
    **kw: object,
) -> PlannedJob:
    request = JobRequest(session, project, subject, label, **kw)  # type: ignore[arg-type]
    return (await planner(server()).plan([request])).jobs[0]


def source(
    patient_id: str = "P001",
    *,
    routing: tuple[str, str, str] | None = None,
    uid: str | None = None,
    **attrs: str,
) -> SourceSession:
    s = from_dicom(make_session(patient_id, routing=routing, uid=uid), files=False)
    if attrs:
        s.attributes = {**s.attributes, **attrs}
    return s


# ---------------------------------------------------------------- classify


async def test_new_session_says_what_will_be_created() -> None:
    a = classify(await planned(source(), subject="P001"))
    assert (a.kind, a.detail) == (TargetKind.NEW, "new session P001_MR_2")
    b = classify(await planned(source("P009"), subject="P009", label="P009_MR_1"))
    assert b.kind is TargetKind.NEW
    assert b.detail == "subject P009 will be created"


async def test_same_label_same_study_is_a_merge_that_says_so() -> None:
    job = await planned(source(uid=KNOWN_UID), label="P001_MR_7")
    a = classify(job)
    # Refused by the planner without overwrite=append, but a merge is what it is: the
    # user is told queueing merges the selected series into the existing session.
    assert a.kind is TargetKind.MERGE and not job.ok
    assert "P001_MR_7 already exists in the archive with this study" in a.detail
    assert "merges the selected series" in a.detail
    appended = classify(
        await planned(source(uid=KNOWN_UID), label="P001_MR_7", overwrite=Overwrite.APPEND)
    )
    assert appended.kind is TargetKind.MERGE
    assert "merges into existing session P001_MR_7" in appended.detail


async def test_conflict_names_the_session_already_holding_the_label() -> None:
    a = classify(await planned(source(), label="P001_MR_1"))
    assert a.kind is TargetKind.CONFLICT
    assert "P001/P001_MR_1" in a.detail and "another StudyInstanceUID" in a.detail
    # The study is already there under another label: also a conflict, naming it.
    b = classify(await planned(source(uid=KNOWN_UID), label="NEW_LABEL"))
    assert b.kind is TargetKind.CONFLICT
    assert "P001/P001_MR_7" in b.detail and "upload it under that label" in b.detail


@pytest.mark.parametrize(
    ("label", "label_error", "series", "expected"),
    [
        ("bad label", "", None, "invalid character space"),
        ("x", "unknown field {Nope}", None, "unknown field {Nope}"),
        ("P001_MR_2", "", frozenset(), "no series selected"),
    ],
)
async def test_invalid_targets_say_what_to_fix(
    label: str, label_error: str, series: frozenset[str] | None, expected: str
) -> None:
    job = await planned(source(), label=label, label_error=label_error, series=series)
    a = classify(job)
    assert a.kind is TargetKind.INVALID
    assert expected in a.detail


async def test_refusals_by_the_project_are_not_permitted_and_name_why() -> None:
    no_subject = classify(await planned(source("P777"), "STUDY_A", "P777", "E1"))
    assert no_subject.kind is TargetKind.NOT_PERMITTED
    assert "subject P777 does not exist" in no_subject.detail
    assert "STUDY_A does not allow creating subjects" in no_subject.detail
    missing = classify(await planned(source(), "NOPE"))
    assert missing.kind is TargetKind.NOT_PERMITTED and "NOPE" in missing.detail
    refused = classify(
        (
            await planner(server()).plan(
                [JobRequest(source(), "", "", "", routing_error=NO_ROUTING)]
            )
        ).jobs[0]
    )
    assert refused.kind is TargetKind.NOT_PERMITTED
    assert "names no project" in refused.detail


async def test_bulk_upload_refusal_is_not_permitted() -> None:
    a, b = source(), source()
    plan = await planner(server()).plan(
        [JobRequest(a, "STUDY_A", "P001", "E1"), JobRequest(b, "STUDY_A", "P001", "E2")]
    )
    for job in plan.jobs:
        assessment = classify(job)
        assert assessment.kind is TargetKind.NOT_PERMITTED
        assert "does not allow uploading several sessions at once" in assessment.detail


async def test_routed_elsewhere_until_the_user_chooses() -> None:
    job = await planned(source(routing=("STUDY_A", "", "")))
    a = classify(job, routing_unresolved=True)
    assert a.kind is TargetKind.ROUTED and not a.kind.queueable
    assert a.detail.startswith("routed to STUDY_A")
    assert "PILOT" in a.detail and "follow the routing" in a.detail
    # Once the user chose the chosen project, it is judged as any other target, and
    # the routing still shows as a note.
    kept = classify(job)
    assert kept.kind is TargetKind.NEW
    assert "routes this session to project STUDY_A" in kept.detail


async def test_routing_to_the_chosen_project_is_not_routed_elsewhere() -> None:
    job = await planned(source(routing=("PILOT", "", "")))
    assert classify(job, routing_unresolved=True).kind is TargetKind.NEW
    assert classify(await planned(source()), routing_unresolved=True).kind is TargetKind.NEW


def test_kinds_of_verdicts_and_which_can_be_queued() -> None:
    assert kind_of_verdict(Verdict.NEW, ()) is TargetKind.NEW
    assert kind_of_verdict(Verdict.MERGE, ()) is TargetKind.MERGE
    assert kind_of_verdict(Verdict.CONFLICT, {"conflict"}) is TargetKind.CONFLICT
    assert kind_of_verdict(Verdict.DUPLICATE, {"queued"}) is TargetKind.CONFLICT
    assert kind_of_verdict(Verdict.BLOCKED, {"label"}) is TargetKind.INVALID
    assert kind_of_verdict(Verdict.BLOCKED, {"create-subject"}) is TargetKind.NOT_PERMITTED
    assert {k for k in TargetKind if k.queueable} == {TargetKind.NEW, TargetKind.MERGE}


# ---------------------------------------------------------------- propose


def labels_of(
    sessions: list[SourceSession],
    rules: LabelRules,
    projects: list[str] | None = None,
    existing: Mapping[str, ProjectLabels] | None = None,
) -> list[tuple[str, str, str, str]]:
    views = existing or {}
    out = propose(
        sessions,
        rules,
        projects=projects or ["PILOT"] * len(sessions),
        existing=lambda p: views.get(p, ProjectLabels()),
    )
    return [(p.project, p.subject, p.label, p.template_error) for p in out]


def test_a_study_already_in_the_project_keeps_its_labels() -> None:
    known = ProjectLabels({"OLD"}, {KNOWN_UID: ("SUBJ", "OLD")})
    s = source(uid=KNOWN_UID, routing=("PILOT", "R1", "E1"))
    for explicit in (False, True):
        rules = LabelRules("{PatientID}", "{subject}_{n}", explicit)
        assert labels_of([s], rules, existing={"PILOT": known}) == [("PILOT", "SUBJ", "OLD", "")]


def test_routing_labels_come_before_templates_unless_templates_are_explicit() -> None:
    s = source("P001", routing=("PILOT", "R 1", "E/1"))
    assert labels_of([s], LabelRules()) == [("PILOT", "R_1", "E_1", "")]
    explicit = LabelRules("{PatientID}", "{subject}_{Modality}_{n}", explicit=True)
    assert labels_of([s], explicit) == [("PILOT", "P001", "P001_MR_1", "")]
    # Routing that names only the project leaves the labels to the templates.
    only_project = source("P001", routing=("PILOT", "", ""))
    assert labels_of([only_project], LabelRules()) == [("PILOT", "P001", "P001_MR_1", "")]


def test_counter_never_hands_out_a_label_twice_nor_one_the_project_has() -> None:
    sessions = [source("P001") for _ in range(3)]
    taken = {"PILOT": ProjectLabels({"P001_MR_2"})}
    got = labels_of(sessions, LabelRules(), existing=taken)
    assert [g[2] for g in got] == ["P001_MR_1", "P001_MR_3", "P001_MR_4"]
    # Counters are per project: the same session in two projects starts at 1 in each.
    split = labels_of(sessions[:2], LabelRules(), projects=["PILOT", "STUDY_A"])
    assert [(g[0], g[2]) for g in split] == [("PILOT", "P001_MR_1"), ("STUDY_A", "P001_MR_1")]


def test_counter_skips_labels_routing_gave_earlier_in_the_batch() -> None:
    routed = source("P001", routing=("PILOT", "P001", "P001_MR_1"))
    plain = source("P001")
    got = labels_of([routed, plain], LabelRules())
    assert [g[2] for g in got] == ["P001_MR_1", "P001_MR_2"]


@pytest.mark.parametrize(
    ("subject_template", "session_template", "named"),
    [
        ("{PatientID}", "{Nope}_{n}", "{Nope}"),
        ("{Missing}", "{subject}_{n}", "{Missing}"),
        ("{PatientID}", "{AccessionNumber}", "{AccessionNumber}"),
        ("{routing.subject}", "{subject}_{n}", "{routing.subject}"),
    ],
)
def test_a_template_naming_a_missing_field_says_which(
    subject_template: str, session_template: str, named: str
) -> None:
    [(_, _, label, error)] = labels_of([source()], LabelRules(subject_template, session_template))
    assert named in error
    assert label == ""  # never a silent empty or half-made label the planner might accept
