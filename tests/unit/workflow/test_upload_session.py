"""UploadSession: the one place job requests are made, for the TUI and the CLI."""

from __future__ import annotations

from pathlib import Path

from tests.unit.workflow.support import FakePort, FakeProject, make_session, upload_session
from xnat_tui.config import Config, ProjectPreferences
from xnat_tui.transfer.server import ProjectInfo
from xnat_tui.transfer.source import from_dicom
from xnat_tui.transfer.types import AnonOptions, Destination, Overwrite
from xnat_tui.workflow.targets import NO_ROUTING, LabelRules
from xnat_tui.workflow.upload import (
    Anonymization,
    UploadSession,
    UploadSettings,
    label_rules_for,
)
from xnat_tui.workflow.workbench import ProjectSummary, RowState, Workbench


def port() -> FakePort:
    return FakePort(
        {
            "PILOT": FakeProject(ProjectInfo("PILOT")),
            "STUDY_A": FakeProject(ProjectInfo("STUDY_A"), subjects={"SA_1"}),
        }
    )


def anonymized(tmp_path: Path, settings: UploadSettings | None = None) -> UploadSession:
    def default(project: str) -> Anonymization:
        if project == "STUDY_A":
            return Anonymization("basic", AnonOptions(retain_dates=True), {"site": "X"})
        return Anonymization()

    return upload_session(port(), tmp_path, settings, default)


def test_request_applies_the_settings_and_each_projects_anonymization(tmp_path: Path) -> None:
    settings = UploadSettings(
        destination=Destination.ARCHIVE, overwrite=Overwrite.APPEND, include_burned_in=True
    )
    uploads = anonymized(tmp_path, settings)
    s = from_dicom(make_session("P001"))
    a = uploads.request(s, "STUDY_A", "SA_1", "E1")
    assert (a.destination, a.overwrite, a.include_burned_in) == (
        Destination.ARCHIVE,
        Overwrite.APPEND,
        True,
    )
    assert a.anonymization == "basic"
    assert a.anon_options == AnonOptions(retain_dates=True)
    assert dict(a.variables) == {"site": "X"}
    p = uploads.request(s, "PILOT", "P001", "E1", overwrite=Overwrite.DELETE)
    assert (p.anonymization, p.anon_options, dict(p.variables)) == ("none", AnonOptions(), {})
    assert p.overwrite is Overwrite.DELETE  # a per-request choice beats the setting
    # The user's choice for one project replaces its default, for that project only.
    uploads.choose_anonymization("PILOT", "xnat", AnonOptions(retain_uids=True), {"a": "1"})
    chosen = uploads.request(s, "PILOT", "P001", "E1")
    assert chosen.anonymization == "xnat"
    assert chosen.anon_options == AnonOptions()  # retain options are the basic profile's
    assert uploads.request(s, "STUDY_A", "SA_1", "E1").anonymization == "basic"


async def test_routed_requests_refuse_sessions_without_routing_and_say_so(
    tmp_path: Path,
) -> None:
    uploads = upload_session(port(), tmp_path)
    routed = make_session("P001", routing=("STUDY_A", "SA_1", "SA_1_MR"))
    unrouted = make_session("P002")
    subject_only = make_session("P003", routing=("", "S3", ""))
    sessions = [from_dicom(s) for s in (routed, unrouted, subject_only)]
    requests = await uploads.requests_for(sessions, LabelRules(), project=None)
    assert [(r.project, r.subject, r.label) for r in requests] == [
        ("STUDY_A", "SA_1", "SA_1_MR"),
        ("", "", ""),
        ("", "", ""),
    ]
    plan = await uploads.plan(requests)
    first, *refused = plan.jobs
    assert first.ok, first.issues
    for job in refused:
        assert not job.ok
        assert [(i.code, i.message) for i in job.issues] == [("no-routing", NO_ROUTING)]
        assert "names no project" in job.issues[0].message
    assert not plan.ok and plan.sendable == [first]
    # With a project, the same sessions all go there.
    into = await uploads.requests_for(sessions, LabelRules(), project="PILOT")
    assert {r.project for r in into} == {"PILOT"} and all(r.label for r in into)


async def test_classify_reports_a_label_another_row_targets_as_conflict(
    tmp_path: Path,
) -> None:
    uploads = upload_session(port(), tmp_path)
    a, b, c = make_session("P001"), make_session("P002"), make_session("P003")
    wb = Workbench()
    for s in (a, b, c):
        wb.upsert(s)
    wb.project = await uploads.project("PILOT")
    await uploads.load_existing(wb, "PILOT")
    wb.relabel(list(wb.items.values()))
    wb.set_labels(b.study_instance_uid, label="P001_MR_1")
    states = await uploads.classify(wb, list(wb.items.values()))
    for row in (a, b):
        state, detail = states[row.study_instance_uid]
        assert state is RowState.CONFLICT
        assert "P001_MR_1 is also the target of" in detail
    assert "Test^P002" in states[a.study_instance_uid][1]
    assert "Test^P001" in states[b.study_instance_uid][1]
    assert states[c.study_instance_uid][0] is RowState.NEW


async def test_classify_same_label_in_another_project_is_no_conflict(tmp_path: Path) -> None:
    uploads = upload_session(port(), tmp_path)
    a = make_session("P001")
    b = make_session("SA_1", routing=("STUDY_A", "SA_1", "P001_MR_1"))
    wb = Workbench()
    for s in (a, b):
        wb.upsert(s)
    wb.project = await uploads.project("PILOT")
    await uploads.load_existing(wb, "PILOT")
    await uploads.load_existing(wb, "STUDY_A")
    wb.relabel(list(wb.items.values()))
    states = await uploads.classify(wb, list(wb.items.values()))
    assert states[b.study_instance_uid][0] is RowState.ROUTED  # not chosen yet
    assert states[b.study_instance_uid][1].startswith("routed to STUDY_A")
    wb.choose_routing([wb.items[b.study_instance_uid]], follow=True)
    states = await uploads.classify(wb, list(wb.items.values()))
    assert [states[s.study_instance_uid][0] for s in (a, b)] == [RowState.NEW, RowState.NEW]
    assert [i.label for i in wb.items.values()] == ["P001_MR_1", "P001_MR_1"]


async def test_project_summary_says_what_the_label_editor_needs(tmp_path: Path) -> None:
    uploads = upload_session(port(), tmp_path)
    await uploads.projects()
    summary = await uploads.project("STUDY_A")
    assert summary == ProjectSummary(
        "STUDY_A",
        name="STUDY_A",
        subjects=["SA_1"],
        settings=summary.settings,
    )


def test_label_rules_given_for_the_run_are_explicit() -> None:
    config = Config(projects={"PILOT": ProjectPreferences(session_pattern="{subject}_{n}")})
    assert label_rules_for(config, "PILOT") == LabelRules("{PatientID}", "{subject}_{n}")
    assert label_rules_for(config, "OTHER") == LabelRules()
    given = label_rules_for(config, "PILOT", session="{StudyDate}")
    assert given == LabelRules("{PatientID}", "{StudyDate}", explicit=True)


async def test_each_target_project_labels_with_its_own_templates(tmp_path: Path) -> None:
    """`[projects.STUDY_A]` templates apply where a session goes, in the TUI and the CLI."""
    config = Config(projects={"STUDY_A": ProjectPreferences(session_pattern="A_{PatientID}_{n}")})
    uploads = upload_session(port(), tmp_path / "j")
    routed = make_session("P001", routing=("STUDY_A", "", ""))
    plain = make_session("P002")

    def rules(project: str) -> LabelRules:
        return label_rules_for(config, project)

    # The CLI: --routed sends P001 to STUDY_A; --project PILOT keeps PILOT's defaults.
    cli = await uploads.requests_for([from_dicom(routed)], rules, project=None)
    assert (cli[0].project, cli[0].label) == ("STUDY_A", "A_P001_1")
    cli = await uploads.requests_for([from_dicom(plain)], rules, project="PILOT")
    assert cli[0].label == "P002_MR_1"

    # The TUI: following the routing relabels with STUDY_A's templates.
    wb = Workbench()
    wb.project_rules = rules
    for session in (routed, plain):
        wb.upsert(session)
    wb.project = await uploads.project("PILOT")
    await uploads.load_existing(wb, "PILOT")
    wb.relabel(list(wb.items.values()), only_unedited=True)
    routed_item = wb.items[routed.study_instance_uid]
    await uploads.choose_routing(wb, [routed_item], follow=True)
    assert (wb.target_project(routed_item), routed_item.label) == ("STUDY_A", "A_P001_1")
    assert wb.items[plain.study_instance_uid].label == "P002_MR_1"


async def test_the_plan_shows_what_cleaning_did_to_a_label(tmp_path: Path) -> None:
    """`Müller Hans` becomes `Muller_Hans` in the open: a warning in the TUI and the CLI."""
    uploads = upload_session(port(), tmp_path / "j")
    session = make_session("Müller Hans")
    rules = LabelRules("{PatientID}", "{subject}_{Modality}_{n}")
    cli = (
        await uploads.plan(
            await uploads.requests_for([from_dicom(session)], rules, project="PILOT")
        )
    ).jobs[0]
    assert (cli.request.subject, cli.request.label) == ("Muller_Hans", "Muller_Hans_MR_1")
    cleaned = [i for i in cli.issues if i.code == "label-cleaned"]
    assert [(i.severity, i.message) for i in cleaned] == [
        ("warning", "subject label 'Müller Hans' → Muller_Hans (cleaned)")
    ]
    wb = Workbench(rules)
    wb.upsert(session)
    wb.project = await uploads.project("PILOT")
    [tui] = (await uploads.plan_items(wb, list(wb.items.values()))).jobs
    assert [i.message for i in tui.issues if i.code == "label-cleaned"] == [cleaned[0].message]
    # A label the user typed is theirs: nothing to explain.
    item = next(iter(wb.items.values()))
    wb.set_labels(item.uid, label="Muller_Hans_MR_9")
    [typed] = (await uploads.plan_items(wb, [item])).jobs
    assert not [i for i in typed.issues if i.code == "label-cleaned"]


async def test_a_label_held_in_the_prearchive_is_skipped_by_the_tui_and_the_cli(
    tmp_path: Path,
) -> None:
    """One rule for {n}: a prearchive session's label is taken, in both paths."""
    from xnat_tui.transfer.server import RemoteSession

    held = RemoteSession("P001_MR_1", "P001", "9.9.9", "prearchive", "/prearchive/x", "READY")
    fake = FakePort({"PILOT": FakeProject(ProjectInfo("PILOT"), sessions=[held])})
    uploads = upload_session(fake, tmp_path / "j")
    session = make_session("P001")
    rules = LabelRules("{PatientID}", "{subject}_{Modality}_{n}")
    [cli] = await uploads.requests_for([from_dicom(session)], rules, project="PILOT")
    wb = Workbench(rules)
    wb.upsert(session)
    wb.project = await uploads.project("PILOT")
    await uploads.load_existing(wb, "PILOT")
    wb.relabel(list(wb.items.values()), only_unedited=True)
    item = wb.items[session.study_instance_uid]
    state, _ = (await uploads.classify(wb, [item]))[item.uid]
    assert cli.label == item.label == "P001_MR_2"
    assert state is RowState.NEW


async def test_the_confirmation_names_every_project_a_batch_goes_to(tmp_path: Path) -> None:
    """A session following its routing to STUDY_A: the summary must not say 'Project
    PILOT' alone (seen in a tmux run before this was fixed)."""
    from xnat_tui.ui.screens.upload_confirm import summary

    uploads = upload_session(port(), tmp_path / "j")
    routed = make_session("P001", routing=("STUDY_A", "", ""))
    plain = make_session("P002")
    rules = LabelRules("{PatientID}", "{subject}_{Modality}_{n}")
    wb = Workbench(rules)
    for s in (routed, plain):
        wb.upsert(s)
    wb.project = await uploads.project("PILOT")
    await uploads.load_existing(wb, "PILOT")
    await uploads.choose_routing(wb, [wb.items[routed.study_instance_uid]], follow=True)
    both = await uploads.plan_items(wb, list(wb.items.values()))
    text = summary(both, wb.project)
    assert text.splitlines()[0].startswith("Projects PILOT, STUDY_A (STUDY_A as routed)")
    only = await uploads.plan_items(wb, [wb.items[plain.study_instance_uid]])
    assert summary(only, wb.project).startswith("Project PILOT → prearchive")
