"""The application log: what the app and the domain modules reported."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, RichLog

from xnat_tui.ui.widgets.format import plain

if TYPE_CHECKING:
    from xnat_tui.ui.logbuffer import LogBuffer


class LogScreen(Screen[None]):
    HELP_GROUP = "Log"
    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back", id="log.close"),
        Binding("c", "clear", "Clear view", id="log.clear"),
    ]

    def __init__(self, buffer: LogBuffer) -> None:
        super().__init__()
        self.buffer = buffer
        self._seen = 0

    def compose(self) -> ComposeResult:
        yield Header()
        log = RichLog(id="log-view", wrap=True, markup=False, highlight=False, max_lines=5000)
        log.border_title = "Log"
        yield log
        yield Footer()

    def on_mount(self) -> None:
        self._drain()
        # Polled rather than pushed: worker threads append to the buffer and
        # must not touch widgets.
        self.set_interval(0.5, self._drain)

    def _drain(self) -> None:
        log = self.query_one(RichLog)
        for line in self.buffer.since(self._seen):
            # Log messages quote file names, DICOM values and server replies: data.
            log.write(plain(line.render(), lines=True))
        self._seen = self.buffer.count

    def action_clear(self) -> None:
        self.query_one(RichLog).clear()
