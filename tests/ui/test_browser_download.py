"""Pilot: browse the sandbox, select a session and some scans, Download…, and the files
arrive verified while the Transfers model shows the jobs as downloads."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from textual.app import App
from textual.message import Message
from textual.widgets import Input, Static

from tests.ui.fakes import until
from tests.ui.screen_text import notifications
from xnat_tui.config import Config
from xnat_tui.sandbox.server import SandboxServer
from xnat_tui.transfer.journal import Journal
from xnat_tui.transfer.kinds import JobKind
from xnat_tui.transfer.types import JobState
from xnat_tui.ui.screens.browser import BrowserScreen
from xnat_tui.ui.transfer_model import TransferModel
from xnat_tui.ui.widgets.browser_download import DownloadChoice, DownloadDialog
from xnat_tui.workflow.browse import ClientBrowseSource, SelectedSession, Selection
from xnat_tui.workflow.jobs import JobRouter
from xnat_tui.workflow.login import connection_for
from xnat_tui.xnat.client import XnatClient
from xnat_tui.xnat.credentials import Credentials


class Uploads:
    def __init__(self, connection: Any) -> None:
        self.connection = connection


class DownloadApp(App[None]):
    """What start_download needs of the real App: client, uploads.connection, jobs, config."""

    def __init__(self, client: XnatClient, journal: Journal) -> None:
        super().__init__()
        self.client = client
        self.uploads = Uploads(connection_for(client, url=client.server, owned=False))
        self.jobs = JobRouter(journal)
        self.config = Config()
        self.transfers = TransferModel()

    async def on_mount(self) -> None:
        self._events = self.jobs.subscribe()
        self._pump = asyncio.create_task(self._consume())
        await self.push_screen(BrowserScreen(ClientBrowseSource(self.client)))

    async def _consume(self) -> None:
        async for event in self._events:
            self.transfers.apply(event)


def keys_of(screen: BrowserScreen) -> list[str]:
    t = screen.table
    return [str(t.coordinate_to_cell_key((i, 0)).row_key.value) for i in range(t.row_count)]


async def goto(pilot: Any, screen: BrowserScreen, key: str) -> None:
    await until(pilot, lambda: key in keys_of(screen))
    screen.table.move_cursor(row=keys_of(screen).index(key))
    await pilot.pause()


async def test_select_and_download_from_the_browser(sandbox: SandboxServer, tmp_path: Path) -> None:
    out = tmp_path / "downloads"
    async with XnatClient(Credentials(sandbox.url, "alice", "alice")) as client:
        app = DownloadApp(client, Journal(tmp_path / "journal.sqlite3"))
        seen: list[Message] = []
        async with app.run_test(size=(150, 45), message_hook=seen.append) as pilot:
            screen = app.screen
            assert isinstance(screen, BrowserScreen)
            await goto(pilot, screen, "p:PILOT")
            await pilot.press("enter")
            await goto(pilot, screen, next(k for k in keys_of(screen) if k.startswith("s:PILOT")))
            await pilot.press("enter")
            session_key = next(k for k in keys_of(screen) if k.startswith("e:"))
            await goto(pilot, screen, session_key)
            await pilot.press("enter")
            scan_key = f"c:{session_key[2:]}:2"
            await goto(pilot, screen, scan_key)
            await pilot.press("space")  # only scan 2
            await pilot.press("d")
            await until(pilot, lambda: isinstance(app.screen, DownloadDialog))
            app.screen.query_one("#download-out", Input).value = str(out)
            await pilot.press("ctrl+s")
            await until(
                pilot,
                lambda: any(r.state is JobState.VERIFIED for r in app.transfers.jobs.values()),
            )
            rows = list(app.transfers.jobs.values())
            assert [r.kind for r in rows] == [JobKind.DOWNLOAD]
            # Between the dialog and the jobs, the user is told the files are being listed.
            toasts = [n.message for n in notifications(seen)]
            assert toasts[0] == "Listing the files of 1 session(s) to download…"
            assert toasts[1].startswith("Downloading 1 session(s), 4 file(s)")
            await app.jobs.close()
        files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
        assert len(files) == 4
        assert all(
            f.startswith("PIL_900_MR1/scans/2-T1_MPRAGE_sag/resources/DICOM/files/") for f in files
        )


class DialogApp(App[None]):
    def __init__(self, out: Path) -> None:
        super().__init__()
        self.out = out
        self.result: list[object] = []

    def on_mount(self) -> None:
        selection = Selection("P", (SelectedSession("P", "E1", "MR1"),))
        self.push_screen(DownloadDialog(selection, self.out, "xnat", "DICOM"), self.result.append)

    def action_help(self) -> None:  # as XnatTuiApp's
        from xnat_tui.ui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))


async def test_the_dialog_refuses_a_file_as_the_folder_and_stays_open(tmp_path: Path) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    app = DialogApp(a_file)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, DownloadDialog))
        await pilot.press("ctrl+s")
        error = app.screen.query_one("#download-error", Static)
        await until(pilot, lambda: "is a file, not a folder" in str(error.render()))
        assert isinstance(app.screen, DownloadDialog) and app.result == []
        app.screen.query_one("#download-out", Input).value = str(tmp_path / "new")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: bool(app.result))
        choice = app.result[0]
        assert isinstance(choice, DownloadChoice) and choice.out == tmp_path / "new"


async def test_help_opens_from_the_dialog_even_while_typing_and_lists_its_keys(
    tmp_path: Path,
) -> None:
    """A modal screen hides the app's keys: ? and F1 are the dialog's too."""
    from xnat_tui.ui.screens.help import HelpScreen

    app = DialogApp(tmp_path / "out")
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, DownloadDialog))
        app.screen.query_one("#download-out", Input).focus()
        await pilot.press("f1")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert isinstance(app.screen, HelpScreen)
        listed = {row.binding_id for row in app.screen.rows}
        assert {"browser.download.submit", "browser.download.cancel"} <= listed
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, DownloadDialog))
        app.screen.query_one("#download-go").focus()
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
