"""Main screen: scan → sessions → scans → labels with live validation → queue."""

from __future__ import annotations

from tests.ui.fakes import (
    FakeProject,
    ManualSleep,
    checks_done,
    make_app,
    make_session,
    scanned,
    until,
    with_project,
)
from tests.ui.screen_text import screen_text
from xnat_tui.transfer.server import ProjectInfo, RemoteSession
from xnat_tui.ui.screens.upload_confirm import UploadConfirmScreen
from xnat_tui.ui.widgets.labels import LabelsPane
from xnat_tui.workflow.workbench import RowState


def two_sessions():
    return [make_session("P001"), make_session("P002", modality="CT")]


async def test_scan_fills_sessions_and_scans(tmp_path):
    app, _, _ = make_app(tmp_path, sessions=two_sessions())
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await scanned(pilot, 2)
        assert screen.sessions.table.row_count == 2
        assert "Scan done" in str(screen.query_one("#scan-status").render())
        # The highlighted (first) session's series are listed, all selected.
        assert screen.scans.table.row_count == 2
        assert screen.scans.border_subtitle == "2/2 series"
        text = screen_text(app)
        assert "localizer" in text and "Test^P001" in text
        # Labels come from the default patterns.
        item = app.workbench.items[screen.sessions.current_uid]
        assert (item.subject, item.label) == ("P001", "P001_MR_1")


async def test_space_and_a_select_sessions(tmp_path):
    app, _, _ = make_app(tmp_path, sessions=two_sessions())
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await scanned(pilot, 2)
        await pilot.press("2", "space")
        assert [i.patient_id for i in (x.session for x in app.workbench.selected())] == ["P001"]
        assert screen.sessions.table.get_cell_at((0, 0)) == "☑"
        await pilot.press("a")
        assert len(app.workbench.selected()) == 2
        await pilot.press("a")
        assert app.workbench.selected() == []
        assert screen.sessions.border_subtitle == "0/2 selected"


async def test_series_can_be_unchecked(tmp_path):
    app, _, _ = make_app(tmp_path, sessions=two_sessions())
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await scanned(pilot, 2)
        uid = screen.sessions.current_uid
        await pilot.press("3", "space")
        item = app.workbench.items[uid]
        assert item.excluded == {f"{uid}.1"}
        assert [s.series_description for s in item.included_scans()] == ["T1"]
        assert screen.scans.border_subtitle == "1/2 series"
        await pilot.press("a")  # none -> all? excluded non-empty -> clear
        assert item.excluded == set()


async def test_project_settings_and_filtered_series(tmp_path):
    app, _, _ = make_app(tmp_path, sessions=two_sessions())
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await scanned(pilot, 2)
        await with_project(pilot, screen, "STUDY_B")
        settings = str(screen.query_one("#project-settings").render())
        assert "→ archive" in settings and "blacklist" in settings and "anon script yes" in settings
        uid = screen.sessions.current_uid
        # The localizer is dropped by STUDY_B's import filter: greyed, with the reason.
        note = screen.scans.table.get_cell(f"{uid}.1", "note")
        assert "filtered" in str(note)
        assert screen.scans.table.get_cell(f"{uid}.1", "sel").plain == "☐"
        await pilot.press("3", "space")
        assert f"{uid}.1" not in app.workbench.items[uid].excluded  # cannot be re-included
        assert screen.scans.border_subtitle == "1/2 series"


async def test_invalid_label_is_flagged_while_typing(tmp_path):
    app, _, _ = make_app(tmp_path, sessions=two_sessions())
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await scanned(pilot, 2)
        await with_project(pilot, screen, "PILOT")
        session_input = screen.query_one("#session")
        session_input.focus()
        await pilot.press("end", "space", "x")
        assert session_input.has_class("-invalid")
        status = str(screen.query_one("#label-status").render())
        assert "invalid character space" in status
        item = app.workbench.items[screen.sessions.current_uid]
        assert item.label == "P001_MR_1 x" and item.label_edited
        await until(pilot, lambda: item.state == RowState.INVALID)
        await pilot.press("backspace", "backspace")
        assert session_input.has_class("-valid")
        await until(pilot, lambda: item.state == RowState.NEW)


async def test_remote_checks_classify_merge_conflict_and_not_permitted(tmp_path):
    sessions = two_sessions()
    port_projects = {
        "PILOT": FakeProject(
            ProjectInfo("PILOT"),
            subjects={"P001", "P002"},
            sessions=[
                RemoteSession(
                    "P001_MR_1", "P001", sessions[0].study_instance_uid, "archive", "/data/x"
                ),
                RemoteSession("P002_CT_1", "P002", "1.2.3.other", "archive", "/data/y"),
            ],
        ),
        "STUDY_A": FakeProject(ProjectInfo("STUDY_A", allow_create_subject=False), subjects={"S9"}),
    }
    from tests.ui.fakes import FakePort

    app, _, _ = make_app(tmp_path, sessions=sessions, port=FakePort(port_projects))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await scanned(pilot, 2)
        await with_project(pilot, screen, "PILOT")
        first, second = app.workbench.items.values()
        # The study already there keeps its label; {n} skips the label another study holds.
        assert first.label == "P001_MR_1"
        assert first.state == RowState.MERGE and "merge" in first.detail
        assert second.label == "P002_CT_2" and second.state == RowState.NEW
        # Typing the taken label back is a conflict, said as such.
        await pilot.press("2", "down")
        await until(pilot, lambda: screen.sessions.current_uid == second.uid)
        screen.query_one("#session").focus()
        await pilot.press("end", "backspace", "1")
        await until(pilot, lambda: second.state == RowState.CONFLICT)
        assert "another StudyInstanceUID" in second.detail
        await with_project(pilot, screen, "STUDY_A")
        assert first.state == RowState.NOT_PERMITTED
        assert "does not allow" in first.detail or "subject" in first.detail
        # Upload is impossible while nothing is queueable.
        assert screen.check_action("upload", ()) is None


async def test_typing_never_waits_for_the_server(tmp_path, monkeypatch):
    """The remote check is debounced: a burst of keys leads to one planner run."""
    quiet = ManualSleep()  # the debounce wait ends when the test says so, not by the clock
    app, port, _ = make_app(tmp_path, sessions=two_sessions(), sleep=quiet)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await scanned(pilot, 2)
        quiet.release_all()
        await with_project(pilot, screen, "PILOT", release=quiet)
        uploads = app.uploads
        assert uploads is not None
        runs = []
        original = uploads.classify

        async def counting(workbench, items):
            runs.append([i.label for i in items])
            return await original(workbench, items)

        monkeypatch.setattr(uploads, "classify", counting)
        screen.query_one("#session").focus()
        await pilot.press("end", *"_abc")
        current = app.workbench.items[screen.sessions.current_uid]
        # Every key press restarted the wait; nothing was asked of the server meanwhile.
        assert runs == [] and current.state == RowState.CHECKING
        await until(pilot, lambda: quiet.waiting == 1)
        quiet.release_all()
        await until(pilot, lambda: current.state == RowState.NEW)
        assert runs == [["P001_MR_1_abc"]]


async def test_subject_type_ahead_suggests_existing_subjects(tmp_path):
    app, _, _ = make_app(tmp_path, sessions=two_sessions())
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await scanned(pilot, 2)
        await with_project(pilot, screen, "PILOT")
        subject = screen.query_one("#subject")
        subject.focus()
        subject.value = ""
        await pilot.press("s", "u")
        await until(pilot, lambda: subject._suggestion == "SUBJ01")
        await pilot.press("right")
        assert subject.value == "SUBJ01"
        item = app.workbench.items[screen.sessions.current_uid]
        assert item.subject == "SUBJ01"


async def test_upload_requires_project_then_confirms_and_queues(tmp_path):
    app, _, engine = make_app(tmp_path, sessions=two_sessions())
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await scanned(pilot, 2)
        assert screen.check_action("upload", ()) is None  # no project yet
        await with_project(pilot, screen, "PILOT")
        assert screen.check_action("upload", ()) is True
        await pilot.press("2", "a", "u")
        await until(pilot, lambda: isinstance(app.screen, UploadConfirmScreen))
        summary = str(app.screen.query_one("#plan-summary").render())
        assert "2 session(s)" in summary and "New subjects: P001, P002" in summary
        await pilot.press("y")
        await until(pilot, lambda: len(engine.submitted) == 2)
        await until(
            pilot, lambda: all(i.state == RowState.QUEUED for i in app.workbench.items.values())
        )
        assert {j.target for j in engine.submitted} == {
            "PILOT/P001/P001_MR_1",
            "PILOT/P002/P002_CT_1",
        }
        # Queued sessions are locked: no more selection or label edits.
        assert screen.query_one("#session").disabled
        assert app.workbench.selected() == []


async def test_confirmation_can_be_declined(tmp_path):
    app, _, engine = make_app(tmp_path, sessions=two_sessions())
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await scanned(pilot, 2)
        await with_project(pilot, screen, "PILOT")
        await pilot.press("2", "u")
        await until(pilot, lambda: isinstance(app.screen, UploadConfirmScreen))
        await pilot.press("n")
        await until(pilot, lambda: app.screen is screen)
        assert engine.submitted == []


async def test_panes_are_titled_and_fit_80x24(tmp_path):
    app, _, _ = make_app(tmp_path, sessions=two_sessions())
    async with app.run_test(size=(80, 24)) as pilot:
        await scanned(pilot, 2)
        text = screen_text(app)
        for title in ("Folders", "Sessions", "Scans", "Labels", "Transfers"):
            assert f"─ {title} ─" in text, title
        # Target and state of a session are visible without scrolling.
        assert "P001/P001_MR_1" in text


async def test_focus_keys_and_transfers_expand(tmp_path):
    app, _, _ = make_app(tmp_path, sessions=two_sessions())
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await scanned(pilot, 2)
        for key, wid in (
            ("2", "sessions-table"),
            ("3", "scans-table"),
            ("4", "project"),
            ("5", "transfers-table"),
            ("1", "folder-tree"),
        ):
            await pilot.press(key)
            assert app.focused is not None and app.focused.id == wid
        await pilot.press("2", "e")
        assert app.focused is not None and app.focused.id == "session"
        await pilot.press("escape")
        assert app.focused is not None and app.focused.id == "sessions-table"
        await pilot.press("t")
        assert screen.has_class("-transfers-expanded")
        assert (
            not screen.query_one("#upper").display or screen.query_one("#upper").region.height == 0
        )
        await pilot.press("2")
        assert not screen.has_class("-transfers-expanded")


async def test_labels_pane_messages(tmp_path):
    seen: list[object] = []
    app, _, _ = make_app(tmp_path, sessions=two_sessions())
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        screen = await scanned(pilot, 2)
        await with_project(pilot, screen, "PILOT")
        assert any(isinstance(m, LabelsPane.ProjectChosen) for m in seen) is False  # chosen in code
        screen.query_one("#subject").focus()
        await pilot.press("end", "X")
        await pilot.pause(0.05)
        edited = [m for m in seen if isinstance(m, LabelsPane.Edited)]
        assert edited and edited[-1].subject == "P001X"
        await pilot.press("ctrl+r")
        await until(
            pilot, lambda: app.workbench.items[screen.sessions.current_uid].subject == "P001"
        )


async def test_two_sessions_cannot_target_the_same_label(tmp_path):
    app, _, _ = make_app(tmp_path, sessions=two_sessions())
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await scanned(pilot, 2)
        await with_project(pilot, screen, "PILOT")
        first, second = app.workbench.items.values()
        await pilot.press("2", "down", "e")
        await pilot.press("ctrl+a", "ctrl+k", *first.label)
        await until(pilot, lambda: second.state == RowState.CONFLICT)
        assert "also the target of Test^P001" in second.detail


async def test_label_status_is_redrawn_only_when_it_changes(tmp_path, monkeypatch):
    # Every redraw of the status line re-lays out the screen; remote checks repeat
    # the same verdict many times while a scan runs.
    from textual.widgets import Static

    app, _, _ = make_app(tmp_path, sessions=two_sessions())
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await scanned(pilot, 2)
        await with_project(pilot, screen, "PILOT")
        item = app.workbench.items[screen.sessions.current_uid]
        await until(pilot, lambda: item.state == RowState.NEW)
        await checks_done(pilot)  # no check result may land while we count
        # The verdict on screen now (the check's own redraw may still be queued under
        # load): what the repeated calls below must not draw again.
        screen.labels.show_status(item)
        await pilot.pause()
        status = screen.query_one("#label-status", Static)
        writes: list[str] = []
        original = Static.update

        def counting_update(self, content="", *args, **kwargs):  # type: ignore[no-untyped-def]
            if self is status:
                writes.append(str(content))
            return original(self, content, *args, **kwargs)

        monkeypatch.setattr(Static, "update", counting_update)
        for _ in range(5):
            screen.labels.show_status(item)
        assert writes == []
        item.state, item.detail = RowState.MERGE, "adds series to an existing session"
        screen.labels.show_status(item)
        screen.labels.show_status(item)
        assert len(writes) == 1 and "merge" in writes[0]
        assert status.has_class("-warning")
