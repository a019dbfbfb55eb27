from __future__ import annotations

from pathlib import Path

from tests.unit.transfer.fake import FakeServer, FakeSession
from tests.unit.transfer.helpers import make_session
from xnat_tui.transfer import JobState, Journal, Overwrite, Verdict
from xnat_tui.transfer.journal import NewJob
from xnat_tui.transfer.types import AnonOptions, Destination
from xnat_tui.workflow.login import Connection
from xnat_tui.workflow.targets import LabelRules
from xnat_tui.workflow.upload import Anonymization, UploadSession, UploadSettings
from xnat_tui.xnat.filters import SeriesImportFilter


async def plan_for(server: FakeServer, sessions, journal=None, **kw):  # type: ignore[no-untyped-def]
    """Plan as ``xnat-tui upload`` does: templates, then the planner."""
    project = kw.pop("project", "P")
    rules = LabelRules(
        kw.pop("subject", "{PatientID}"), kw.pop("session", "{subject}_{Modality}_{n}")
    )
    anon = Anonymization(
        kw.pop("anonymization", "none"),
        kw.pop("anon_options", None) or AnonOptions(),
        dict(kw.pop("variables", None) or {}),
    )
    settings = UploadSettings(
        destination=kw.pop("destination", Destination.PROJECT),
        overwrite=kw.pop("overwrite", Overwrite.NONE),
        include_burned_in=kw.pop("include_burned_in", None),
    )
    assert not kw, f"unknown options {kw}"
    connection = Connection(server.server_url, "alice", server, projects=server)  # type: ignore[arg-type]
    uploads = UploadSession(
        connection,
        journal or Journal(),  # the isolated test home's; detached below
        settings=settings,
        anon_default=lambda p: Anonymization(anon.profile, anon.options, dict(anon.variables)),
    )
    if journal is None:
        uploads.planner.journal = None
    reqs = await uploads.requests_for(sessions, rules, project=project)
    return await uploads.plan(reqs)


async def test_new_sessions_get_distinct_counter_labels(tmp_path: Path) -> None:
    server = FakeServer()
    server.sessions_.append(FakeSession("P", "PAT1", "PAT1_MR_1", "9.9", "/x", location="archive"))
    a = make_session(tmp_path / "a", study="1.1")
    b = make_session(tmp_path / "b", study="1.2")
    plan = await plan_for(server, [a, b])
    assert plan.ok
    assert [j.request.label for j in plan.jobs] == ["PAT1_MR_2", "PAT1_MR_3"]
    assert all(j.new_subject for j in plan.jobs)


async def test_existing_same_study_is_merge_and_needs_append(tmp_path: Path) -> None:
    server = FakeServer()
    server.sessions_.append(FakeSession("P", "PAT1", "E1", "1.1", "/x", location="archive"))
    s = make_session(tmp_path, study="1.1")
    plan = await plan_for(server, [s], session="E1")
    [job] = plan.jobs
    assert job.verdict is Verdict.MERGE and not job.ok
    plan = await plan_for(server, [s], session="E1", overwrite=Overwrite.APPEND)
    assert plan.ok and plan.jobs[0].verdict is Verdict.MERGE


async def test_same_label_other_study_is_a_conflict(tmp_path: Path) -> None:
    server = FakeServer()
    server.sessions_.append(FakeSession("P", "PAT1", "E1", "7.7", "/x", location="archive"))
    plan = await plan_for(server, [make_session(tmp_path, study="1.1")], session="E1")
    [job] = plan.jobs
    assert job.verdict is Verdict.CONFLICT and not job.ok
    assert "another StudyInstanceUID" in job.issues[-1].message


async def test_study_already_there_under_another_label_is_reused_not_duplicated(
    tmp_path: Path,
) -> None:
    server = FakeServer()
    server.sessions_.append(
        FakeSession("P", "PAT1", "OLD", "1.1", "/data/prearchive/projects/P/1/OLD")
    )
    plan = await plan_for(server, [make_session(tmp_path, study="1.1")])
    [job] = plan.jobs
    assert job.request.label == "OLD"  # the {n} counter did not invent a second session
    assert job.verdict is Verdict.MERGE and not job.ok


async def test_filters_settings_and_batch_rules(tmp_path: Path) -> None:
    server = FakeServer()
    info = server.projects["P"]
    info.series_filters = [
        SeriesImportFilter.parse({"mode": "blacklist", "list": "localizer"}, "project P")
    ]
    info.allow_create_subject = False
    info.allow_bulk_upload = False
    a = make_session(tmp_path / "a", study="1.1", series=(("1", "Localizer"), ("2", "T1")))
    b = make_session(tmp_path / "b", study="1.1")
    plan = await plan_for(server, [a, b])
    first, second = plan.jobs
    assert [d.series.description for d in first.dropped] == ["Localizer"]
    assert [s.description for s in first.series] == ["T1"]
    codes = {i.code for i in first.issues}
    assert {"filtered", "create-subject", "bulk-upload"} <= codes
    assert second.verdict is Verdict.DUPLICATE  # the same study twice in one batch


async def test_unknown_project_and_bad_labels_are_blocked(tmp_path: Path) -> None:
    server = FakeServer()
    s = make_session(tmp_path)
    plan = await plan_for(server, [s], project="NOPE")
    assert (
        plan.jobs[0].verdict is Verdict.BLOCKED and "not found" in plan.jobs[0].issues[-1].message
    )
    plan = await plan_for(server, [s], session="{AccessionNumber}")
    assert (
        plan.jobs[0].verdict is Verdict.BLOCKED
        and plan.jobs[0].issues[0].message == "{AccessionNumber} is empty for this session"
    )


async def test_journal_knows_queued_and_failed_jobs(tmp_path: Path) -> None:
    server = FakeServer()
    journal = Journal(tmp_path / "j.sqlite3")
    s = make_session(tmp_path, study="1.1")
    [jid] = journal.create_jobs(
        [
            NewJob(
                server.server_url,
                "alice",
                "P",
                "PAT1",
                "PAT1_MR_1",
                "1.1",
                Destination.PROJECT,
                Overwrite.NONE,
                s.series,
            )
        ]
    )
    plan = await plan_for(server, [s], journal)
    assert plan.jobs[0].request.label == "PAT1_MR_1"
    assert "already queued" in plan.jobs[0].issues[-1].message
    journal.set_state(jid, JobState.FAILED, "x")
    plan = await plan_for(server, [s], journal)
    assert f"transfers retry {jid}" in plan.jobs[0].issues[-1].message


async def test_a_job_refused_for_itself_stays_blocked_in_a_batch_clash(tmp_path: Path) -> None:
    """Two sessions given one label, the second into a project that cannot take it."""
    from xnat_tui.transfer.plan import JobRequest
    from xnat_tui.workflow.planner import Planner

    server = FakeServer()
    a = make_session(tmp_path / "a", study="1.1")
    b = make_session(tmp_path / "b", study="1.2")
    plan = await Planner(server).plan(
        [JobRequest(a, "P", "PAT1", "E1"), JobRequest(b, "P", "PAT1", "E1", series=[])]
    )
    second = plan.jobs[1]
    assert second.verdict is Verdict.BLOCKED
    assert {i.code for i in second.issues if i.severity == "error"} == {
        "no-series",
        "label-in-batch",
    }


async def test_a_journalled_study_keeps_its_label_but_a_cancelled_one_does_not(
    tmp_path: Path,
) -> None:
    """A re-run proposes the label the journal holds for the study (so it is refused as
    already queued, never sent again under the next {n}); a cancelled job is forgotten."""
    server = FakeServer()
    journal = Journal(tmp_path / "j.sqlite3")
    s = make_session(tmp_path, study="1.1")

    def job(label: str) -> NewJob:
        return NewJob(
            server.server_url, "alice", "P", "EARLIER", label, "1.1",
            Destination.PROJECT, Overwrite.NONE, s.series,
        )  # fmt: skip

    [cancelled] = journal.create_jobs([job("OLD_CANCELLED")])
    journal.set_state(cancelled, JobState.CANCELLED, "x")
    [kept] = journal.create_jobs([job("CUSTOM_7")])
    plan = await plan_for(server, [s], journal)
    request = plan.jobs[0].request
    assert (request.subject, request.label) == ("EARLIER", "CUSTOM_7")
    journal.set_state(kept, JobState.CANCELLED, "x")
    plan = await plan_for(server, [s], journal)
    assert plan.jobs[0].request.label == "PAT1_MR_1"
