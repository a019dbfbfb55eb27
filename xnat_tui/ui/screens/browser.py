"""The server browser: projects → subjects → sessions → scans, loaded as they open.

Keys: Enter open/close, → open, ← close, Space select (a subject selects its sessions,
a session its scans), / filter (type-ahead: the cursor jumps to the first match while
typing), r read the server again, x unselect all, Esc back (it reopens as it was left).
What can be done with the selection comes from ``ui/browser_actions.py`` (Download…
first); this screen only hands the typed ``Selection`` over.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static

from xnat_tui.ui.browser_actions import ACTION_GROUP, ACTIONS, BrowserAction
from xnat_tui.ui.screens.base import AppScreen
from xnat_tui.ui.widgets.format import assemble, plain
from xnat_tui.workflow.browse import (
    BrowseModel,
    BrowseSource,
    ClientBrowseSource,
    Kind,
    Row,
    Selection,
)

COLUMNS = ("", "Name", "Count", "Size", "Date", "Modality")
NAME_MIN = 24  # cells a name keeps on the narrowest screen
OTHER_COLUMNS = 58  # what the other columns, their padding and the scroll bar take
COLUMN_KEYS = ("mark", "Name", "Count", "Size", "Date", "Modality")


class BrowserCommands(Provider):
    """The browser's actions in the command palette (only with something selected)."""

    def _entries(self) -> list[tuple[str, str, BrowserAction]]:
        screen = self.screen
        if not isinstance(screen, BrowserScreen) or screen.model is None or not screen.model.picked:
            return []
        return [(a.label, a.description, a) for a in screen.actions]

    async def discover(self) -> Hits:
        screen = self.screen
        for label, help_text, action in self._entries():
            assert isinstance(screen, BrowserScreen)
            yield DiscoveryHit(label, lambda a=action: screen.apply_action(a), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        screen = self.screen
        for label, help_text, action in self._entries():
            score = matcher.match(label)
            if score > 0:
                assert isinstance(screen, BrowserScreen)
                yield Hit(
                    score,
                    matcher.highlight(label),
                    lambda a=action: screen.apply_action(a),
                    help=help_text,
                )


class BrowserTable(DataTable[object]):
    """The tree's table: Enter, → and ← open and close rows. Bound here, not on the
    screen: a priority binding on the screen ran ahead of the table's own keys still
    queued (Down then → in one burst opened the row Down had not reached yet), and
    the table's sideways scroll took →/← whenever a long label made it wider than
    the screen."""

    HELP_GROUP = "Browser"
    BINDINGS = [
        Binding(
            "enter",
            "screen.toggle_open",
            "Open/close",
            show=False,
            tooltip="Open or close the highlighted row",
            id="browser.open",
        ),
        Binding(
            "right",
            "screen.expand",
            "Open",
            show=False,
            tooltip="Open the highlighted row",
            id="browser.expand",
        ),
        Binding(
            "left",
            "screen.collapse",
            "Close",
            show=False,
            tooltip="Close the highlighted row",
            id="browser.collapse",
        ),
    ]


class BrowserScreen(AppScreen, Screen[None]):
    HELP_GROUP = "Browser"
    COMMANDS = {BrowserCommands}
    DEFAULT_CSS = """
    BrowserScreen { layout: vertical; }
    BrowserScreen #browser-filter { height: 3; }
    BrowserScreen #browser-table { height: 1fr; }
    BrowserScreen #browser-status { height: 1; padding: 0 1; color: $text-muted; }
    """
    BINDINGS = [
        Binding("escape", "close", "Back", tooltip="Back to the workbench", id="browser.close"),
        Binding(
            "space",
            "toggle_select",
            "Select",
            tooltip="Select or unselect the highlighted subject, session or scan",
            id="browser.select",
        ),
        Binding(
            "slash",
            "filter",
            "Filter",
            tooltip="Filter by name (type-ahead)",
            id="browser.filter",
        ),
        Binding(
            "r",
            "reload",
            "Reload",
            tooltip="Read everything shown again from the server",
            id="browser.reload",
            show=False,
        ),
        Binding(
            "x",
            "clear_selection",
            "Clear",
            tooltip="Unselect everything",
            id="browser.clear",
            show=False,
        ),
    ]

    def __init__(
        self,
        source: BrowseSource | None = None,
        actions: Sequence[BrowserAction] | None = None,
        model: BrowseModel | None = None,
    ) -> None:
        """``model``: the tree as the browser was left (it reopens as it was)."""
        super().__init__()
        self._source = source
        self.actions = list(ACTIONS if actions is None else actions)
        self.model: BrowseModel | None = model
        self._shown: list[Row] = []
        self._drawn_width = 0
        # Each action's key, bound on this instance (the list is open to other workflows).
        for i, action in enumerate(self.actions):
            self._bindings._add_binding(
                Binding(
                    action.key,
                    f"run_action_at({i})",
                    action.label,
                    tooltip=action.description,
                    id=action.id,
                )
            )

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(
            placeholder="filter (type-ahead) — Enter to return to the list", id="browser-filter"
        )
        table = BrowserTable(id="browser-table", cursor_type="row")
        yield table
        yield Static("", id="browser-status")
        yield Footer()

    def on_mount(self) -> None:
        self._add_columns()
        self.table.focus()
        if self.model is None:
            source = self._source
            if source is None:
                client = self.xapp.client
                if client is None:
                    self.status("Log in to a server to browse it.")
                    return
                source = ClientBrowseSource(client)
            self.model = BrowseModel(source)
        if self.model.projects:  # back to the tree as it was left
            self.query_one("#browser-filter", Input).value = self.model.filter_text
            self.refresh_rows(self.model.cursor or None)
            return
        self._load_projects()

    def on_resize(self) -> None:
        if self._drawn_width and self._name_width() != self._drawn_width:
            # Names are cut to the width: draw them again, in columns sized anew (a
            # column keeps the width of its widest cell so far, however the screen shrank).
            keep = self.current_key()
            self.table.clear(columns=True)
            self._add_columns()
            self._shown = []
            self.refresh_rows(keep)

    def _add_columns(self) -> None:
        for label, key in zip(COLUMNS, COLUMN_KEYS, strict=True):
            self.table.add_column(label, key=key)

    def _name_width(self) -> int:
        """Cells for a row's name: the rest of the row stays on screen however long a
        label is (a 125-character one pushed Count, Size and Date out of sight)."""
        return max(NAME_MIN, self.app.size.width - OTHER_COLUMNS)

    # ------------------------------------------------------------ rendering
    @property
    def table(self) -> DataTable[object]:
        return self.query_one("#browser-table", DataTable)

    def status(self, text: str) -> None:
        self.query_one("#browser-status", Static).update(plain(text))

    def current_key(self) -> str | None:
        table = self.table
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return str(key) if key is not None else None

    def refresh_rows(self, keep: str | None = None) -> None:
        """Redraw from the model, keeping the cursor on ``keep`` (or where it was)."""
        if self.model is None:
            return
        keep = keep or self.current_key()
        table = self.table
        rows = self.model.rows()
        if [r.key for r in rows] == [r.key for r in self._shown]:
            # Same rows (a selection changed): only the cells that differ are redrawn,
            # so a project with thousands of sessions stays quick to select in.
            with self.app.batch_update():
                for old_row, row in zip(self._shown, rows, strict=True):
                    if old_row != row:
                        cells = self._cells(row, self._drawn_width)
                        for column, value in zip(COLUMN_KEYS, cells, strict=True):
                            table.update_cell(row.key, column, value)
            self._shown = rows
            self._show_selection()
            return
        self._shown = rows
        self._drawn_width = width = self._name_width()
        with self.app.batch_update():
            table.clear()
            for row in rows:
                table.add_row(*self._cells(row, width), key=row.key)
        if keep is not None:
            for i, row in enumerate(rows):
                if row.key == keep:
                    table.move_cursor(row=i)
                    break
        self._show_selection()

    @staticmethod
    def _cells(row: Row, width: int) -> list[object]:
        arrow = ""
        if row.kind is not Kind.SCAN:
            # One cell wide, as ▸ and ▾ are (⏳ took two, and cut the name's last one).
            arrow = "⧗ " if row.loading else ("▾ " if row.expanded else "▸ ")
        name = Text("  " * row.depth + arrow, end="")
        name.append_text(plain(row.name))
        name.truncate(width, overflow="ellipsis")
        return [row.mark, name, plain(row.count), row.size, plain(row.date), plain(row.modality)]

    def _show_selection(self) -> None:
        if self.model is None:
            return
        self.refresh_bindings()  # the actions' keys are useful with a selection only
        selection = self.model.selection()
        keys = " / ".join(f"{a.key}: {a.label}" for a in self.actions)
        self.query_one("#browser-status", Static).update(
            assemble(selection.describe(), ("  " + keys if not selection.empty else "", "dim"))
        )

    # ------------------------------------------------------------ loading
    @work(group="browse-load", exit_on_error=False)
    async def _load_projects(self) -> None:
        assert self.model is not None
        self.status("loading projects…")
        try:
            await self.model.load_projects()
        except Exception as exc:
            self.status(f"cannot list projects: {exc}")
            return
        self.refresh_rows()

    @work(group="browse-load", exclusive=True, exit_on_error=False)
    async def action_reload(self) -> None:
        if self.model is None:
            return
        self.status("reading the server again…")
        try:
            await self.model.reload()
        except Exception as exc:
            self.notify(f"cannot read the server again: {exc}", severity="error")
        self._shown = []  # every row drawn anew, the cursor kept on its row
        self.refresh_rows()

    @work(group="browse-load", exit_on_error=False)
    async def _load(self, key: str) -> None:
        assert self.model is not None
        self.model.begin_load(key)  # ⧗ on the row while it loads, not only after
        # The cursor stays on the row it is on: the user may have moved on meanwhile.
        self.refresh_rows()
        try:
            await self.model.load(key)
        except Exception as exc:
            self.notify(f"cannot load {key.split(':')[-1]}: {exc}", severity="error")
        self.refresh_rows()

    # ------------------------------------------------------------ actions
    def _open(self, key: str) -> None:
        assert self.model is not None
        if self.model.toggle_expand(key) and self.model.needs_load(key):
            self._load(key)
        else:
            self.refresh_rows(key)

    @on(DataTable.RowSelected, "#browser-table")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self._open(str(event.row_key.value))

    def action_toggle_open(self) -> None:
        key = self.current_key()
        if key is not None and self.model is not None:
            self._open(key)

    def action_expand(self) -> None:
        key = self.current_key()
        if key is not None and self.model is not None and not self.model.is_open(key):
            self._open(key)

    def action_collapse(self) -> None:
        key = self.current_key()
        if key is None or self.model is None:
            return
        if self.model.is_open(key):
            self._open(key)
            return
        # On a child: go to its parent row.
        rows = self.model.rows()
        index = next((i for i, r in enumerate(rows) if r.key == key), None)
        if index is None:
            return
        depth = rows[index].depth
        for i in range(index - 1, -1, -1):
            if rows[i].depth < depth:
                self.table.move_cursor(row=i)
                return

    def action_toggle_select(self) -> None:
        key = self.current_key()
        if key is None or self.model is None:
            return
        note = self.model.toggle(key)
        if note:
            self.notify(note)
        self.refresh_rows(key)
        table = self.table
        if table.cursor_row < table.row_count - 1:
            table.move_cursor(row=table.cursor_row + 1)

    def action_clear_selection(self) -> None:
        if self.model is not None:
            self.model.clear_selection()
            self.refresh_rows()

    def action_filter(self) -> None:
        self.query_one("#browser-filter", Input).focus()

    @on(Input.Changed, "#browser-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        if self.model is None or event.value == self.model.filter_text:
            return  # the filter put back as it was left: the cursor stays where it was
        self.model.filter_text = event.value
        self.refresh_rows()
        if event.value:
            found = self.model.jump(event.value)
            if found is None:
                rows = self.model.rows()
                found = next((i for i, r in enumerate(rows) if r.kind is not Kind.PROJECT), 0)
            if self.table.row_count:
                self.table.move_cursor(row=found)

    @on(Input.Submitted, "#browser-filter")
    def _filter_done(self) -> None:
        self.table.focus()

    def on_unmount(self) -> None:
        if self.model is not None:
            self.model.forget_unloaded()  # its loads stop with this screen

    def action_close(self) -> None:
        if self.query_one("#browser-filter", Input).has_focus:
            self.table.focus()
            return
        if self.model is not None:
            self.model.cursor = self.current_key() or ""
        self.dismiss(None)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "run_action_at":
            # Shown dimmed until something is selected, as the app's other useless keys.
            return True if self.model is not None and self.model.picked else None
        return True

    def action_run_action_at(self, index: int) -> None:
        if 0 <= index < len(self.actions):
            self.apply_action(self.actions[index])

    def apply_action(self, action: BrowserAction) -> None:
        if self.model is None:
            return
        selection = self.model.selection()
        if selection.empty:
            self.notify("Select sessions or scans first (Space).", severity="warning")
            return
        # The app's worker, not this screen's: leaving the browser, or starting another
        # action, must not cancel one still asking the server (a download being planned
        # was dropped without a word).
        self.app.run_worker(self._run(action, selection), group=ACTION_GROUP, exit_on_error=False)

    async def _run(self, action: BrowserAction, selection: Selection) -> None:
        app = self.app
        try:
            await action.run(self.xapp, selection)
        except Exception as exc:  # a failing action is shown, never crashes the browser
            app.notify(f"{action.label.rstrip('…')}: {exc}", severity="error")
