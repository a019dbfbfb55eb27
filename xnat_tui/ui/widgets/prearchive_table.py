"""The prearchive table: rows keyed by the entry's url, updated in place on each poll."""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet

from rich.text import Text

from xnat_tui.ui.widgets.cached_table import CachedDataTable
from xnat_tui.ui.widgets.format import plain
from xnat_tui.workflow.prearchive import PrearchiveRow

# (column key, header, source column in XNAT's row)
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("sel", " ", ""),
    ("project", "Project", "project"),
    ("timestamp", "Timestamp", "timestamp"),
    ("subject", "Subject", "subject"),
    ("name", "Session", "name"),
    ("tag", "StudyInstanceUID", "tag"),
    ("status", "Status", "status"),
    ("scan_date", "Scan date", "scan_date"),
    ("uploaded", "Uploaded", "uploaded"),
    ("autoarchive", "Autoarchive", "autoarchive"),
    ("SOURCE", "Source", "SOURCE"),
)

CELL_LIMIT = 48

CHECKED = "☑"
UNCHECKED = "☐"
WORKING = "⋯"

_STATUS_STYLE = {
    "READY": "green",
    "CONFLICT": "bold yellow",
    "ERROR": "bold red",
    "RECEIVING": "cyan",
    "RECEIVING_INTERRUPT": "cyan",
}


def _cell(row: PrearchiveRow, key: str, source: str, selected: bool, busy: bool) -> str | Text:
    """A cell as shown: the server's values as plain text (never markup), each at most
    ``CELL_LIMIT`` cells wide so one long value cannot push the others off screen."""
    if key == "sel":
        return WORKING if busy else CHECKED if selected else UNCHECKED
    if key == "project":
        return plain(row.project, limit=CELL_LIMIT)
    value = row.get(source)
    if key == "status":
        return plain(value, _STATUS_STYLE.get(value, "italic"), limit=CELL_LIMIT)
    if key == "tag" and len(value) > 28:
        # Full UID is in the detail pane; the tail is what differs between studies.
        return plain("…" + value[-27:])
    if key in ("uploaded", "scan_date"):
        return plain(value.removesuffix(".0"), limit=CELL_LIMIT)
    return plain(value, limit=CELL_LIMIT)


def _same(a: str | Text, b: str | Text) -> bool:
    if isinstance(a, Text) and isinstance(b, Text):
        return a.plain == b.plain and a.style == b.style
    return a == b


class PrearchiveTable(CachedDataTable[str | Text]):
    """Shows rows in the order given; keeps cursor on the same entry across updates."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._shown: list[str] = []
        self._cells: dict[str, tuple[str | Text, ...]] = {}

    def on_mount(self) -> None:
        for key, header, _ in COLUMNS:
            self.add_column(header, key=key)

    @property
    def shown_urls(self) -> list[str]:
        return list(self._shown)

    @property
    def highlighted_url(self) -> str | None:
        if not self._shown or self.cursor_row < 0 or self.cursor_row >= len(self._shown):
            return None
        return self._shown[self.cursor_row]

    def sync(
        self,
        rows: Sequence[PrearchiveRow],
        selected: set[str],
        busy: AbstractSet[str] = frozenset(),
    ) -> None:
        """Bring the table to ``rows``: update changed cells, add/remove rows as needed.

        ``busy`` rows (an action of ours is running on them) show ``⋯`` instead of a box.
        """
        wanted = [r.url for r in rows]
        keep = self.highlighted_url
        cursor_index = self.cursor_row
        fresh = {
            r.url: tuple(
                _cell(r, k, src, r.url in selected, r.url in busy) for k, _, src in COLUMNS
            )
            for r in rows
        }
        with self.app.batch_update():
            survivors = [u for u in self._shown if u in fresh]
            if wanted[: len(survivors)] == survivors:
                # Removals and entries appended at the end keep the others in place.
                self._remove_gone(set(wanted))
                self._update_cells({u: fresh[u] for u in survivors})
                for url in wanted[len(survivors) :]:
                    self._add(url, fresh[url])
            else:
                self._rebuild(wanted, fresh)
            self._restore_cursor(keep, cursor_index)

    def _update_cells(self, fresh: dict[str, tuple[str | Text, ...]]) -> None:
        for url, cells in fresh.items():
            old = self._cells.get(url)
            if old is None:
                continue
            for i, (key, _, _) in enumerate(COLUMNS):
                if not _same(old[i], cells[i]):
                    self.update_cell(url, key, cells[i], update_width=True)
            self._cells[url] = cells

    def _remove_gone(self, wanted: set[str]) -> None:
        for url in [u for u in self._shown if u not in wanted]:
            self.remove_row(url)
            self._cells.pop(url, None)
        self._shown = [u for u in self._shown if u in wanted]

    def _add(self, url: str, cells: tuple[str | Text, ...]) -> None:
        self.add_row(*cells, key=url)
        self._cells[url] = cells
        self._shown.append(url)

    def _rebuild(self, wanted: list[str], fresh: dict[str, tuple[str | Text, ...]]) -> None:
        # Only when the order changes (new sort, filter or new entries in the middle).
        self.clear()
        self._shown = []
        self._cells = {}
        for url in wanted:
            self._add(url, fresh[url])

    def _restore_cursor(self, url: str | None, index: int) -> None:
        if not self._shown:
            return
        if url is not None and url in self._shown:
            target = self._shown.index(url)
        else:
            target = min(max(index, 0), len(self._shown) - 1)
        if target != self.cursor_row:
            self.move_cursor(row=target, animate=False)

    def set_selected_mark(self, url: str, selected: bool) -> None:
        if url not in self._cells:
            return
        mark = CHECKED if selected else UNCHECKED
        self.update_cell(url, "sel", mark)
        cells = list(self._cells[url])
        cells[0] = mark
        self._cells[url] = tuple(cells)
