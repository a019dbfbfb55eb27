"""The TUI's workbench and ``xnat-tui upload --dry-run --json`` agree, session by session.

For random sessions (patient ids, modalities, dates, optional DICOM routing), random
label templates and random project settings (subjects and sessions already there,
whether subjects may be created or several sessions uploaded at once), the two paths
through the application layer must give every session the same target
(project, subject, session label) and the same verdict:

- the CLI: ``UploadSession.requests_for`` + ``plan`` -> ``plan.to_dict()`` (what
  ``--dry-run --json`` prints);
- the TUI: ``Workbench(rules)``, each session upserted as the scan finds it, a project
  chosen (``UploadSession.project`` + ``load_existing``, then relabel, as the main screen
  does), routed rows resolved with ``choose_routing``, then ``UploadSession.classify``
  (the state column) and ``plan_items`` (what queueing plans).

``--project P`` is the TUI choosing P and keeping routed rows there
(``follow=False``); ``--routed`` is the TUI following every row's routing
(``follow=True``). Where the TUI deliberately differs it is said below, and asserted.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.workflow.support import (
    FakePort,
    FakeProject,
    archived,
    make_session,
    upload_session,
)
from xnat_tui.dicom.model import Session
from xnat_tui.transfer.plan import Plan
from xnat_tui.transfer.server import ProjectInfo
from xnat_tui.transfer.source import from_dicom
from xnat_tui.workflow.targets import LabelRules, classify
from xnat_tui.workflow.workbench import RowState, Workbench

PROJECTS = ("PA", "PB")
# The TUI's chosen project under --routed: no session's routing names it, so the
# sessions the TUI keeps there (those without routing) do not take labels elsewhere.
HOME = "HOME"
UIDS = [f"1.2.826.0.1.3680043.9.4242.{i}" for i in range(1, 6)]

patient_ids = st.sampled_from(["P1", "P2", "P 3", "Doe^J", ""])
modalities = st.sampled_from(["MR", "CT", "PT"])
dates = st.sampled_from(["20240115", "20231201", ""])
routing = st.one_of(
    st.none(),
    st.tuples(
        st.sampled_from(["PA", "PB", "GONE", ""]),  # GONE: a project the server lacks
        st.sampled_from(["", "R1", "R 2", "P1"]),
        st.sampled_from(["", "E1", "P1_MR_1", "E 2"]),
    ),
)
subject_templates = st.sampled_from(
    ["{PatientID}", "{routing.subject}", "{PatientID}_{StudyDate}", "{Nope}", "SUBJ"]
)
session_templates = st.sampled_from(
    [
        "{subject}_{Modality}_{n}",
        "{subject}_{n}",
        "{routing.session}",
        "E1",
        "{StudyDate}",
        "{Missing}_{n}",
        "{PatientID}_{Modality}",
    ]
)
labels = st.sampled_from(["P1_MR_1", "P1_MR_2", "E1", "P2_CT_1", "R1_1", "20240115"])
subjects = st.sampled_from(["P1", "P2", "R1", "SUBJ", "P_3"])


@st.composite
def local_sessions(draw: st.DrawFn) -> list[Session]:
    count = draw(st.integers(1, 4))
    return [
        make_session(
            draw(patient_ids),
            modality=draw(modalities),
            study_date=draw(dates),
            routing=draw(routing),
            uid=UIDS[i],
        )
        for i in range(count)
    ]


@st.composite
def project(draw: st.DrawFn, pid: str) -> FakeProject:
    # label -> (subject, study uid): a local study already there, or another study.
    held = draw(
        st.dictionaries(
            labels,
            st.tuples(subjects, st.sampled_from([*UIDS, "9.9.1", "9.9.2"])),
            max_size=3,
        )
    )
    by_uid: dict[str, str] = {}
    sessions = []
    for label, (subject, uid) in held.items():
        if uid in by_uid:  # one study is one session on the server
            continue
        by_uid[uid] = label
        sessions.append(archived(label, subject, uid, pid))
    return FakeProject(
        ProjectInfo(
            pid,
            allow_create_subject=draw(st.booleans()),
            allow_bulk_upload=draw(st.booleans()),
        ),
        subjects=draw(st.sets(subjects, max_size=3)) | {s.subject for s in sessions},
        sessions=sessions,
    )


@st.composite
def servers(draw: st.DrawFn) -> dict[str, FakeProject]:
    out = {pid: draw(project(pid)) for pid in PROJECTS}
    out[HOME] = FakeProject(ProjectInfo(HOME))
    return out


@dataclass
class Row:
    """One session as a path presents it."""

    project: str
    subject: str
    label: str
    verdict: str
    ok: bool
    codes: list[str]
    routed_elsewhere: bool


def rows(plan: Plan) -> list[Row]:
    out = []
    for job in plan.to_dict()["jobs"]:
        out.append(
            Row(
                job["project"],
                job["subject"],
                job["session"],
                job["verdict"],
                job["ok"],
                sorted(i["code"] for i in job["issues"] if i["severity"] == "error"),
                job["routed_elsewhere"],
            )
        )
    return out


async def cli_path(
    projects: dict[str, FakeProject],
    sessions: list[Session],
    rules: LabelRules,
    target: str | None,
    journal_dir: Path,
) -> Plan:
    uploads = upload_session(FakePort(projects), journal_dir)
    requests = await uploads.requests_for([from_dicom(s) for s in sessions], rules, project=target)
    return await uploads.plan(requests)


async def tui_path(
    projects: dict[str, FakeProject],
    sessions: list[Session],
    rules: LabelRules,
    chosen: str,
    follow: bool,
    journal_dir: Path,
) -> tuple[Workbench, dict[str, tuple[RowState, str]], Plan]:
    uploads = upload_session(FakePort(projects), journal_dir)
    wb = Workbench(rules)
    for session in sessions:  # as the scan's batches arrive
        wb.upsert(session)
    # The main screen's _load_project: summary, what the project holds, relabel.
    summary = await uploads.project(chosen)
    await uploads.load_existing(wb, chosen)
    wb.project = summary
    items = list(wb.items.values())
    wb.relabel(items, only_unedited=True)
    # The routing key on the rows the DICOM routes elsewhere.
    routed = [i for i in items if wb.routed_elsewhere(i)]
    await uploads.choose_routing(wb, routed, follow=follow)
    states = await uploads.classify(wb, items)
    plan = await uploads.plan_items(wb, items)
    return wb, states, plan


def expected_state(cli: Plan, index: int) -> RowState | None:
    """The state column the TUI should show for the CLI's job ``index`` (None: any).

    The state column plans each session on its own, so the two batch rules apply
    differently there, on purpose: a project's "no bulk upload" is checked when a batch
    is queued (``plan_items``, compared separately), and a label two rows target marks
    *both* rows as conflicts (the user must change one), where a batch refuses only the
    second. A row the batch refuses for such a clash must still not look queueable.
    """
    job = cli.jobs[index]
    codes = {i.code for i in job.issues if i.severity == "error"}
    if "bulk-upload" in codes:
        return None
    if "label-in-batch" in codes:
        return RowState.CONFLICT
    state = RowState.of_target(classify(job).kind)
    r = job.request
    rivals = [
        o
        for n, o in enumerate(cli.jobs)
        if n != index
        and o.request.label
        and (o.request.project, o.request.label) == (r.project, r.label)
    ]
    if rivals and state.queueable:
        return RowState.CONFLICT
    return state


def compare(
    sessions: list[Session],
    cli: Plan,
    wb: Workbench,
    states: dict[str, tuple[RowState, str]],
    tui_plan: Plan,
    *,
    routed_mode: bool,
) -> None:
    cli_rows, tui_rows = rows(cli), rows(tui_plan)
    for n, session in enumerate(sessions):
        item = wb.items[session.study_instance_uid]
        c, t = cli_rows[n], tui_rows[n]
        where = f"session {n} ({session.patient_id!r}, routing {session.routing})"
        if routed_mode and not item.routed_project:
            # --routed refuses a session without routing and says so; the TUI has no
            # "routed only" mode: such a row simply stays in the chosen project.
            assert not c.ok and c.codes == ["no-routing"], where
            assert (c.project, c.subject, c.label) == ("", "", ""), where
            assert wb.target_project(item) == HOME, where
            continue
        shown = (wb.target_project(item), item.subject, item.label)
        assert shown == (c.project, c.subject, c.label), where
        assert (t.project, t.subject, t.label) == shown, where
        assert (t.verdict, t.ok, t.codes) == (c.verdict, c.ok, c.codes), where
        if not routed_mode:
            assert bool(wb.routed_elsewhere(item)) == c.routed_elsewhere, where
        state, detail = states[item.uid]
        expected = expected_state(cli, n)
        if expected is RowState.CONFLICT and "label-in-batch" in c.codes:
            assert state.blocking, f"{where}: TUI {state} ({detail}) for a label clash"
        elif expected is not None:
            assert state is expected, f"{where}: TUI {state} ({detail}), CLI {expected}"
        assert detail, where


async def both(
    projects: dict[str, FakeProject],
    sessions: list[Session],
    rules: LabelRules,
    mode: str,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if mode == "routed":
            cli = await cli_path(projects, sessions, rules, None, root / "cli")
            wb, states, plan = await tui_path(projects, sessions, rules, HOME, True, root / "tui")
        else:
            cli = await cli_path(projects, sessions, rules, mode, root / "cli")
            wb, states, plan = await tui_path(projects, sessions, rules, mode, False, root / "tui")
        compare(sessions, cli, wb, states, plan, routed_mode=mode == "routed")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    projects=servers(),
    sessions=local_sessions(),
    subject_template=subject_templates,
    session_template=session_templates,
    explicit=st.booleans(),
    mode=st.sampled_from([*PROJECTS, "routed"]),
)
def test_tui_and_cli_give_every_session_the_same_target_and_verdict(
    projects: dict[str, FakeProject],
    sessions: list[Session],
    subject_template: str,
    session_template: str,
    explicit: bool,
    mode: str,
) -> None:
    rules = LabelRules(subject_template, session_template, explicit)
    asyncio.run(both(projects, sessions, rules, mode))
