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

_MARK = {"removed": "− removed", "changed": "~ changed", "added": "+ added"}


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
        self.add_column("Change", key="kind", width=9)
        self.add_column("Tag", key="tag")
        self.add_column("Keyword", key="keyword")
        self.add_column("Before", key="before")
        self.add_column("After", key="after")
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)

    def _theme_changed(self, theme: Theme) -> None:
        # Styles were resolved into the cells when they were added.
        self.call_after_refresh(self.show_changes, self.changes)

    def show_changes(self, changes: Sequence[TagChange]) -> None:
        self.changes = list(changes)
        self.clear()
        styles = {
            kind: self.get_component_rich_style(f"anon-diff--{kind}", partial=True)
            for kind in _MARK
        }
        for c in self.changes:
            style = styles[c.kind]
            self.add_row(
                Text(_MARK[c.kind], style=style),
                Text(c.tag),
                Text(c.keyword or "—"),
                Text("" if c.before is None else c.before, style=style if c.before else ""),
                Text("" if c.after is None else c.after, style=style if c.after else ""),
                key=c.tag,
            )


class AnonSeriesTable(DataTable[Text]):
    """One row per series, keyed by SeriesInstanceUID: number, description, files, risk."""

    COMPONENT_CLASSES = {"anon-series--warn", "anon-series--error"}

    DEFAULT_CSS = """
    AnonSeriesTable > .anon-series--warn { color: $text-warning; }
    AnonSeriesTable > .anon-series--error { color: $text-error; }
    """

    def __init__(self, samples: Sequence[SeriesSample], *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row")
        self.samples = list(samples)

    def on_mount(self) -> None:
        self.add_column("#", key="number")
        self.add_column("Description", key="description")
        self.add_column("Mod", key="modality")
        self.add_column("Files", key="files")
        self.add_column("Diff", key="diff")
        for s in self.samples:
            self.add_row(
                Text(s.label),
                Text(s.description or "—"),
                Text(s.modality),
                Text(str(s.file_count), justify="right"),
                Text("…"),
                key=s.series_uid,
            )

    @property
    def current_uid(self) -> str | None:
        if not self.samples or self.cursor_row < 0:
            return None
        return self.samples[min(self.cursor_row, len(self.samples) - 1)].series_uid

    def show_results(self, profile: str, previews: dict[str, SeriesPreview] | None) -> None:
        """Fill the Diff column (change counts, burned-in warning, errors)."""
        warn = self.get_component_rich_style("anon-series--warn", partial=True)
        error = self.get_component_rich_style("anon-series--error", partial=True)
        for s in self.samples:
            item = previews.get(s.series_uid) if previews is not None else None
            verdict = s.burned_in(profile)
            risk = {"ok": "", "warn": " ⚠", "exclude": " ⚠ excluded"}[verdict.action]
            if item is None:
                cell = Text("…" + risk, style=warn if risk else "")
            elif item.error:
                cell = Text("error" + risk, style=error)
            else:
                n = len(item.changes)
                cell = Text(f"{n} change{'s' if n != 1 else ''}{risk}", style=warn if risk else "")
            self.update_cell(s.series_uid, "diff", cell, update_width=True)
