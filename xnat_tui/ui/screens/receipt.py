"""One job's receipt and journal log."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import TextArea

from xnat_tui.text import safe
from xnat_tui.ui.screens.base import AppScreen
from xnat_tui.ui.screens.dialog import Dialog
from xnat_tui.ui.widgets.format import plain


class ReceiptScreen(AppScreen, Dialog[None]):
    HELP_GROUP = "Receipt"
    BINDINGS = [
        Binding("escape,q", "dismiss", "Close", id="receipt.close"),
        Binding("r", "reload", "Reload", tooltip="Read the journal again", id="receipt.reload"),
    ]

    def __init__(self, job_id: str) -> None:
        super().__init__()
        self.job_id = job_id

    def compose(self) -> ComposeResult:
        area = TextArea("", read_only=True, id="receipt-text", classes="dialog")
        area.border_title = plain(f"Job {self.job_id}")
        yield area

    def on_mount(self) -> None:
        self.action_reload()
        self.query_one(TextArea).focus()

    def action_reload(self) -> None:
        uploads = self.xapp.uploads
        # The report quotes labels, file names and the server's messages: made safe.
        self.query_one(TextArea).text = safe(
            uploads.job_report(self.job_id) if uploads is not None else "Not connected.",
            lines=True,
        )
