"""Prearchive triage screen: list, inspect, archive/route/relabel, move, rebuild, delete.

The screen keeps the model (rows by url, selection, filter, sort) and renders it; what an
action means and how it runs lives in ``xnat_tui.workflow.prearchive``.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Input, Select, Static
from textual.worker import Worker, WorkerState

from xnat_tui.ui.screens.prearchive_archive import ArchiveDecision, ArchiveDialog
from xnat_tui.ui.screens.prearchive_delete import DeleteDialog
from xnat_tui.ui.screens.prearchive_move import MoveDialog
from xnat_tui.ui.screens.prearchive_results import ResultsDialog
from xnat_tui.ui.screens.prearchive_work import lazy
from xnat_tui.ui.widgets.format import plain
from xnat_tui.ui.widgets.prearchive_commands import PrearchiveCommands
from xnat_tui.ui.widgets.prearchive_detail import PrearchiveDetail
from xnat_tui.ui.widgets.prearchive_table import PrearchiveTable
from xnat_tui.workflow import prearchive as triage
from xnat_tui.workflow.prearchive import (
    Action,
    ActionRequest,
    ActionResult,
    ArchivePreview,
    ArchiveTarget,
    PrearchiveRow,
    RowFilter,
    SessionDetail,
    TriageOps,
)

STATUSES = ("READY", "CONFLICT", "ERROR", "RECEIVING", "BUILDING", "ARCHIVING", "MOVING")
SORTS = ("timestamp", "project", "subject", "name", "status", "scan_date")
_ACTIONS = {
    "archive": Action.ARCHIVE,
    "relabel": Action.ARCHIVE,
    "move": Action.MOVE,
    "rebuild": Action.REBUILD,
    "delete": Action.DELETE,
}


class PrearchiveScreen(Screen[None]):
    """``ops`` defaults to one built over ``app.client``; ``project`` narrows the listing."""

    HELP_GROUP = "Prearchive"
    COMMANDS = {PrearchiveCommands}

    DEFAULT_CSS = """
    PrearchiveScreen { layout: vertical; }
    PrearchiveScreen #prearchive-bar { height: auto; }
    PrearchiveScreen #prearchive-search { width: 1fr; }
    PrearchiveScreen #prearchive-project-filter { width: 24; }
    PrearchiveScreen #prearchive-status-filter { width: 24; }
    PrearchiveScreen #prearchive-status { height: 1; padding: 0 1; color: $text-muted; }
    PrearchiveScreen #prearchive-status.-error { color: $error; }
    PrearchiveScreen #prearchive-table { height: 1fr; }
    """

    BINDINGS = [
        Binding(
            "space",
            "toggle_select",
            "Select",
            tooltip="Select or unselect the highlighted session",
            id="prearchive.select",
        ),
        Binding(
            "a",
            "archive",
            "Archive/route",
            tooltip="Archive the selected sessions; Unassigned ones are routed to a project first",
            id="prearchive.archive",
        ),
        Binding(
            "l",
            "relabel",
            "Relabel",
            tooltip="Resolve a conflict: archive the highlighted session under another label",
            id="prearchive.relabel",
        ),
        Binding(
            "m",
            "move",
            "Move",
            tooltip="Move the selected sessions to another project's prearchive",
            id="prearchive.move",
        ),
        Binding(
            "b",
            "rebuild",
            "Rebuild",
            tooltip="Rebuild the session documents (after RECEIVING or ERROR)",
            id="prearchive.rebuild",
        ),
        Binding(
            "d",
            "delete",
            "Delete",
            tooltip="Delete the selected sessions (asks first, listing them)",
            id="prearchive.delete",
        ),
        Binding(
            "slash",
            "focus_search",
            "Filter",
            tooltip="Filter the table by any text",
            id="prearchive.filter",
        ),
        Binding(
            "r",
            "refresh",
            "Refresh",
            tooltip="Reload the prearchive now (it also refreshes every few seconds)",
            id="prearchive.refresh",
        ),
        Binding(
            "escape",
            "back",
            "Back",
            tooltip="Leave the filter bar, then go back to the main screen",
            id="prearchive.back",
        ),
        Binding(
            "A",
            "select_all",
            "Select all/none",
            show=False,
            tooltip="Select every row shown, or clear the selection",
            id="prearchive.select_all",
        ),
        Binding(
            "s",
            "cycle_sort",
            "Sort",
            tooltip="Sort by the next column",
            show=False,
            id="prearchive.sort",
        ),
        Binding(
            "S",
            "reverse_sort",
            "Reverse sort",
            tooltip="Reverse the sort order",
            show=False,
            id="prearchive.sort_reverse",
        ),
    ]

    def __init__(
        self,
        ops: TriageOps,
        *,
        project: str | None = None,
        refresh_interval: float = 10.0,
        overwrite: str = "none",
    ) -> None:
        super().__init__()
        self.ops = ops
        self.overwrite = overwrite
        self.scope = project
        self.refresh_interval = refresh_interval
        self.rows: dict[str, PrearchiveRow] = {}
        self.shown_rows: list[PrearchiveRow] = []
        self.selected: set[str] = set()
        self.in_flight: set[str] = set()
        self.filter = RowFilter(project=project or "")
        self.sort_key = "timestamp"
        self.sort_reverse = False
        self.details: dict[str, SessionDetail] = {}
        self.projects: list[str] = []
        self.last_error = ""
        self.polls = 0
        self.last_results: list[ActionResult] = []
        self._poll_timer: Timer | None = None
        self._detail_timer: Timer | None = None
        self._choices: dict[str, list[str]] = {}

    # --- wiring ----------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="prearchive-bar"):
            yield Input(placeholder="filter: any text  (/)", id="prearchive-search")
            yield Select[str](
                [], prompt="all projects", id="prearchive-project-filter", disabled=bool(self.scope)
            )
            yield Select[str](
                [(s, s) for s in STATUSES], prompt="all statuses", id="prearchive-status-filter"
            )
        yield Static("Loading the prearchive…", id="prearchive-status")
        yield PrearchiveTable(id="prearchive-table")
        yield PrearchiveDetail(id="prearchive-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "Prearchive" + (f" — {self.scope}" if self.scope else "")
        self.query_one(PrearchiveTable).focus()
        self.run_worker(lazy(self._load_projects), group="prearchive-projects", exit_on_error=False)
        self.action_refresh()

    def on_unmount(self) -> None:
        for timer in (self._poll_timer, self._detail_timer):
            if timer is not None:
                timer.stop()

    # --- polling ---------------------------------------------------------------------

    def action_refresh(self) -> None:
        if self._poll_timer is not None:
            self._poll_timer.stop()
            self._poll_timer = None
        self.run_worker(
            lazy(self._poll), group="prearchive-poll", exclusive=True, exit_on_error=False
        )

    async def _poll(self) -> None:
        ops = self.ops
        try:
            raw = await ops.list_prearchive(self.scope)
        except Exception as exc:  # noqa: BLE001 - shown in the status line, polling goes on
            self.last_error = str(exc) or type(exc).__name__
            self._set_status(f"Cannot list the prearchive: {self.last_error}", True)
        else:
            self.last_error = ""
            self.apply_rows(triage.parse_rows(raw))
        finally:
            self.polls += 1
            # Re-armed only after the poll finished, so a slow server never stacks polls.
            if self.is_attached and self.refresh_interval > 0:
                self._poll_timer = self.set_timer(self.refresh_interval, self.action_refresh)

    async def _load_projects(self) -> None:
        ops = self.ops
        try:
            self.projects = sorted(await ops.editable_projects())
        except Exception as exc:  # noqa: BLE001 - pickers fall back to the listed projects
            self.notify(f"Cannot list your projects: {exc}", severity="warning")
        self._update_project_filter()

    def apply_rows(self, rows: list[PrearchiveRow]) -> None:
        self.rows = {r.url: r for r in rows}
        self.selected &= set(self.rows)
        self.details = {u: d for u, d in self.details.items() if u in self.rows}
        self._update_project_filter()
        self._redraw()
        highlighted = self.highlighted
        if highlighted is not None:
            cached = self.details.get(highlighted.url)
            if cached is None or cached.row.raw != highlighted.raw:
                self._schedule_detail(0.01)

    def _redraw(self) -> None:
        self.shown_rows = triage.sort_rows(
            triage.filter_rows(self.rows.values(), self.filter), self.sort_key, self.sort_reverse
        )
        self.query_one(PrearchiveTable).sync(self.shown_rows, self.selected, self.in_flight)
        self._status_summary()
        self.refresh_bindings()
        if not self.shown_rows:
            self.query_one(PrearchiveDetail).clear_detail(
                "Nothing in the prearchive matches." if self.rows else "The prearchive is empty."
            )

    def _status_summary(self) -> None:
        if self.last_error:
            return
        counts: dict[str, int] = {}
        for r in self.rows.values():
            counts[r.status] = counts.get(r.status, 0) + 1
        by_status = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        text = (
            f"{len(self.shown_rows)} shown of {len(self.rows)}"
            + (f" ({by_status})" if by_status else "")
            + f" · {len(self.selected)} selected · sort {self.sort_key}"
            + (" ↓" if self.sort_reverse else " ↑")
        )
        if self.in_flight:
            text += f" · working on {len(self.in_flight)}…"
        self._set_status(text)

    def _set_status(self, text: str, error: bool = False) -> None:
        status = self.query_one("#prearchive-status", Static)
        status.update(plain(text, lines=True))
        status.set_class(error, "-error")

    def _update_project_filter(self) -> None:
        projects = set(self.projects) | {r.project for r in self.rows.values()}
        self._set_choices("#prearchive-project-filter", sorted(projects))
        statuses = set(STATUSES) | {r.status for r in self.rows.values() if r.status}
        self._set_choices("#prearchive-status-filter", sorted(statuses))

    def _set_choices(self, selector: str, names: list[str]) -> None:
        # Options follow what the server holds; the user's current choice survives.
        if self._choices.get(selector) == names:
            return
        self._choices[selector] = names
        select = self.query_one(selector, Select)
        current = select.value
        with self.prevent(Select.Changed):
            # Project ids and statuses from the server: plain text, never markup.
            select.set_options([(plain(n, limit=48), n) for n in names])
            if isinstance(current, str) and current in names:
                select.value = current

    # --- filter and sort -------------------------------------------------------------

    @on(Input.Changed, "#prearchive-search")
    def _search(self, event: Input.Changed) -> None:
        self.filter = RowFilter(self.filter.project, self.filter.status, event.value)
        self._redraw()

    @on(Input.Submitted, "#prearchive-search")
    def _search_done(self) -> None:
        self.query_one(PrearchiveTable).focus()

    @on(Select.Changed, "#prearchive-project-filter")
    def _project_filter(self, event: Select.Changed) -> None:
        value = event.value if isinstance(event.value, str) else ""
        self.filter = RowFilter(value or (self.scope or ""), self.filter.status, self.filter.text)
        self._redraw()

    @on(Select.Changed, "#prearchive-status-filter")
    def _status_filter(self, event: Select.Changed) -> None:
        value = event.value if isinstance(event.value, str) else ""
        self.filter = RowFilter(self.filter.project, value, self.filter.text)
        self._redraw()

    def set_filter(self, flt: RowFilter) -> None:
        """Programmatic filter (command palette): the filter bar shows it too."""
        self.filter = flt
        search = self.query_one("#prearchive-search", Input)
        with self.prevent(Input.Changed, Select.Changed):
            search.value = flt.text
            for selector, value in (
                ("#prearchive-project-filter", "" if self.scope else flt.project),
                ("#prearchive-status-filter", flt.status),
            ):
                select = self.query_one(selector, Select)
                if value and value not in self._choices.get(selector, []):
                    self._choices[selector] = sorted({*self._choices.get(selector, []), value})
                    select.set_options([(n, n) for n in self._choices[selector]])
                if value:
                    select.value = value
                else:
                    select.clear()
        self._redraw()

    def action_focus_search(self) -> None:
        self.query_one("#prearchive-search", Input).focus()

    def action_cycle_sort(self) -> None:
        self.sort_key = SORTS[(SORTS.index(self.sort_key) + 1) % len(SORTS)]
        self._redraw()

    def action_reverse_sort(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self._redraw()

    @on(DataTable.HeaderSelected, "#prearchive-table")
    def _header(self, event: DataTable.HeaderSelected) -> None:
        key = str(event.column_key.value)
        if key in SORTS:
            if key == self.sort_key:
                self.sort_reverse = not self.sort_reverse
            else:
                self.sort_key, self.sort_reverse = key, False
            self._redraw()

    # --- selection and highlight -----------------------------------------------------

    @property
    def highlighted(self) -> PrearchiveRow | None:
        url = self.query_one(PrearchiveTable).highlighted_url
        return self.rows.get(url) if url else None

    def targets(self) -> list[PrearchiveRow]:
        """Selected rows (in display order), else the highlighted one."""
        chosen = [r for r in self.shown_rows if r.url in self.selected]
        if chosen:
            return chosen
        row = self.highlighted
        return [row] if row is not None else []

    def action_toggle_select(self) -> None:
        row = self.highlighted
        if row is None or row.url in self.in_flight:
            return
        if row.url in self.selected:
            self.selected.discard(row.url)
        else:
            self.selected.add(row.url)
        table = self.query_one(PrearchiveTable)
        table.set_selected_mark(row.url, row.url in self.selected)
        if table.cursor_row < len(self.shown_rows) - 1:
            table.move_cursor(row=table.cursor_row + 1)
        self._status_summary()
        self.refresh_bindings()

    def action_select_all(self) -> None:
        urls = {r.url for r in self.shown_rows}
        if urls and urls <= self.selected:
            self.selected -= urls
        else:
            self.selected |= urls
        self._redraw()

    @on(DataTable.RowHighlighted, "#prearchive-table")
    def _highlighted(self) -> None:
        self.refresh_bindings()
        row = self.highlighted
        if row is None:
            return
        cached = self.details.get(row.url)
        detail = self.query_one(PrearchiveDetail)
        if cached is not None and cached.row.raw == row.raw:
            detail.show_detail(cached)
        else:
            detail.show_loading(row)
            self._schedule_detail()

    def _schedule_detail(self, delay: float = 0.15) -> None:
        # Debounced: holding an arrow key must not fire a request per row.
        if self._detail_timer is not None:
            self._detail_timer.stop()
        self._detail_timer = self.set_timer(delay, self._start_detail)

    def _start_detail(self) -> None:
        row = self.highlighted
        if row is None:
            return
        self.run_worker(
            lazy(self._load_detail, row),
            group="prearchive-detail",
            exclusive=True,
            exit_on_error=False,
        )

    async def _load_detail(self, row: PrearchiveRow) -> None:
        detail = await triage.load_detail(self.ops, row)
        self.details[row.url] = detail
        current = self.highlighted
        if current is not None and current.url == row.url:
            self.query_one(PrearchiveDetail).show_detail(detail)

    # --- actions ---------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        kind = _ACTIONS.get(action)
        if kind is None:
            return True
        rows = [r for r in self.targets() if r.url not in self.in_flight]
        if not rows:
            return None
        if action == "relabel":
            rows = [r for r in rows if not r.unassigned]
            if len(rows) != 1:
                return None
        possible = any(triage.action_blocker(r, kind) is None for r in rows)
        return True if possible else None

    def _actionable(
        self, kind: Action
    ) -> tuple[list[PrearchiveRow], list[tuple[PrearchiveRow, str]]]:
        ok: list[PrearchiveRow] = []
        skipped: list[tuple[PrearchiveRow, str]] = []
        for row in self.targets():
            if row.url in self.in_flight:
                skipped.append((row, "an action on it is still running"))
                continue
            why = triage.action_blocker(row, kind)
            if why:
                skipped.append((row, why))
            else:
                ok.append(row)
        return ok, skipped

    def _projects_for_pickers(self) -> list[str]:
        names = set(self.projects) | {r.project for r in self.rows.values()}
        names.discard(triage.UNASSIGNED)
        return sorted(names)

    async def _preview(
        self, items: Sequence[tuple[PrearchiveRow, ArchiveTarget]]
    ) -> list[ArchivePreview]:
        ops = self.ops
        return await triage.preview_many(ops, items)

    def action_archive(self) -> None:
        rows, skipped = self._actionable(Action.ARCHIVE)
        if not rows:
            self._explain(skipped)
            return
        mode = "route" if all(r.unassigned for r in rows) else "archive"
        self._open_archive(rows, skipped, mode)

    def action_relabel(self) -> None:
        rows, skipped = self._actionable(Action.ARCHIVE)
        rows = rows[:1]
        if not rows:
            self._explain(skipped)
            return
        self._open_archive(rows, [], "relabel")

    def _open_archive(
        self, rows: list[PrearchiveRow], skipped: list[tuple[PrearchiveRow, str]], mode: str
    ) -> None:
        overwrite = self.overwrite

        def done(decision: ArchiveDecision | None) -> None:
            if decision is None:
                return
            self._start_actions(
                "Archive", list(decision.requests), list(decision.skipped) + skipped
            )

        self.app.push_screen(
            ArchiveDialog(
                rows, self._projects_for_pickers(), self._preview, mode=mode, overwrite=overwrite
            ),
            done,
        )

    def action_move(self) -> None:
        rows, skipped = self._actionable(Action.MOVE)
        if not rows:
            self._explain(skipped)
            return

        def done(project: str | None) -> None:
            if project:
                requests = [ActionRequest(r, Action.MOVE, project=project) for r in rows]
                self._start_actions("Move", requests, skipped)

        self.app.push_screen(MoveDialog(rows, self._projects_for_pickers()), done)

    def action_rebuild(self) -> None:
        rows, skipped = self._actionable(Action.REBUILD)
        if not rows:
            self._explain(skipped)
            return
        self._start_actions("Rebuild", [ActionRequest(r, Action.REBUILD) for r in rows], skipped)

    def action_delete(self) -> None:
        rows, skipped = self._actionable(Action.DELETE)
        if not rows:
            self._explain(skipped)
            return
        self._set_status(f"Listing what {len(rows)} session(s) hold before deleting…")
        self.run_worker(
            lazy(self._confirm_delete, rows, skipped),
            group="prearchive-delete",
            exit_on_error=False,
        )

    async def _confirm_delete(
        self, rows: list[PrearchiveRow], skipped: list[tuple[PrearchiveRow, str]]
    ) -> None:
        ops = self.ops
        missing = [r for r in rows if not (d := self.details.get(r.url)) or not d.scans]
        # The confirmation names every scan that goes, so fetch what is not cached yet.
        details = {**self.details, **await triage.scans_of(ops, missing)}
        self._status_summary()

        def done(yes: bool | None) -> None:
            if yes:
                requests = [ActionRequest(r, Action.DELETE) for r in rows]
                self._start_actions("Delete", requests, skipped)

        self.app.push_screen(DeleteDialog(triage.delete_summary(rows, details)), done)

    def _explain(self, skipped: list[tuple[PrearchiveRow, str]]) -> None:
        if skipped:
            row, why = skipped[0]
            self.notify(
                f"{row.project}/{row.label}: {why}", title="Not possible now", severity="warning"
            )
        else:
            self.notify("Highlight or select a prearchive session first.", severity="warning")

    def _start_actions(
        self, title: str, requests: list[ActionRequest], skipped: list[tuple[PrearchiveRow, str]]
    ) -> None:
        skipped_results = [
            ActionResult(
                ActionRequest(row, requests[0].action if requests else Action.ARCHIVE),
                False,
                f"skipped: {why}",
            )
            for row, why in skipped
        ]
        if not requests:
            self._finish(title, skipped_results)
            return
        self.in_flight |= {r.row.url for r in requests}
        self._redraw()
        self.run_worker(
            lazy(self._run_actions, title, requests, skipped_results),
            group="prearchive-actions",
            exit_on_error=False,
        )

    async def _run_actions(
        self, title: str, requests: list[ActionRequest], skipped: list[ActionResult]
    ) -> list[ActionResult]:
        ops = self.ops
        done = 0

        def progress(result: ActionResult) -> None:
            nonlocal done
            done += 1
            self.in_flight.discard(result.url)
            self._redraw()
            self._set_status(f"{title}: {done}/{len(requests)} done — last: {result.message}")

        try:
            results = await triage.perform_many(ops, requests, on_result=progress)
        finally:
            self.in_flight -= {r.row.url for r in requests}
        self._finish(title, results + skipped)
        return results

    def _finish(self, title: str, results: list[ActionResult]) -> None:
        self.last_results = results
        # Archive previews depend on what the archive holds now: recompute on next view.
        self.details.clear()
        for r in results:
            if r.ok:
                self.selected.discard(r.url)
        failed = [r for r in results if not r.ok]
        ok = len(results) - len(failed)
        self.notify(
            f"{title}: {ok} of {len(results)} succeeded"
            + (f"; first failure: {failed[0].message}" if failed else ""),
            severity="error" if failed else "information",
        )
        if len(results) > 1 or failed:
            self.app.push_screen(ResultsDialog(title, results))
        self.action_refresh()

    def action_back(self) -> None:
        table = self.query_one(PrearchiveTable)
        if self.focused is not None and self.focused is not table:
            # First escape leaves the filter bar; the next one leaves the screen.
            table.focus()
            return
        if self.in_flight:
            # The action workers belong to this screen: leaving would cancel them midway.
            self.notify(
                f"{len(self.in_flight)} session(s) are still being processed; wait for the "
                "results before leaving.",
                severity="warning",
            )
            return
        self.app.pop_screen()

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        # One place where an unexpected worker failure becomes visible instead of silent.
        if event.state is WorkerState.ERROR:
            error = event.worker.error
            self.notify(f"Prearchive: {error}", title="Unexpected error", severity="error")
