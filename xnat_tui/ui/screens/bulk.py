"""Bulk labelling: patterns applied to many sessions, validation per row, queue all."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Label, Static
from textual.widgets.data_table import CellDoesNotExist
from textual.worker import Worker

from xnat_tui.ui.messages import TargetsChecked
from xnat_tui.ui.screens.base import AppScreen
from xnat_tui.ui.validators import LabelRule, PatternRule
from xnat_tui.ui.widgets.format import VisibleControls, plain
from xnat_tui.ui.widgets.sessions import state_text
from xnat_tui.workflow.workbench import SessionItem

# Widest cells (terminal cells) of the auto-sized columns: one long DICOM value must
# not push the others off screen.
_NAME_CELLS = 32
_LABEL_CELLS = 64
_DETAIL_CELLS = 80


class BulkScreen(AppScreen, Screen[str | None]):
    """Dismisses with "queue" (queue the selected rows), "changed" or None."""

    HELP_GROUP = "Bulk"
    BINDINGS = [
        Binding(
            "ctrl+a",
            "apply",
            "Apply patterns",
            tooltip="Apply the patterns to every row",
            id="bulk.apply",
        ),
        Binding(
            "ctrl+u",
            "queue",
            "Queue all",
            tooltip="Review and queue every valid row",
            id="bulk.queue",
        ),
        Binding("escape", "close", "Back", tooltip="Back to the workbench", id="bulk.close"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.changed = False

    def rows(self) -> list[SessionItem]:
        wb = self.xapp.workbench
        chosen = wb.selected() or list(wb.items.values())
        return [i for i in chosen if not i.state.in_transfer]

    def compose(self) -> ComposeResult:
        wb = self.xapp.workbench
        yield Header()
        with Vertical(id="bulk"):
            with Horizontal(id="bulk-patterns") as box:
                box.border_title = "Patterns"
                with Vertical():
                    yield Label("Subject pattern")
                    yield Input(
                        wb.subject_pattern,
                        highlighter=VisibleControls(),
                        id="subject-pattern",
                        compact=True,
                        validators=[PatternRule()],
                    )
                with Vertical():
                    yield Label("Session pattern")
                    yield Input(
                        wb.session_pattern,
                        highlighter=VisibleControls(),
                        id="session-pattern",
                        compact=True,
                        validators=[PatternRule()],
                    )
            yield Static("", id="bulk-status", classes="status")
            table: DataTable[object] = DataTable(id="bulk-table", cursor_type="row")
            table.border_title = "Sessions"
            yield table
            with Horizontal(id="bulk-row") as row:
                row.border_title = "Highlighted row"
                yield Input(
                    placeholder="subject",
                    highlighter=VisibleControls(),
                    id="row-subject",
                    compact=True,
                    validators=[LabelRule("subject label")],
                )
                yield Input(
                    placeholder="session",
                    highlighter=VisibleControls(),
                    id="row-session",
                    compact=True,
                    validators=[LabelRule("session label")],
                )
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#bulk-table", DataTable)
        table.add_column("Patient", key="patient")
        table.add_column("Date", key="date")
        table.add_column("Subject", key="subject")
        table.add_column("Session", key="session")
        table.add_column("State", key="state")
        table.add_column("Detail", key="detail")
        self._fill()
        self._status()
        table.focus()
        self._check()

    def _fill(self) -> None:
        """Update rows in place (keyed by StudyInstanceUID); rebuild only if the set changed.

        Rebuilding would move the cursor and rewrite the row editor under the user's
        fingers while a check result arrives.
        """
        table = self.query_one("#bulk-table", DataTable)
        palette = self.app.theme_variables
        rows = self.rows()
        keys = [row.value for row in table.rows]
        if keys == [item.uid for item in rows]:
            for item in rows:
                table.update_cell(item.uid, "subject", plain(item.subject, limit=_LABEL_CELLS))
                table.update_cell(item.uid, "session", plain(item.label, limit=_LABEL_CELLS))
                table.update_cell(item.uid, "state", state_text(item.state, palette))
                table.update_cell(item.uid, "detail", plain(item.detail, limit=_DETAIL_CELLS))
            return
        cursor = table.cursor_row
        table.clear()
        for item in rows:
            s = item.session
            # DICOM values and labels are data: plain text, cut to a sane width.
            table.add_row(
                plain(s.patient_name or s.patient_id, limit=_NAME_CELLS),
                plain(s.study_date, limit=_NAME_CELLS),
                plain(item.subject, limit=_LABEL_CELLS),
                plain(item.label, limit=_LABEL_CELLS),
                state_text(item.state, palette),
                plain(item.detail, limit=_DETAIL_CELLS),
                key=item.uid,
            )
        if table.row_count:
            table.move_cursor(row=min(cursor, table.row_count - 1))

    def _status(self) -> None:
        project = self.xapp.workbench.project
        rows = self.rows()
        counts: dict[str, int] = {}
        for item in rows:
            counts[item.state] = counts.get(item.state, 0) + 1
        text = f"{len(rows)} sessions · " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        kind = "ok"
        if project is None:
            text += "\nChoose a project on the workbench first."
            kind = "error"
        elif not project.allow_bulk_upload and len(rows) > 1:
            text += (
                f"\nProject {project.id} does not allow bulk uploads: "
                "queue its sessions one at a time from the workbench."
            )
            kind = "warning"
        status = self.query_one("#bulk-status", Static)
        status.update(plain(text, lines=True))
        status.set_classes(f"status -{kind}")

    def _current(self) -> SessionItem | None:
        table = self.query_one("#bulk-table", DataTable)
        if not table.row_count:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except CellDoesNotExist:
            return None
        return self.xapp.workbench.get(key)

    @on(DataTable.RowHighlighted, "#bulk-table")
    def _row(self) -> None:
        item = self._current()
        subject = self.query_one("#row-subject", Input)
        session = self.query_one("#row-session", Input)
        with subject.prevent(Input.Changed), session.prevent(Input.Changed):
            subject.value = item.subject if item else ""
            session.value = item.label if item else ""

    @on(Input.Changed, "#row-subject, #row-session")
    def _row_edit(self) -> None:
        item = self._current()
        if item is None:
            return
        self.xapp.workbench.set_labels(
            item.uid,
            subject=self.query_one("#row-subject", Input).value,
            label=self.query_one("#row-session", Input).value,
        )
        self.changed = True
        table = self.query_one("#bulk-table", DataTable)
        table.update_cell(item.uid, "subject", plain(item.subject, limit=_LABEL_CELLS))
        table.update_cell(item.uid, "session", plain(item.label, limit=_LABEL_CELLS))
        self._check()

    def action_apply(self) -> None:
        sp = self.query_one("#subject-pattern", Input)
        ep = self.query_one("#session-pattern", Input)
        rule = PatternRule()
        if not (rule.validate(sp.value).is_valid and rule.validate(ep.value).is_valid):
            self.notify("Fix the pattern first.", severity="error")
            return
        wb = self.xapp.workbench
        wb.set_patterns(sp.value, ep.value, explicit=True)
        wb.relabel(self.rows())
        self.changed = True
        self._fill()
        self._row()
        self._check()

    def _check(self) -> None:
        """Ask the App for a (debounced) check of every row; the answer comes as a message."""
        rows = self.rows()
        if self.xapp.workbench.project is None or not rows:
            self._status()
            return
        self.xapp.check_targets([i.uid for i in rows])
        self._fill()

    @on(TargetsChecked)
    def _checked(self) -> None:
        self._fill()
        self._status()
        self.refresh_bindings()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.xapp.report_worker(event)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "queue":
            project = self.xapp.workbench.project
            rows = self.rows()
            if project is None or not any(i.state.queueable for i in rows):
                return None
            if not project.allow_bulk_upload and len(rows) > 1:
                return None
        return True

    def action_queue(self) -> None:
        wb = self.xapp.workbench
        rows = self.rows()
        for item in wb.items.values():
            item.selected = item in rows and item.state.queueable
        self.dismiss("queue")

    def action_close(self) -> None:
        self.dismiss("changed" if self.changed else None)
