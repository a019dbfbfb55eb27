"""Move confirmation: lists every source session that will be deleted, and goes ahead only
once the SOURCE project's ID is typed exactly (a move cannot be undone)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Static

from xnat_tui.ui.screens.dialog import Dialog
from xnat_tui.ui.widgets.format import assemble, plain


class MoveConfirmScreen(Dialog[bool]):
    HELP_GROUP = "Move confirmation"

    DEFAULT_CSS = """
    MoveConfirmScreen { align: center middle; }
    MoveConfirmScreen > #move-confirm-box {
        width: 100; max-width: 100%; height: auto; max-height: 90%;
        border: thick $error; background: $surface; padding: 0 1;
    }
    MoveConfirmScreen #move-confirm-list { height: auto; max-height: 16; }
    MoveConfirmScreen #move-confirm-error { color: $error; height: auto; }
    MoveConfirmScreen #move-confirm-buttons { height: auto; align-horizontal: right; }
    """

    BINDINGS = [
        Binding("escape", "cancel", "Keep", id="copy.move.cancel"),
        Binding("ctrl+s", "submit", "Move", id="copy.move.submit"),
    ]

    def __init__(self, source_project: str, dest_project: str, lines: Sequence[str]) -> None:
        super().__init__()
        self.source_project = source_project
        self.dest_project = dest_project
        self.lines = list(lines)

    def compose(self) -> ComposeResult:
        n = len(self.lines)
        with Vertical(id="move-confirm-box") as box:
            box.border_title = f"Move {n} session{'s' if n != 1 else ''}: delete the source?"
            yield Static(
                assemble(
                    "Each session is copied to ",
                    (self.dest_project, "b"),
                    " and compared with the source scan by scan (MD5s, counts, sizes). Only "
                    "then is it DELETED from ",
                    (self.source_project, "b"),
                    " with all its files; never if the comparison failed. This cannot be "
                    "undone. Deleted after verification:",
                )
            )
            with VerticalScroll(id="move-confirm-list"):
                # Labels and scan descriptions come from the server: plain text.
                yield Static(Text("\n").join(plain(f"• {line}") for line in self.lines))
            yield Static(
                assemble("Type the source project ID (", (self.source_project, "b"), ") to move:")
            )
            yield Input(placeholder="source project ID", id="move-confirm-input")
            yield Static("", id="move-confirm-error")
            with Horizontal(id="move-confirm-buttons"):
                yield Button(f"Move {n} (ctrl+s)", id="move-confirm-yes", variant="error")
                yield Button("Keep (esc)", id="move-confirm-no")

    def on_mount(self) -> None:
        self.query_one("#move-confirm-input", Input).focus()

    def action_submit(self) -> None:
        typed = self.query_one("#move-confirm-input", Input).value.strip()
        if typed != self.source_project:
            self.query_one("#move-confirm-error", Static).update(
                assemble("Type ", (self.source_project, "b"), " exactly to confirm the move.")
            )
            return
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)

    @on(Input.Submitted, "#move-confirm-input")
    def _enter(self) -> None:
        self.action_submit()

    @on(Button.Pressed, "#move-confirm-yes")
    def _yes(self) -> None:
        self.action_submit()

    @on(Button.Pressed, "#move-confirm-no")
    def _no(self) -> None:
        self.action_cancel()
