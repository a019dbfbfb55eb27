"""Move dialog: choose the destination project for one or many prearchive entries."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Select, Static

from xnat_tui.ui.screens.dialog import Dialog
from xnat_tui.ui.widgets.format import plain
from xnat_tui.workflow.prearchive import PrearchiveRow


class MoveDialog(Dialog[str | None]):
    HELP_GROUP = "Move dialog"

    DEFAULT_CSS = """
    MoveDialog { align: center middle; }
    MoveDialog > #move-box {
        width: 80; max-width: 100%; height: auto; max-height: 90%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    MoveDialog #move-list { height: auto; max-height: 12; color: $text-muted; }
    MoveDialog #move-buttons { height: auto; align-horizontal: right; }
    """

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="prearchive.dialog.cancel"),
        Binding("ctrl+s", "submit", "Move", id="prearchive.dialog.submit"),
    ]

    def __init__(self, rows: Sequence[PrearchiveRow], projects: Sequence[str]) -> None:
        super().__init__()
        self.rows = list(rows)
        here = {r.project for r in self.rows}
        # Moving to Unassigned is not something XNAT offers; nor is a move onto itself.
        self.projects = sorted(p for p in set(projects) if p not in here and p != "Unassigned")

    def compose(self) -> ComposeResult:
        n = len(self.rows)
        with Vertical(id="move-box") as box:
            box.border_title = f"Move {n} session{'s' if n != 1 else ''} to another project"
            yield Static(
                Text("\n").join(
                    plain(f"{r.project}/{r.timestamp}/{r.label}  ({r.status})") for r in self.rows
                ),
                id="move-list",
            )
            yield Select(
                [(plain(p, limit=48), p) for p in self.projects],
                prompt="destination project",
                id="move-project",
                compact=True,
            )
            with Horizontal(id="move-buttons"):
                yield Button("Move (ctrl+s)", id="move-ok", variant="primary")
                yield Button("Cancel (esc)", id="move-cancel")

    def on_mount(self) -> None:
        self.query_one("#move-project", Select).focus()

    def action_submit(self) -> None:
        value = self.query_one("#move-project", Select).value
        if not isinstance(value, str) or not value:
            self.notify("Choose the destination project.", severity="error")
            return
        self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#move-ok")
    def _ok(self) -> None:
        self.action_submit()

    @on(Button.Pressed, "#move-cancel")
    def _cancel(self) -> None:
        self.dismiss(None)
