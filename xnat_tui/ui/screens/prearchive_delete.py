"""Delete confirmation: lists exactly which prearchive entries (and their scans) go."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Static

from xnat_tui.ui.screens.dialog import Dialog
from xnat_tui.ui.widgets.format import plain


class DeleteDialog(Dialog[bool]):
    HELP_GROUP = "Delete dialog"

    DEFAULT_CSS = """
    DeleteDialog { align: center middle; }
    DeleteDialog > #delete-box {
        width: 110; max-width: 100%; height: auto; max-height: 90%;
        border: thick $error; background: $surface; padding: 0 1;
    }
    DeleteDialog #delete-list { height: auto; max-height: 20; }
    DeleteDialog #delete-buttons { height: auto; align-horizontal: right; }
    """

    BINDINGS = [
        Binding("y", "answer(True)", "Delete", id="prearchive.delete.yes"),
        Binding("n,escape", "answer(False)", "Keep", id="prearchive.delete.no"),
    ]

    def __init__(self, lines: Sequence[str]) -> None:
        super().__init__()
        self.lines = list(lines)

    def compose(self) -> ComposeResult:
        n = len(self.lines)
        with Vertical(id="delete-box") as box:
            box.border_title = f"Delete {n} prearchive session{'s' if n != 1 else ''}?"
            yield Static(
                "These entries and all their files are removed from the prearchive. "
                "This cannot be undone:"
            )
            with VerticalScroll(id="delete-list"):
                # Labels and scan descriptions from the server: plain text.
                yield Static(Text("\n").join(plain(f"• {line}") for line in self.lines))
            with Horizontal(id="delete-buttons"):
                yield Button(f"Delete {n} (y)", id="delete-yes", variant="error")
                yield Button("Keep (n)", id="delete-no")

    def on_mount(self) -> None:
        self.query_one("#delete-no", Button).focus()

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "delete-yes")
