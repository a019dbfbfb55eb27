"""Transfers panel: live rows from engine events, job keys, notifications, quit guard."""

from __future__ import annotations

from textual.message import Message

from tests.ui.fakes import (
    FakeEngine,
    make_app,
    make_session,
    scanned,
    to_main,
    until,
    with_project,
)
from tests.ui.screen_text import notifications
from xnat_tui.transfer.types import JobState
from xnat_tui.ui.screens.confirm import ConfirmScreen
from xnat_tui.ui.screens.receipt import ReceiptScreen
from xnat_tui.ui.screens.upload_confirm import UploadConfirmScreen
from xnat_tui.workflow.workbench import RowState


async def queue_one(pilot, app, engine):
    screen = await scanned(pilot, 1)
    await with_project(pilot, screen, "PILOT")
    await pilot.press("2", "u")
    await until(pilot, lambda: isinstance(app.screen, UploadConfirmScreen))
    await pilot.press("y")
    await until(pilot, lambda: len(engine.submitted) == 1 and "job1" in app.transfers.jobs)
    return screen


async def test_progress_reaches_the_panel_and_sessions_table(tmp_path):
    app, _, engine = make_app(tmp_path, sessions=[make_session("P001")])
    seen: list[Message] = []
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        screen = await queue_one(pilot, app, engine)
        engine.set_state("job1", JobState.SENDING)
        engine.progress("job1", 2500, 10000)
        pane = screen.query_one("#transfers")
        await until(
            pilot,
            lambda: (
                pane.table.row_count == 1 and "25%" in str(pane.table.get_cell("job1", "progress"))
            ),
        )
        # Decimal units, as on the command line: 2,500 and 10,000 bytes.
        assert str(pane.table.get_cell("job1", "bytes")) == "2.5 KB/10.0 KB"
        assert "1 active" in pane.border_subtitle
        item = next(iter(app.workbench.items.values()))
        await until(pilot, lambda: item.state == RowState.UPLOADING)
        # Many ticks between two redraws cost one redraw (the panel reads the model).
        before = app.transfers.version
        for sent in range(3000, 9000, 500):
            engine.progress("job1", sent, 10000)
        await until(pilot, lambda: "85%" in str(pane.table.get_cell("job1", "progress")))
        assert app.transfers.version > before
        engine.set_state("job1", JobState.VERIFIED, "verified by size in the prearchive: /x")
        await until(pilot, lambda: item.state == RowState.VERIFIED)
        assert "verified" in str(screen.sessions.table.get_cell(item.uid, "state"))
        # The last tick said 85%; the finished job counts in full all the same.
        bar = pane.query_one("#transfers-overall")
        await until(pilot, lambda: bar.percentage == 1.0)
        # Said as the engine did it: by size (the prearchive lists no digests), not "verified".
        assert any(
            "uploaded, verified by size in the prearchive" in n.message for n in notifications(seen)
        )


async def test_job_keys_call_the_engine(tmp_path):
    app, _, engine = make_app(tmp_path, sessions=[make_session("P001")])
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await queue_one(pilot, app, engine)
        pane = screen.query_one("#transfers")
        await until(pilot, lambda: pane.table.row_count == 1)
        await pilot.press("5", "space")
        await until(pilot, lambda: ("pause", "job1") in engine.calls)
        await until(pilot, lambda: app.transfers.jobs["job1"].state is JobState.PAUSED)
        await pilot.press("space")
        await until(pilot, lambda: ("resume", "job1") in engine.calls)
        await pilot.press("P")
        await until(pilot, lambda: ("pause", None) in engine.calls)
        await until(pilot, lambda: app.transfers.jobs["job1"].state is JobState.PAUSED)
        await pilot.press("P")  # everything paused -> resume all
        await until(pilot, lambda: ("resume", None) in engine.calls)
        # Cancel asks first.
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await pilot.pause(0.05)
        assert ("cancel", "job1") not in engine.calls
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: ("cancel", "job1") in engine.calls)
        await until(pilot, lambda: app.transfers.jobs["job1"].state is JobState.CANCELLED)
        assert pane.check_action("retry", ()) is True
        assert pane.check_action("cancel", ()) is None  # finished: nothing to cancel
        await pilot.press("r")
        await until(pilot, lambda: ("retry", "job1") in engine.calls)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ReceiptScreen))
        text = app.screen.query_one("#receipt-text").text
        assert "job1" in text


async def test_failure_is_notified_and_logged(tmp_path):
    app, _, engine = make_app(tmp_path, sessions=[make_session("P001")])
    seen: list[Message] = []
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        await queue_one(pilot, app, engine)
        engine.set_state("job1", JobState.FAILED, "server said no (HTTP 500)")
        await until(pilot, lambda: any(n.severity == "error" for n in notifications(seen)))
        assert any("server said no" in line.message for line in app.log_buffer.lines)
        item = next(iter(app.workbench.items.values()))
        await until(pilot, lambda: item.state == RowState.FAILED)


async def test_quit_asks_while_transfers_are_active(tmp_path):
    app, _, engine = make_app(tmp_path, sessions=[make_session("P001")])
    async with app.run_test(size=(120, 40)) as pilot:
        await queue_one(pilot, app, engine)
        await pilot.press("ctrl+q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "resume" in str(app.screen.query_one("#confirm-body").render())
        await pilot.press("n")
        await pilot.pause(0.05)
        assert app.is_running and ("close", None) not in engine.calls
        await pilot.press("ctrl+q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: not app.is_running)
    assert ("close", None) in engine.calls
    assert app.return_code == 0


async def test_quit_does_not_count_verified_jobs(tmp_path):
    """Issue 14: the quit dialog counted a verified job as unfinished when a progress
    tick sampled before the end (the first-render snapshot, a coalesced tick) came last."""
    app, _, engine = make_app(tmp_path, sessions=[make_session("P001")])
    async with app.run_test(size=(120, 40)) as pilot:
        await queue_one(pilot, app, engine)
        engine.set_state("job1", JobState.SENDING)
        engine.progress("job1", 2500, 10000)
        engine.set_state("job1", JobState.VERIFIED)
        await until(pilot, lambda: app.transfers.jobs["job1"].state is JobState.VERIFIED)
        engine.progress("job1", 9000, 10000, state=JobState.VERIFYING)  # stale
        await until(pilot, lambda: app.transfers.overall.bytes_sent == 9000)  # tick applied
        assert app.transfers.jobs["job1"].state is JobState.VERIFIED
        assert app.transfers.unfinished == []
        await pilot.press("ctrl+q")
        await until(pilot, lambda: not app.is_running or isinstance(app.screen, ConfirmScreen))
        assert not isinstance(app.screen, ConfirmScreen)
    assert ("close", None) in engine.calls


async def test_quit_without_transfers_is_immediate(tmp_path):
    app, _, engine = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.uploads is not None and app.uploads.engine is not None)
        await pilot.press("ctrl+q")
        await until(pilot, lambda: not app.is_running)
    assert ("close", None) in engine.calls


async def test_unfinished_transfers_resume_on_start(tmp_path):
    app, _, engine = make_app(tmp_path)
    engine.resumable = [("old1", "PILOT/S1/S1_MR_1", 4000, 10000)]
    seen: list[Message] = []
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        screen = await to_main(pilot)
        pane = screen.query_one("#transfers")
        await until(pilot, lambda: pane.table.row_count == 1)
        assert "40%" in str(pane.table.get_cell("old1", "progress"))
        assert any("Resuming 1 unfinished" in n.message for n in notifications(seen))
        # Still unfinished: quitting asks again.
        await pilot.press("ctrl+q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))


def test_a_download_is_receiving_not_sending_in_the_panel():
    from xnat_tui.transfer.kinds import JobKind
    from xnat_tui.ui.transfer_model import JobRow
    from xnat_tui.ui.widgets.transfers import job_cells

    down = job_cells(JobRow("j", "P/S/E", JobState.SENDING, kind=JobKind.DOWNLOAD), {})
    up = job_cells(JobRow("j", "P/S/E", JobState.SENDING), {})
    assert (str(down["state"]), str(up["state"])) == ("receiving", "sending")


async def test_cancelling_a_download_asks_about_the_download(tmp_path):
    from xnat_tui.transfer.events import JobStateChanged
    from xnat_tui.transfer.kinds import JobKind

    app, _, _ = make_app(tmp_path, sessions=[make_session("P001")])
    async with app.run_test(size=(120, 40)) as pilot:
        await to_main(pilot)
        app.transfers.apply(
            JobStateChanged("d1", "P/S/E1", JobState.SENDING, None, kind=JobKind.DOWNLOAD)
        )
        app.job_action("cancel", "d1")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.pause()
        body = app.screen.body
        assert body.startswith("Cancel the download of P/S/E1?") and ".part" in body
        assert "upload" not in body and "prearchive" not in body
        await pilot.press("n")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen))


async def test_a_new_job_below_the_panels_fold_is_scrolled_into_sight(tmp_path):
    from xnat_tui.transfer.events import JobStateChanged
    from xnat_tui.transfer.kinds import JobKind

    app, _, _ = make_app(tmp_path, sessions=[make_session("P001")])
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await to_main(pilot)
        pane = screen.query_one("#transfers")
        for i in range(30):
            app.transfers.apply(
                JobStateChanged(f"d{i}", f"P/S/E{i}", JobState.QUEUED, None, kind=JobKind.DOWNLOAD)
            )
        await until(pilot, lambda: pane.table.row_count == 30)
        table = pane.table
        await until(pilot, lambda: table.scroll_y > 0)
        last = table.get_row_index("d29")
        assert table.scroll_y <= last < table.scroll_y + table.scrollable_content_region.height
        assert table.cursor_row == 0


async def test_quit_asks_while_a_browser_action_is_still_being_prepared(tmp_path):
    import asyncio

    app, _, _ = make_app(tmp_path, sessions=[make_session("P001")])
    never = asyncio.Event()
    async with app.run_test(size=(120, 40)) as pilot:
        await to_main(pilot)
        app.run_worker(never.wait(), group="browser-action")  # listing files, say
        await pilot.press("ctrl+q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.pause()
        assert "Still being prepared from the browser" in app.screen.body
        await pilot.press("n")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert app.is_running


async def test_a_paused_download_found_at_start_is_said_to_stay_paused(tmp_path, monkeypatch):
    """Seen in tmux: 'Resuming 1 unfinished transfer(s)' while the download stayed paused."""
    from dataclasses import replace

    from tests.fixtures.fake_server import SERVER_URL
    from tests.unit.transfer.test_journal import new_job
    from xnat_tui.transfer.journal import Journal
    from xnat_tui.transfer.kinds import JobKind
    from xnat_tui.workflow import download as _registers_its_builder  # noqa: F401
    from xnat_tui.workflow import jobs as workflow_jobs

    journal = Journal(tmp_path / "journal.sqlite3")
    job = replace(new_job(tmp_path), server=SERVER_URL, kind=JobKind.DOWNLOAD)
    [jid] = journal.create_jobs([job])
    journal.set_state(jid, JobState.PAUSED)
    downloads = FakeEngine()

    async def build(connection, journal, config):
        downloads.labels[jid] = "PILOT/S1/S1_MR_1"
        downloads.states[jid] = JobState.PAUSED  # adopted, paused: not resumed
        return downloads

    monkeypatch.setitem(workflow_jobs._BUILDERS, JobKind.DOWNLOAD, build)
    app, _, _ = make_app(tmp_path)
    seen: list[Message] = []
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        await to_main(pilot)
        await until(pilot, lambda: bool(notifications(seen)))
        toasts = [n.message for n in notifications(seen)]
        assert any("1 paused transfer(s) stay paused" in t for t in toasts), toasts
        assert not any("Resuming" in t for t in toasts), toasts


async def test_the_highlighted_jobs_message_is_readable_on_a_narrow_terminal(tmp_path):
    """At 100 columns the Message column is beyond the table's edge: the line under the
    table gives the highlighted job's whole label and why it failed."""
    from textual.widgets import Static

    app, _, engine = make_app(tmp_path, sessions=[make_session("P001")])
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await queue_one(pilot, app, engine)
        detail = screen.query_one("#transfers-detail", Static)
        engine.set_state("job1", JobState.FAILED, "the server refused [b]it[/b]: 403")
        label = engine.labels["job1"]
        want = f"{label}: the server refused [b]it[/b]: 403"
        await until(pilot, lambda: detail.display and str(detail.render()) == want)
