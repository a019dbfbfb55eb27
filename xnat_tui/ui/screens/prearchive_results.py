"""Per-session results of a triage action, with the server's message for each failure."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import Static

from xnat_tui.ui.screens.dialog import Dialog
from xnat_tui.ui.widgets.format import assemble, plain
from xnat_tui.workflow.prearchive import ActionResult


def result_lines(results: Sequence[ActionResult]) -> list[Content]:
    """One line per session: the mark, then the server's names and message as plain text."""
    lines = []
    for r in results:
        mark = ("✓", "$success") if r.ok else ("✗", "$error")
        name = f"{r.request.row.project}/{r.request.row.label}"
        lines.append(assemble(mark, f" {name}: {r.message}"))
    return lines


class ResultsDialog(Dialog[None]):
    HELP_GROUP = "Results"

    DEFAULT_CSS = """
    ResultsDialog { align: center middle; }
    ResultsDialog > #results-box {
        width: 110; max-width: 100%; height: auto; max-height: 90%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    ResultsDialog #results-list { height: auto; max-height: 24; }
    """

    BINDINGS = [
        Binding("escape,enter,q", "close", "Close", id="prearchive.results.close"),
    ]

    def __init__(self, title: str, results: Sequence[ActionResult]) -> None:
        super().__init__()
        self.title_text = title
        self.results = list(results)

    def compose(self) -> ComposeResult:
        ok = sum(1 for r in self.results if r.ok)
        with Vertical(id="results-box") as box:
            box.border_title = plain(f"{self.title_text}: {ok} of {len(self.results)} succeeded")
            with VerticalScroll(id="results-list"):
                yield Static(Content("\n").join(result_lines(self.results)), id="results-text")
            yield Static("[$text-muted]enter/esc to close[/]")

    def action_close(self) -> None:
        self.dismiss(None)
