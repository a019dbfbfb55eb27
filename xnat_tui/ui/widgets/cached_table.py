"""A DataTable that re-renders only the cells that changed.

Textual's DataTable keys its render caches on one table-wide update counter, so
changing a single cell (a transfer's byte count, a session's file count during a
scan) re-renders every visible cell: ~15-30 ms for the Sessions pane, several times
a second while a scan and uploads run, which is what made the interface stutter
(benchmarks/ui_lag.py). Here each rendered cell is also cached under the version of
that cell, so a repaint after an update renders the changed cells and reuses the rest.

Rows are cached the same way, under the versions of their cells. Relies on
DataTable's private ``_render_cell``, ``_render_line_in_row``, ``_clear_caches`` and
its location maps; textual is pinned in pyproject.toml and
tests/ui/test_cached_table.py checks the rendering against a plain DataTable.
"""

from __future__ import annotations

import itertools
from typing import Any

from rich.segment import Segment
from rich.style import Style
from textual.cache import LRUCache
from textual.coordinate import Coordinate
from textual.widgets import DataTable
from textual.widgets.data_table import CellType, ColumnKey, RowKey

SegmentLines = list[list[Segment]]

_versions = itertools.count(1)


class CachedDataTable(DataTable[CellType]):
    """DataTable whose cell renders survive updates of other cells."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Version of a row's contents as added, and of each cell updated since.
        self._row_versions: dict[RowKey, int] = {}
        self._cell_versions: dict[tuple[RowKey, ColumnKey], int] = {}
        # Version of the latest update of any cell of a row.
        self._row_stamps: dict[RowKey, int] = {}
        self._rendered_cells: LRUCache[tuple[Any, ...], SegmentLines] = LRUCache(10_000)
        self._rendered_rows: LRUCache[tuple[Any, ...], tuple[SegmentLines, SegmentLines]] = (
            LRUCache(1_000)
        )

    def add_row(
        self,
        *cells: CellType,
        height: int | None = 1,
        key: str | None = None,
        label: Any = None,
    ) -> RowKey:
        row_key = super().add_row(*cells, height=height, key=key, label=label)
        self._row_versions[row_key] = next(_versions)
        return row_key

    def update_cell(
        self,
        row_key: RowKey | str,
        column_key: ColumnKey | str,
        value: CellType,
        *,
        update_width: bool = False,
    ) -> None:
        super().update_cell(row_key, column_key, value, update_width=update_width)
        rk = RowKey(row_key) if isinstance(row_key, str) else row_key
        ck = ColumnKey(column_key) if isinstance(column_key, str) else column_key
        self._cell_versions[(rk, ck)] = self._row_stamps[rk] = next(_versions)

    def remove_row(self, row_key: RowKey | str) -> None:
        super().remove_row(row_key)
        rk = RowKey(row_key) if isinstance(row_key, str) else row_key
        # A re-added row gets a new version anyway; this only keeps the dicts small
        # (the prearchive table replaces rows on every refresh).
        self._row_versions.pop(rk, None)
        self._row_stamps.pop(rk, None)
        for column_key in self.columns:
            self._cell_versions.pop((rk, column_key), None)

    def clear(self, columns: bool = False) -> Any:
        result = super().clear(columns)
        self._forget()
        return result

    def _clear_caches(self) -> None:
        # DataTable clears its caches when a setting that changes every cell's look
        # flips (cursor shown, zebra stripes, padding...). Our keys already tell
        # those settings apart; dropping ours too frees renders no longer shown.
        super()._clear_caches()
        self._drop_rendered()

    def notify_style_update(self) -> None:
        # A theme or CSS change restyles the cursor and stripes, which the keys
        # below do not see.
        super().notify_style_update()
        self._drop_rendered()

    def _drop_rendered(self) -> None:
        # Also called from DataTable.__init__ (reactive watchers), before ours ran.
        for cache in (
            getattr(self, "_rendered_cells", None),
            getattr(self, "_rendered_rows", None),
        ):
            if cache is not None:
                cache.clear()

    def _forget(self) -> None:
        self._row_versions.clear()
        self._cell_versions.clear()
        self._row_stamps.clear()
        self._rendered_cells.clear()
        self._rendered_rows.clear()

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ) -> SegmentLines:
        if row_index < 0 or column_index < 0:
            # Header and label cells: rare, left to DataTable.
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        row_key = self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        row = self.rows.get(row_key) if row_key is not None else None
        if row_key is None or row is None or column_key is None:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        key = (
            row_key,
            column_key,
            # The position is baked into the cell's style (mouse meta).
            row_index,
            column_index,
            self._row_versions.get(row_key, 0),
            self._cell_versions.get((row_key, column_key), 0),
            base_style,
            width,
            row.height,
            cursor,
            hover,
            self._show_hover_cursor,
            self.show_cursor,
            self._pseudo_class_state,
            self.cursor_foreground_priority,
            self.cursor_background_priority,
            self.cell_padding,
            self.fixed_rows,
            self.fixed_columns,
        )
        lines = self._rendered_cells.get(key)
        if lines is None:
            lines = super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
            self._rendered_cells[key] = lines
        return lines

    def _render_line_in_row(
        self,
        row_key: RowKey,
        line_no: int,
        base_style: Style,
        cursor_location: Coordinate,
        hover_location: Coordinate,
    ) -> tuple[SegmentLines, SegmentLines]:
        # Rows are cached too, for the usual row cursor without labels or fixed columns:
        # then a row's look depends only on its cells, its position and whether the
        # cursor or the mouse is on it.
        row_index = self._row_locations.get(row_key)
        if (
            row_index is None
            or self.cursor_type != "row"
            or self._labelled_row_exists
            or self.fixed_columns
        ):
            return super()._render_line_in_row(
                row_key, line_no, base_style, cursor_location, hover_location
            )
        key = (
            row_key,
            line_no,
            row_index,
            self._row_versions.get(row_key, 0),
            self._row_stamps.get(row_key, 0),
            base_style,
            cursor_location.row == row_index,
            hover_location.row == row_index,
            self.show_cursor,
            self._show_hover_cursor,
            self._pseudo_class_state,
            tuple(column.get_render_width(self) for column in self.ordered_columns),
            self.size.width,
            self.background_colors[1],
            self.zebra_stripes,
            self.cell_padding,
        )
        lines = self._rendered_rows.get(key)
        if lines is None:
            lines = super()._render_line_in_row(
                row_key, line_no, base_style, cursor_location, hover_location
            )
            self._rendered_rows[key] = lines
        return lines
