"""Command palette entries for the prearchive screen: only what makes sense right now."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

from xnat_tui.workflow.prearchive import SORT_KEYS, RowFilter

if TYPE_CHECKING:
    from xnat_tui.ui.screens.prearchive import PrearchiveScreen

_ACTIONS = (
    ("archive", "Archive / route selected sessions", "Archive (Unassigned: route first)"),
    ("relabel", "Relabel and archive", "Resolve a conflict under a new session label"),
    ("move", "Move selected sessions", "Move to another project's prearchive"),
    ("rebuild", "Rebuild selected sessions", "Rebuild the session documents"),
    ("delete", "Delete selected sessions", "Delete from the prearchive (asks first)"),
    ("refresh", "Refresh the prearchive", "Reload the list now"),
    ("select_all", "Select all shown / none", "Toggle the selection of every row shown"),
)


class PrearchiveCommands(Provider):
    def _commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        from xnat_tui.ui.screens.prearchive import PrearchiveScreen

        screen = self.screen
        if not isinstance(screen, PrearchiveScreen):
            return []
        out: list[tuple[str, str, Callable[[], object]]] = []
        for action, title, help_text in _ACTIONS:
            if screen.check_action(action, ()) is True:
                out.append((title, help_text, getattr(screen, f"action_{action}")))
        flt = screen.filter
        statuses = sorted({r.status for r in screen.rows.values() if r.status})
        for status in statuses:
            out.append(
                (
                    f"Show only {status}",
                    "Filter by status",
                    partial(_set, screen, RowFilter(flt.project, status, flt.text)),
                )
            )
        for project in sorted({r.project for r in screen.rows.values()}):
            out.append(
                (
                    f"Show only project {project}",
                    "Filter by project",
                    partial(_set, screen, RowFilter(project, flt.status, flt.text)),
                )
            )
        if flt != RowFilter(screen.scope or ""):
            out.append(
                (
                    "Clear filters",
                    "Show every session",
                    partial(_set, screen, RowFilter(screen.scope or "")),
                )
            )
        for key in SORT_KEYS:
            out.append((f"Sort by {key}", "Change the sort column", partial(_sort, screen, key)))
        return out

    async def discover(self) -> Hits:
        for title, help_text, callback in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)


def _set(screen: PrearchiveScreen, flt: RowFilter) -> None:
    screen.set_filter(flt)


def _sort(screen: PrearchiveScreen, key: str) -> None:
    screen.sort_key = key
    screen.set_filter(screen.filter)
