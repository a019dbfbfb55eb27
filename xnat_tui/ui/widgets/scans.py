"""Scans pane: the series of the highlighted session, each with a ☑/☐ selection.

Series the project's import filter will drop are shown dimmed with the reason,
so nothing disappears silently.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist

from xnat_tui.ui.widgets import format as fmt
from xnat_tui.ui.widgets.cached_table import CachedDataTable
from xnat_tui.units import human_bytes
from xnat_tui.workflow.workbench import Workbench


class ScansPane(Vertical):
    HELP_GROUP = "Scans"
    BINDINGS = [
        Binding(
            "space",
            "toggle_series",
            "Include",
            tooltip="Include/exclude the series",
            id="scans.toggle",
        ),
        Binding("a", "toggle_all", "All/none", tooltip="Include all series / none", id="scans.all"),
    ]

    @dataclass
    class Changed(Message):
        uid: str

    def __init__(self, workbench: Workbench, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.workbench = workbench
        self.uid: str | None = None
        self.border_title = "Scans"

    def compose(self) -> ComposeResult:
        table: DataTable[str | Text] = CachedDataTable(id="scans-table", cursor_type="row")
        table.add_column("☑", key="sel", width=1)
        table.add_column("#", key="num", width=4)
        table.add_column("Description", key="desc", width=20)
        table.add_column("Mod", key="mod", width=4)
        table.add_column("Files", key="files", width=5)
        table.add_column("Size", key="size", width=9)
        table.add_column("Note", key="note", width=30)
        yield table

    @property
    def table(self) -> DataTable[str | Text]:
        return self.query_one(DataTable)

    def show(self, uid: str | None) -> None:
        """Redraw for a session (cheap: a session has tens of series, not thousands)."""
        self.uid = uid
        table = self.table
        cursor = table.cursor_row
        table.clear()
        item = self.workbench.get(uid)
        if item is None:
            self.border_subtitle = ""
            return
        project = self.workbench.project
        dropped = project.dropped if project else {}
        locked = item.state.in_transfer
        for scan in item.scans():
            reason = dropped.get(scan.series_instance_uid, "")
            included = scan.series_instance_uid not in item.excluded and not reason
            style = "dim strike" if reason else ("" if included else "dim")
            problems = "; ".join(p.kind for p in scan.problems)
            cells = [
                fmt.check(included),
                scan.label,
                scan.series_description,
                scan.modality,
                str(scan.file_count),
                human_bytes(scan.size),
                f"filtered: {reason}" if reason else problems,
            ]
            table.add_row(*(fmt.plain(c, style) for c in cells), key=scan.series_instance_uid)
        if table.row_count:
            table.move_cursor(row=min(cursor, table.row_count - 1), animate=False)
        chosen = len(item.included_scans(dropped))
        suffix = " · locked" if locked else ""
        self.border_subtitle = f"{chosen}/{len(item.scans())} series{suffix}"

    def _current_series(self) -> str | None:
        table = self.table
        if not table.row_count:
            return None
        try:
            return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except CellDoesNotExist:
            return None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        item = self.workbench.get(self.uid)
        if action in ("toggle_series", "toggle_all"):
            return None if item is None or item.state.in_transfer else True
        return True

    def action_toggle_series(self) -> None:
        series = self._current_series()
        if self.uid is None or series is None:
            return
        project = self.workbench.project
        if project and series in project.dropped:
            self.notify(
                f"The project's import filter drops this series: {project.dropped[series]}",
                severity="warning",
            )
            return
        self.workbench.toggle_series(self.uid, series)
        self.show(self.uid)
        self.post_message(self.Changed(self.uid))

    def action_toggle_all(self) -> None:
        if self.uid is None:
            return
        self.workbench.toggle_all_series(self.uid)
        self.show(self.uid)
        self.post_message(self.Changed(self.uid))
