"""Sessions pane: one row per StudyInstanceUID, updated in place as scans and uploads progress."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, RowDoesNotExist

from xnat_tui.ui.widgets import format as fmt
from xnat_tui.ui.widgets.cached_table import CachedDataTable
from xnat_tui.units import human_bytes
from xnat_tui.workflow.workbench import RowState, SessionItem, Workbench

# Fixed widths: rows stream in during a scan and the layout must not jump.
COLUMNS = (
    ("sel", "☑", 1),
    ("patient", "Patient", 12),
    ("target", "Target", 22),
    ("state", "State", 11),
    ("date", "Date", 10),
    ("mod", "Mod", 5),
    ("scans", "Scans", 5),
    ("files", "Files", 6),
    ("size", "Size", 9),
    ("problems", "Probl.", 6),
    ("desc", "Description", 24),
)

# Theme variable per state, resolved against the active theme when drawn so
# every theme (including high contrast) colours states its own way.
_STATE_VAR = {
    RowState.NEW: "success",
    RowState.MERGE: "warning",
    RowState.CONFLICT: "error",
    RowState.INVALID: "error",
    RowState.NOT_PERMITTED: "error",
    RowState.ROUTED: "warning",
    RowState.QUEUED: "secondary",
    RowState.UPLOADING: "primary",
    RowState.VERIFIED: "success",
    RowState.FAILED: "error",
}


def state_text(state: RowState, palette: dict[str, str]) -> Text:
    var = _STATE_VAR.get(state)
    colour = palette.get(var, "") if var else ""
    bold = state in (RowState.CONFLICT, RowState.VERIFIED, RowState.FAILED, RowState.UPLOADING)
    return Text(state, style=f"{'bold ' if bold else ''}{colour}".strip())


def row_cells(
    item: SessionItem, palette: dict[str, str] | None = None, *, routed_to: str = ""
) -> dict[str, str | Text]:
    """The row's cells; ``routed_to`` names the other project its DICOM routes it to."""
    s = item.session
    target = f"{item.subject}/{item.label}" if item.subject or item.label else "—"
    if routed_to and item.follow_routing is not False:
        target = f"{routed_to}/{target}"
    # Everything from DICOM or the user's labels is external text: plain, never markup.
    return {
        "sel": fmt.check(item.selected),
        "patient": fmt.plain(s.patient_name or s.patient_id or "?"),
        "date": fmt.plain(fmt.date(s.study_date)),
        "mod": fmt.plain("/".join(s.modalities) or s.modality),
        "target": fmt.plain(target),
        "state": state_text(item.state, palette or {}),
        "scans": str(len(s.scans)),
        "files": str(s.file_count),
        "size": human_bytes(s.size),
        "problems": str(item.problem_count) if item.problem_count else "",
        "desc": fmt.plain(s.study_description),
    }


class SessionsPane(Vertical):
    HELP_GROUP = "Sessions"
    BINDINGS = [
        Binding(
            "space",
            "toggle_select",
            "Select",
            tooltip="Select/unselect the session",
            id="sessions.toggle",
        ),
        Binding("a", "select_all", "All", tooltip="Select all sessions / none", id="sessions.all"),
    ]

    @dataclass
    class Highlighted(Message):
        uid: str | None

    @dataclass
    class SelectionChanged(Message):
        selected: int

    def __init__(self, workbench: Workbench, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.workbench = workbench
        self.border_title = "Sessions"

    def compose(self) -> ComposeResult:
        table: DataTable[str | Text] = CachedDataTable(id="sessions-table", cursor_type="row")
        for key, label, width in COLUMNS:
            table.add_column(label, key=key, width=width)
        yield table

    @property
    def table(self) -> DataTable[str | Text]:
        return self.query_one(DataTable)

    @property
    def current_uid(self) -> str | None:
        table = self.table
        if table.row_count == 0:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        except CellDoesNotExist:
            return None
        return key.value

    def refresh_row(self, item: SessionItem) -> None:
        """Add the row, or update only the cells that changed."""
        table = self.table
        cells = row_cells(
            item, self.app.theme_variables, routed_to=self.workbench.routed_elsewhere(item)
        )
        try:
            table.get_row_index(item.uid)
        except RowDoesNotExist:
            table.add_row(*(cells[key] for key, _, _ in COLUMNS), key=item.uid)
            if table.row_count == 1:
                self.post_message(self.Highlighted(item.uid))
            return
        for column, value in cells.items():
            if str(table.get_cell(item.uid, column)) != str(value):
                table.update_cell(item.uid, column, value)

    def refresh_rows(self, items: list[SessionItem]) -> None:
        with self.app.batch_update():
            for item in items:
                self.refresh_row(item)
        self._update_subtitle()

    def _update_subtitle(self) -> None:
        n = len(self.workbench)
        chosen = len(self.workbench.selected())
        self.border_subtitle = f"{chosen}/{n} selected" if n else ""

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self.post_message(self.Highlighted(event.row_key.value))

    def action_toggle_select(self) -> None:
        uid = self.current_uid
        item = self.workbench.get(uid)
        if item is None or item.state.in_transfer:
            return
        self.workbench.toggle(item.uid)
        self.refresh_rows([item])
        self.post_message(self.SelectionChanged(len(self.workbench.selected())))

    def action_select_all(self) -> None:
        self.workbench.select_all()
        self.refresh_rows(list(self.workbench.items.values()))
        self.post_message(self.SelectionChanged(len(self.workbench.selected())))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("toggle_select", "select_all"):
            return True if len(self.workbench) else None
        return True
