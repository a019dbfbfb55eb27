"""CachedDataTable draws exactly what DataTable draws, and re-renders only changed cells."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import App, ComposeResult
from textual.containers import Horizontal
from textual.widgets import DataTable

from xnat_tui.ui.widgets.cached_table import CachedDataTable

COLUMNS = (("name", 10), ("state", 8), ("files", 6))


class TwoTables(App[None]):
    def compose(self) -> ComposeResult:
        with Horizontal():
            plain: DataTable[str | Text] = DataTable(id="plain", cursor_type="row")
            cached: DataTable[str | Text] = CachedDataTable(id="cached", cursor_type="row")
            for table in (plain, cached):
                table.styles.width = 40
                for key, width in COLUMNS:
                    table.add_column(key.title(), key=key, width=width)
            yield plain
            yield cached

    def tables(self) -> list[DataTable[str | Text]]:
        return [self.query_one("#plain", DataTable), self.query_one("#cached", DataTable)]


def lines(table: DataTable[str | Text]) -> list[str]:
    return [table.render_line(y).text for y in range(table.size.height)]


async def test_updates_removals_and_clears_draw_like_datatable() -> None:
    app = TwoTables()
    async with app.run_test(size=(90, 14)) as pilot:
        for table in app.tables():
            for i in range(6):
                table.add_row(f"s{i}", Text("new", style="bold"), str(i), key=f"k{i}")
        await pilot.pause()
        plain, cached = app.tables()
        assert lines(cached) == lines(plain)

        for table in app.tables():
            table.update_cell("k2", "files", "99")
            table.update_cell("k4", "state", Text("verified", style="green"))
            table.move_cursor(row=3)
        await pilot.pause()
        assert lines(cached) == lines(plain)
        assert any("99" in line for line in lines(cached))
        assert any("verified" in line for line in lines(cached))

        # A removed row re-added under the same key must not show its old cells.
        for table in app.tables():
            table.remove_row("k1")
            table.add_row("again", "queued", "7", key="k1")
        await pilot.pause()
        assert lines(cached) == lines(plain)
        assert any("again" in line for line in lines(cached))

        for table in app.tables():
            table.clear()
            table.add_row("s0", "other", "1", key="k0")
        await pilot.pause()
        assert lines(cached) == lines(plain)
        assert not any("s5" in line for line in lines(cached))


async def test_an_update_renders_only_the_changed_cell() -> None:
    app = TwoTables()
    async with app.run_test(size=(90, 14)) as pilot:
        cached = app.tables()[1]
        for i in range(8):
            cached.add_row(f"s{i}", "new", str(i), key=f"k{i}")
        await pilot.pause()
        lines(cached)
        rendered: list[tuple[int, int]] = []
        original = DataTable._render_cell

        def spy(self: DataTable[str], row: int, column: int, *args: object) -> object:
            if self is cached and row >= 0:
                rendered.append((row, column))
            return original(self, row, column, *args)  # type: ignore[arg-type]

        DataTable._render_cell = spy  # type: ignore[assignment,method-assign]
        try:
            cached.update_cell("k5", "files", "500")
            await pilot.pause()
            text = lines(cached)
        finally:
            DataTable._render_cell = original  # type: ignore[method-assign]
        assert any("500" in line for line in text)
        assert rendered == [(5, 2)]


def styled(table: DataTable[str | Text]) -> list[list[tuple[str, str]]]:
    return [
        [(seg.text, str(seg.style)) for seg in table.render_line(y)]
        for y in range(table.size.height)
    ]


async def _five_rows(
    app: TwoTables, pilot: Any
) -> tuple[DataTable[str | Text], DataTable[str | Text]]:
    """Both tables with the same five rows and the cursor on the third, unfocused."""
    for table in app.tables():
        for i in range(5):
            table.add_row(f"s{i}", "new", str(i), key=f"k{i}")
        table.move_cursor(row=2)
    app.set_focus(None)  # the focused table is drawn differently
    await pilot.pause()
    plain, cached = app.tables()
    return plain, cached


async def test_theme_and_setting_changes_restyle_like_datatable() -> None:
    app = TwoTables()
    async with app.run_test(size=(90, 14)) as pilot:
        plain, cached = await _five_rows(app, pilot)
        assert styled(cached) == styled(plain)
        before = styled(cached)

        app.theme = "textual-light" if app.theme != "textual-light" else "nord"
        await pilot.pause()
        assert styled(cached) == styled(plain)
        assert styled(cached) != before  # the cursor row and cells really changed colour

        for setting, value in (
            ("zebra_stripes", True),
            ("cell_padding", 3),
            ("show_cursor", False),
        ):
            for table in app.tables():
                setattr(table, setting, value)
            await pilot.pause()
            assert styled(cached) == styled(plain), setting


async def test_a_stylesheet_change_restyles_like_datatable() -> None:
    """A CSS rule for the cursor alone leaves the theme (and so the base style) as it
    was: only dropping the renders on a style update makes the cached table follow."""
    app = TwoTables()
    async with app.run_test(size=(90, 14)) as pilot:
        plain, cached = await _five_rows(app, pilot)
        before = styled(cached)
        app.stylesheet.add_source(
            "DataTable > .datatable--cursor { background: red; color: yellow; }",
            read_from=("test", ""),
        )
        app.stylesheet.reparse()
        app.stylesheet.update(app)
        await pilot.pause()
        assert styled(plain) != before  # the rule really changed the cursor row
        assert styled(cached) == styled(plain)
