"""The browser's "Download…": a dialog for folder, layout and resource, then the jobs go
to the download engine and show in the Transfers panel (↓ download) like uploads."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, Select, Static

from xnat_tui.transfer.download import DownloadEngine
from xnat_tui.transfer.kinds import JobKind
from xnat_tui.ui.screens.dialog import Dialog
from xnat_tui.ui.widgets.format import plain
from xnat_tui.units import human_bytes
from xnat_tui.workflow import download as dl
from xnat_tui.workflow.browse import Selection

if TYPE_CHECKING:
    from xnat_tui.ui.app import XnatTuiApp


@dataclass(frozen=True)
class DownloadChoice:
    out: Path
    layout: str
    resource: str


def _checked_folder(text: str) -> tuple[Path, str | None]:
    folder = Path(text).expanduser()
    return folder, dl.out_problem(folder)


class DownloadDialog(Dialog[DownloadChoice | None]):
    HELP_GROUP = "Download dialog"
    DEFAULT_CSS = """
    DownloadDialog { align: center middle; }
    DownloadDialog > #download-box {
        width: 84; max-width: 100%; height: auto; max-height: 90%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    DownloadDialog #download-buttons { height: auto; align-horizontal: right; }
    DownloadDialog #download-error { color: $error; height: auto; }
    """
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="browser.download.cancel"),
        Binding("ctrl+s", "submit", "Download", id="browser.download.submit"),
    ]

    def __init__(self, selection: Selection, out: Path, layout: str, resource: str) -> None:
        super().__init__()
        self.selection = selection
        self.default = DownloadChoice(out, layout, resource)

    def compose(self) -> ComposeResult:
        with Vertical(id="download-box") as box:
            box.border_title = "Download"
            yield Static(plain(self.selection.describe()))
            yield Label("Folder")
            yield Input(str(self.default.out), id="download-out")
            yield Label("Layout")
            yield Select(
                [(name, name) for name in dl.LAYOUTS],
                value=self.default.layout,
                allow_blank=False,
                id="download-layout",
                compact=True,
            )
            yield Label("Resource (label, comma list, or ALL)")
            yield Input(self.default.resource, id="download-resource")
            yield Static("", id="download-error")
            with Horizontal(id="download-buttons"):
                yield Button("Cancel (esc)", id="download-cancel")
                yield Button("Download (ctrl+s)", variant="primary", id="download-go")

    async def choice(self) -> DownloadChoice | None:
        out = self.query_one("#download-out", Input).value.strip()
        resource = self.query_one("#download-resource", Input).value.strip() or "DICOM"
        layout = self.query_one("#download-layout", Select).value
        error = self.query_one("#download-error", Static)
        if not out:
            error.update("Give a folder to save into.")
            return None
        # In a thread: a path on a stalled network file system must not hold the UI.
        folder, problem = await asyncio.to_thread(_checked_folder, out)
        if problem is not None:
            error.update(plain(problem))
            return None
        return DownloadChoice(folder, str(layout), resource)

    async def action_submit(self) -> None:
        picked = await self.choice()
        if picked is not None and self.is_current:  # not cancelled while it checked
            self.dismiss(picked)

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#download-go")
    async def _go(self) -> None:
        await self.action_submit()

    @on(Button.Pressed, "#download-cancel")
    def _cancel(self) -> None:
        self.action_cancel()

    @on(Input.Submitted)
    async def _enter(self) -> None:
        await self.action_submit()


async def start_download(app: XnatTuiApp, selection: Selection) -> list[str]:
    """Ask where, plan from the server's file listings, queue; returns the job ids."""
    client, uploads, jobs = app.client, app.uploads, app.jobs
    if client is None or uploads is None or jobs is None:
        app.notify("Log in to a server to download.", severity="warning")
        return []
    settings = app.config.download
    choice = await app.push_screen_wait(
        DownloadDialog(selection, dl.default_out(app.config), settings.layout, settings.resource)
    )
    if choice is None:
        return []
    # Listing every session's files takes a while on a large selection: say so.
    app.notify(
        f"Listing the files of {len(selection.sessions)} session(s) to download…",
        title="Transfers",
    )
    plan = await dl.plan_selection(
        client, selection, out=choice.out, layout=choice.layout, resource=choice.resource
    )
    if not plan.downloads:
        app.notify(
            f"Nothing to download: no {choice.resource} files in the selection.",
            severity="warning",
        )
        return []
    engine = await jobs.ensure(JobKind.DOWNLOAD, uploads.connection, app.config)
    if not isinstance(engine, DownloadEngine):
        raise LookupError("the download engine is not available")
    ids = await engine.submit(plan.downloads)
    app.notify(
        f"Downloading {len(plan.downloads)} session(s), {plan.files} file(s), "
        f"{human_bytes(plan.bytes)} into {choice.out}",
        title="Transfers",
    )
    return ids
