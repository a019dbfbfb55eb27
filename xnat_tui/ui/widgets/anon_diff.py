"""Tables of the anonymization preview: the series list and the before/after tag diff.

Rows are styled through component classes, so the colours come from the theme's
variables (``$error``, ``$warning``, ``$success``) and follow a theme switch. The kind
is also spelled out in its own column, so the diff reads the same without colour.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.theme import Theme
from textual.widgets import DataTable

from xnat_tui.dicom.dicomedit import TagChange
from xnat_tui.ui.anon_service import SeriesPreview, SeriesSample
from xnat_tui.ui.widgets.format import plain

_MARK = {"removed": "removed", "changed": "changed", "added": "added"}
_KIND_WIDTH = 7
_TAG_WIDTH = 11
_MIN_VALUE = 8


class AnonDiffTable(DataTable[Text]):
    """The changes of one sample file, in tag order, keyed by tag path."""

    COMPONENT_CLASSES = {"anon-diff--removed", "anon-diff--changed", "anon-diff--added"}

    DEFAULT_CSS = """
    AnonDiffTable > .anon-diff--removed { color: $text-error; }
    AnonDiffTable > .anon-diff--changed { color: $text-warning; }
    AnonDiffTable > .anon-diff--added { color: $text-success; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self.changes: list[TagChange] = []

    def on_mount(self) -> None:
        self.add_column("Change", key="kind", width=_KIND_WIDTH)
        self.add_column("Tag", key="tag")
        self.add_column("Keyword", key="keyword")
        self.add_column("Before", key="before")
        self.add_column("After", key="after")
        self._widths = self._column_widths()
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)

    def _theme_changed(self, theme: Theme) -> None:
        # Styles were resolved into the cells when they were added.
        self.call_after_refresh(self.show_changes, self.changes)

    def on_resize(self) -> None:
        widths = self._column_widths()
        if widths != self._widths:
            self._widths = widths
            self.show_changes(self.changes)

    def _column_widths(self) -> tuple[int, int]:
        """(keyword, value) widths that fit the pane; long values are clipped with …."""
        # Two cells of padding per column, a scrollbar.
        free = max(self.size.width - 2 * 5 - 1 - _KIND_WIDTH, 40) - _TAG_WIDTH
        keyword = max(11, min(24, free * 2 // 5))
        value = max(_MIN_VALUE, (free - keyword) // 2)
        return keyword, value

    @property
    def highlighted(self) -> TagChange | None:
        if not self.changes or self.cursor_row < 0 or self.cursor_row >= len(self.changes):
            return None
        return self.changes[self.cursor_row]

    def show_changes(self, changes: Sequence[TagChange]) -> None:
        self.changes = list(changes)
        self.clear()
        styles = {
            kind: self.get_component_rich_style(f"anon-diff--{kind}", partial=True)
            for kind in _MARK
        }
        keyword_width, value_width = self._widths
        for c in self.changes:
            style = styles[c.kind]
            # DICOM values: plain text, cut to the column in terminal cells.
            before = plain(c.before or "", style, limit=value_width)
            after = plain(c.after or "", style, limit=value_width)
            self.add_row(
                Text(_MARK[c.kind], style=style),
                plain(c.tag),
                plain(c.keyword or "—", limit=keyword_width),
                before,
                after,
                key=c.tag,
            )


class AnonSeriesTable(DataTable[Text]):
    """One row per series, keyed by SeriesInstanceUID.

    The Changes column counts the sample's tag changes; ⚠ marks a burned-in text risk
    ("excl": left out by default under this profile).
    """

    COMPONENT_CLASSES = {"anon-series--warn", "anon-series--error"}

    DEFAULT_CSS = """
    AnonSeriesTable > .anon-series--warn { color: $text-warning; }
    AnonSeriesTable > .anon-series--error { color: $text-error; }
    """

    def __init__(self, samples: Sequence[SeriesSample], *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row")
        self.samples = list(samples)

    def on_mount(self) -> None:
        # Changes before the description, so a narrow pane still shows the outcome.
        self.add_column("#", key="number")
        self.add_column("Changes", key="diff", width=9)
        self.add_column("Files", key="files")
        self.add_column("Mod", key="modality")
        self.add_column("Description", key="description")
        for s in self.samples:
            self.add_row(
                plain(s.label),
                Text("…"),
                Text(str(s.file_count), justify="right"),
                plain(s.modality),
                plain(s.description or "—", limit=64),
                key=s.series_uid,
            )

    @property
    def current_uid(self) -> str | None:
        if not self.samples or self.cursor_row < 0:
            return None
        return self.samples[min(self.cursor_row, len(self.samples) - 1)].series_uid

    def show_results(
        self, profile: str, previews: dict[str, SeriesPreview] | None, *, pending: bool = False
    ) -> None:
        """Fill the Diff column (change counts, burned-in warning, errors)."""
        warn = self.get_component_rich_style("anon-series--warn", partial=True)
        error = self.get_component_rich_style("anon-series--error", partial=True)
        for s in self.samples:
            item = previews.get(s.series_uid) if previews is not None else None
            verdict = s.burned_in(profile)
            risk = {"ok": "", "warn": " ⚠", "exclude": " ⚠ excl"}[verdict.action]
            if item is None:
                cell = Text(("…" if pending else "—") + risk, style=warn if risk else "")
            elif item.error:
                cell = Text("error" + risk, style=error)
            else:
                cell = Text(f"{len(item.changes)}{risk}", style=warn if risk else "")
            self.update_cell(s.series_uid, "diff", cell)
