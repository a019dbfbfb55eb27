"""Transfers pane: per-job progress, overall progress and job controls.

Redrawn from :class:`TransferModel` by a timer (5 Hz) and only when the model
changed; rows are keyed by job id and updated cell by cell.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, ProgressBar, Static
from textual.widgets.data_table import CellDoesNotExist, RowDoesNotExist

from xnat_tui.transfer.types import JobState
from xnat_tui.ui.transfer_model import JobRow, TransferModel
from xnat_tui.ui.widgets import format as fmt
from xnat_tui.ui.widgets.cached_table import CachedDataTable
from xnat_tui.units import human_bytes

REFRESH_HZ = 5
BAR_WIDTH = 12

_STATE_VAR = {
    JobState.QUEUED: "secondary",
    JobState.SENDING: "primary",
    JobState.COMMITTING: "primary",
    JobState.VERIFYING: "primary",
    JobState.PAUSED: "warning",
    JobState.VERIFIED: "success",
    JobState.FAILED: "error",
    JobState.CANCELLED: "warning",
}


def bar(fraction: float, width: int = BAR_WIDTH) -> str:
    filled = max(0, min(width, round(fraction * width)))
    return "█" * filled + "░" * (width - filled) + f" {fraction * 100:3.0f}%"


def job_cells(row: JobRow, palette: dict[str, str]) -> dict[str, str | Text]:
    colour = palette.get(_STATE_VAR.get(row.state, ""), "")
    return {
        "kind": row.kind.arrow,
        "label": fmt.plain(row.label),
        "state": Text(row.kind.word(str(row.state)), style=colour),
        "progress": bar(row.fraction),
        "bytes": f"{human_bytes(row.bytes_sent)}/{human_bytes(row.bytes_total)}",
        "files": f"{row.files_sent}/{row.files_total}",
        "rate": fmt.rate(row.rate) if row.state is JobState.SENDING else "—",
        "eta": fmt.eta(row.eta) if row.state is JobState.SENDING else "—",
        "message": fmt.plain(row.message),  # the server's words: data
    }


class TransfersPane(Vertical):
    HELP_GROUP = "Transfers"
    BINDINGS = [
        Binding(
            "space",
            "pause",
            "Pause/resume",
            tooltip="Pause or resume the highlighted job",
            id="transfers.pause",
        ),
        Binding(
            "P",
            "pause_all",
            "Pause all",
            tooltip="Pause or resume every job",
            id="transfers.pause_all",
        ),
        Binding(
            "c", "cancel", "Cancel", tooltip="Cancel the highlighted job", id="transfers.cancel"
        ),
        Binding(
            "r", "retry", "Retry", tooltip="Retry a failed or cancelled job", id="transfers.retry"
        ),
        Binding(
            "v",
            "receipt",
            "Receipt",
            tooltip="Show the job's receipt and log",
            id="transfers.receipt",
        ),
    ]

    @dataclass
    class ActionRequested(Message):
        action: str  # pause | resume | pause_all | resume_all | cancel | retry | receipt
        job_id: str | None

    def __init__(self, model: TransferModel, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.model = model
        self.border_title = "Transfers"
        self._drawn = -1
        self._scroll_pending = False
        self._detail = "-"  # what the detail line shows (none yet: drawn at first)

    def compose(self) -> ComposeResult:
        yield ProgressBar(id="transfers-overall", show_eta=False)
        table: DataTable[str | Text] = CachedDataTable(id="transfers-table", cursor_type="row")
        for key, label, width in (
            ("kind", "Kind", 10),
            ("label", "Session", 32),
            ("state", "State", 10),
            ("progress", "Progress", BAR_WIDTH + 5),
            ("bytes", "Bytes", 19),
            ("files", "Files", 9),
            ("rate", "Rate", 11),
            ("eta", "ETA", 6),
            ("message", "Message", 40),
        ):
            table.add_column(label, key=key, width=width)
        yield table
        # The highlighted job's whole label and last message: the Message column is
        # beyond the edge of a terminal narrower than the table (~170 cells).
        yield Static("", id="transfers-detail", markup=False)

    def on_mount(self) -> None:
        self.set_interval(1 / REFRESH_HZ, self.redraw)
        self.redraw()

    @property
    def table(self) -> DataTable[str | Text]:
        return self.query_one(DataTable)

    def redraw(self, force: bool = False) -> None:
        self._follow_new_rows()
        if self.model.version == self._drawn and not force:
            return
        self._drawn = self.model.version
        table = self.table
        palette = self.app.theme_variables
        added = False
        with self.app.batch_update():
            for row in self.model.jobs.values():
                cells = job_cells(row, palette)
                try:
                    table.get_row_index(row.job_id)
                except RowDoesNotExist:
                    table.add_row(*cells.values(), key=row.job_id)
                    added = True
                    continue
                for column, value in cells.items():
                    if str(table.get_cell(row.job_id, column)) != str(value):
                        table.update_cell(row.job_id, column, value)
            overall = self.model.overall
            bar_widget = self.query_one(ProgressBar)
            # From the rows, not the last tick: ticks stop when nothing moves, so the
            # last one may predate the final jobs' completion.
            counted = [r for r in self.model.jobs.values() if r.state is not JobState.CANCELLED]
            total = sum(r.bytes_total for r in counted)
            sent = sum(
                r.bytes_total if r.state is JobState.VERIFIED else r.bytes_sent for r in counted
            )
            # Hidden while idle: an indeterminate bar would animate for nothing.
            bar_widget.display = bool(total)
            if total:
                bar_widget.update(total=total, progress=sent)
            jobs = list(self.model.jobs.values())
            done = sum(1 for r in jobs if r.state is JobState.VERIFIED)
            failed = sum(1 for r in jobs if r.state is JobState.FAILED)
            active = len(self.model.active)
            parts = [f"{done}/{len(jobs)} verified"] if jobs else ["idle"]
            if active:
                parts.append(
                    f"{active} active, {fmt.rate(overall.rate)}, ETA {fmt.eta(overall.eta)}"
                )
            if failed:
                parts.append(f"{failed} failed")
            self.border_subtitle = " · ".join(parts)
        if added:
            self._scroll_pending = True
            self._follow_new_rows()
        self._show_detail()

    def _show_detail(self) -> None:
        row = self.current
        text = (
            Text.assemble(fmt.plain(row.label), ": ", fmt.plain(row.message))
            if row is not None and row.message
            else Text()
        )
        if text.plain != self._detail:
            self._detail = text.plain
            detail = self.query_one("#transfers-detail", Static)
            detail.update(text)
            detail.display = bool(text.plain)

    def _follow_new_rows(self) -> None:
        """A job just started is scrolled into sight, not left below the panel's fold
        (the cursor stays where the user left it). Once the table has measured its new
        rows, which it does when idle: on a busy machine that can be a tick later."""
        table = self.table
        if self._scroll_pending and table.virtual_size.height >= table.row_count:
            self._scroll_pending = False
            table.scroll_end(animate=False, immediate=True)

    @property
    def current(self) -> JobRow | None:
        table = self.table
        if not table.row_count:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except CellDoesNotExist:
            return None
        return self.model.jobs.get(key or "")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        row = self.current
        if action == "pause":
            return None if row is None or row.state.finished else True
        if action == "pause_all":
            return True if self.model.unfinished else None
        if action == "cancel":
            return None if row is None or row.state.finished else True
        if action == "retry":
            return True if row and row.state in (JobState.FAILED, JobState.CANCELLED) else None
        if action == "receipt":
            return True if row else None
        return True

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self.refresh_bindings()
        self._show_detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        # Enter on a row (DataTable's own key) opens the receipt as well as "v".
        event.stop()
        self.action_receipt()

    def action_pause(self) -> None:
        row = self.current
        if row is not None:
            verb = "resume" if row.state is JobState.PAUSED else "pause"
            self.post_message(self.ActionRequested(verb, row.job_id))

    def action_pause_all(self) -> None:
        paused = [r for r in self.model.unfinished if r.state is JobState.PAUSED]
        verb = "resume_all" if paused and len(paused) == len(self.model.unfinished) else "pause_all"
        self.post_message(self.ActionRequested(verb, None))

    def action_cancel(self) -> None:
        row = self.current
        if row is not None:
            self.post_message(self.ActionRequested("cancel", row.job_id))

    def action_retry(self) -> None:
        row = self.current
        if row is not None:
            self.post_message(self.ActionRequested("retry", row.job_id))

    def action_receipt(self) -> None:
        row = self.current
        if row is not None:
            self.post_message(self.ActionRequested("receipt", row.job_id))
