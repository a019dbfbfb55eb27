"""The workbench model: row states, label proposals, and the routing choice."""

from __future__ import annotations

from pathlib import Path

from tests.unit.workflow.support import (
    FakePort,
    FakeProject,
    archived,
    make_session,
    upload_session,
)
from xnat_tui.dicom.model import Session
from xnat_tui.transfer.server import ProjectInfo
from xnat_tui.transfer.source import from_dicom
from xnat_tui.transfer.types import JobState
from xnat_tui.workflow.targets import LabelRules, ProjectLabels, TargetKind, propose
from xnat_tui.workflow.workbench import ProjectSummary, RowState, SessionItem, Workbench


def bench(
    *sessions: Session, project: str | None = "PILOT", rules: LabelRules | None = None
) -> Workbench:
    wb = Workbench(rules)
    for s in sessions:
        wb.upsert(s)
    if project is not None:
        wb.project = ProjectSummary(project)
        wb.relabel(list(wb.items.values()), only_unedited=True)
    return wb


def item(wb: Workbench, session: Session) -> SessionItem:
    return wb.items[session.study_instance_uid]


# ---------------------------------------------------------------- row states


def test_every_engine_state_has_a_row_state_in_transfer() -> None:
    expected = {
        JobState.QUEUED: RowState.QUEUED,
        JobState.SENDING: RowState.UPLOADING,
        JobState.COMMITTING: RowState.UPLOADING,
        JobState.VERIFYING: RowState.UPLOADING,
        JobState.PAUSED: RowState.PAUSED,
        JobState.VERIFIED: RowState.VERIFIED,
        JobState.FAILED: RowState.FAILED,
        JobState.CANCELLED: RowState.CANCELLED,
    }
    assert set(expected) == set(JobState)  # a new engine state must get a row state
    for state in JobState:
        row = RowState.of_job(state)
        assert row is expected[state]
        assert row.in_transfer and not row.queueable and not row.blocking


def test_every_target_kind_has_a_row_state_that_agrees_on_queueing() -> None:
    for kind in TargetKind:
        row = RowState.of_target(kind)
        assert row.value == kind.value
        assert row.queueable == kind.queueable
        assert row.blocking == (not kind.queueable)
        assert not row.in_transfer


# ---------------------------------------------------------------- labels


def test_relabel_proposes_what_propose_does_with_the_project_contents() -> None:
    sessions = [make_session("P001"), make_session("P001", modality="CT"), make_session("P001")]
    wb = Workbench()
    for s in sessions:
        wb.upsert(s)
    wb.project = ProjectSummary("PILOT")
    held = ProjectLabels({"P001_MR_1"}, {})
    wb.existing["PILOT"] = held
    wb.relabel(list(wb.items.values()))
    expected = propose(
        [from_dicom(s, files=False) for s in sessions],
        LabelRules(),
        projects=["PILOT"] * 3,
        existing=lambda p: held,
    )
    assert [(i.subject, i.label) for i in wb.items.values()] == [
        (p.subject, p.label) for p in expected
    ]
    assert [i.label for i in wb.items.values()] == ["P001_MR_2", "P001_CT_1", "P001_MR_3"]


def test_a_template_error_is_kept_on_the_row() -> None:
    s = make_session("P001")
    wb = bench(s, rules=LabelRules("{PatientID}", "{Nope}_{n}"))
    assert item(wb, s).label == ""
    assert "{Nope}" in item(wb, s).template_error


def test_label_edits_survive_relabelling_of_unedited_rows() -> None:
    a, b = make_session("P001"), make_session("P001")
    wb = bench(a, b)
    assert [i.label for i in wb.items.values()] == ["P001_MR_1", "P001_MR_2"]
    wb.set_labels(a.study_instance_uid, label="MINE")
    assert item(wb, a).label_edited
    wb.relabel(list(wb.items.values()), only_unedited=True)
    assert item(wb, a).label == "MINE"
    # The freed counter goes to the other row; the edited label counts as taken.
    assert item(wb, b).label == "P001_MR_1"
    wb.set_labels(b.study_instance_uid, label="P001_MR_9")
    wb.set_patterns("{PatientID}", "{subject}_{n}")
    wb.relabel(list(wb.items.values()), only_unedited=True)
    assert (item(wb, a).label, item(wb, b).label) == ("MINE", "P001_MR_9")
    # Regenerating (not only unedited) replaces the edit with the pattern's label.
    wb.relabel([item(wb, a)])
    assert item(wb, a).label == "P001_1" and not item(wb, a).label_edited


def test_rows_in_transfer_keep_their_target() -> None:
    s = make_session("P001", routing=("STUDY_A", "", ""))
    wb = bench(s)
    row = item(wb, s)
    row.state = RowState.of_job(JobState.SENDING)
    before = (row.subject, row.label, wb.target_project(row))
    assert wb.choose_routing([row], follow=True) == []
    wb.relabel([row])
    assert (row.subject, row.label, wb.target_project(row)) == before
    assert row.state is RowState.UPLOADING


# ---------------------------------------------------------------- routing


def test_a_session_routed_elsewhere_waits_for_the_users_choice() -> None:
    routed = make_session("P001", routing=("STUDY_A", "SA_9", "SA_9_MR"))
    here = make_session("P002", routing=("PILOT", "", ""))
    plain = make_session("P003")
    wb = bench(routed, here, plain)
    r = item(wb, routed)
    assert wb.routed_elsewhere(r) == "STUDY_A"
    assert wb.routing_unresolved(r)
    assert wb.target_project(r) == "PILOT"  # shown in the chosen project until decided
    for other in (item(wb, here), item(wb, plain)):
        assert wb.routed_elsewhere(other) == "" and not wb.routing_unresolved(other)
    # Only the rows routed elsewhere are changed by the choice.
    assert wb.choose_routing(list(wb.items.values()), follow=True) == [r]
    assert not wb.routing_unresolved(r)
    assert wb.target_project(r) == "STUDY_A"
    assert (r.subject, r.label) == ("SA_9", "SA_9_MR")
    assert wb.choose_routing([r], follow=False) == [r]
    assert wb.target_project(r) == "PILOT" and not wb.routing_unresolved(r)
    assert wb.target_project(item(wb, plain)) == "PILOT"


def test_following_routing_reproposes_counters_in_the_routed_project() -> None:
    a = make_session("P001")
    b = make_session("P001", routing=("STUDY_A", "", ""))
    wb = bench(a, b)
    assert [i.label for i in wb.items.values()] == ["P001_MR_1", "P001_MR_2"]
    wb.choose_routing([item(wb, b)], follow=True)
    # In STUDY_A nothing else is taken: its counter starts again.
    assert item(wb, b).label == "P001_MR_1"
    assert item(wb, a).label == "P001_MR_1"


def test_the_routing_choice_keeps_a_label_the_user_typed() -> None:
    s = make_session("P001", routing=("STUDY_A", "", ""))
    wb = bench(s)
    wb.set_labels(s.study_instance_uid, subject="ME", label="TYPED")
    wb.choose_routing([item(wb, s)], follow=True)
    assert wb.target_project(item(wb, s)) == "STUDY_A"
    assert (item(wb, s).subject, item(wb, s).label) == ("ME", "TYPED")


def test_without_a_chosen_project_a_routed_session_shows_its_routing() -> None:
    s = make_session("P001", routing=("STUDY_A", "", ""))
    plain = make_session("P002")
    wb = bench(s, plain, project=None)
    assert wb.target_project(item(wb, s)) == "STUDY_A"
    assert wb.target_project(item(wb, plain)) == ""


def test_explicit_templates_beat_routing_labels_in_the_workbench() -> None:
    s = make_session("P001", routing=("STUDY_A", "R1", "E1"))
    rules = LabelRules("{PatientID}", "{subject}_{Modality}_{n}", explicit=True)
    wb = bench(s, rules=rules)
    wb.relabel([item(wb, s)], explicit=True)  # bulk mode's "apply patterns"
    assert (item(wb, s).subject, item(wb, s).label) == ("P001", "P001_MR_1")
    wb.choose_routing([item(wb, s)], follow=False)
    # `xnat-tui upload --project PILOT --session ...` gives P001/P001_MR_1.
    assert (item(wb, s).subject, item(wb, s).label) == ("P001", "P001_MR_1")


async def test_following_routing_proposes_a_label_free_in_the_routed_project(
    tmp_path: Path,
) -> None:
    port = FakePort(
        {
            "PILOT": FakeProject(ProjectInfo("PILOT")),
            "STUDY_A": FakeProject(
                ProjectInfo("STUDY_A"),
                subjects={"P001"},
                sessions=[archived("P001_MR_1", "P001", "9.9.9.1", "STUDY_A")],
            ),
        }
    )
    uploads = upload_session(port, tmp_path)
    s = make_session("P001", routing=("STUDY_A", "", ""))
    wb = Workbench()
    wb.upsert(s)
    # As the main screen does: choose PILOT, then press the routing key.
    wb.project = await uploads.project("PILOT")
    await uploads.load_existing(wb, "PILOT")
    wb.relabel(list(wb.items.values()), only_unedited=True)
    await uploads.choose_routing(wb, [item(wb, s)], follow=True)
    state, detail = (await uploads.classify(wb, [item(wb, s)]))[s.study_instance_uid]
    # `xnat-tui upload --routed` proposes P001_MR_2, a new session.
    assert item(wb, s).label == "P001_MR_2"
    assert state is RowState.NEW, detail
    assert "goes to project STUDY_A, as its DICOM routes it" in detail
