"""The browser's "Copy to project…" / "Move to project…": destination, labels, settings.

:class:`CopyScreen` shows one row per selected session with the destination subject and
session labels (from the templates, or typed for the highlighted row) and what the
destination would make of it — new, merge, conflict, invalid, subject to be created,
not permitted — checked live in the destination by the upload planner and
``workflow.targets.classify`` (through ``CopySession.check``), as in the upload Labels
pane. It also says what the destination does differently (series filter, anonymization
script). Ctrl+S hands the checked plan to :func:`start_copy`, which for a move asks for
the source project's ID to be typed (``copy_confirm.MoveConfirmScreen``), then queues the
jobs on the copy engine of the Transfers panel.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Label, Select, Static

from xnat_tui.transfer.copy_engine import CopyEngine
from xnat_tui.transfer.kinds import JobKind
from xnat_tui.transfer.types import Destination
from xnat_tui.ui.screens.base import AppScreen
from xnat_tui.ui.screens.copy_confirm import MoveConfirmScreen
from xnat_tui.ui.widgets.format import assemble, plain
from xnat_tui.units import human_bytes
from xnat_tui.workflow import copy as copying
from xnat_tui.workflow.browse import Selection
from xnat_tui.workflow.targets import TargetKind

if TYPE_CHECKING:
    from xnat_tui.ui.app import XnatTuiApp

COLUMNS = ("Source", "→ Subject", "→ Session", "Status", "Detail")
# Status colours, as the upload Sessions table shows target kinds.
KIND_STYLE = {
    TargetKind.NEW: "green",
    TargetKind.MERGE: "cyan",
    TargetKind.CONFLICT: "yellow",
    TargetKind.INVALID: "red",
    TargetKind.NOT_PERMITTED: "red",
    TargetKind.ROUTED: "yellow",
}
WHERE = [
    ("the project's setting", Destination.PROJECT.value),
    ("prearchive", Destination.PREARCHIVE.value),
    ("archive", Destination.ARCHIVE.value),
]
ANON = [("none", "none"), ("destination's scripts (xnat)", "xnat"), ("basic", "basic")]


@dataclass
class CopyRequest:
    """What the screen hands back: the checked plan, ready to queue."""

    session: copying.CopySession
    checked: copying.Checked
    source: str
    dest: str
    move: bool


class CopyScreen(AppScreen, Screen[CopyRequest | None]):
    HELP_GROUP = "Copy / move"
    DEFAULT_CSS = """
    CopyScreen { layout: vertical; }
    CopyScreen > Vertical { height: auto; }
    CopyScreen .copy-row { height: auto; }
    CopyScreen .copy-row Label { padding: 0 1; }
    CopyScreen .copy-inputs Label { padding: 1 1 0 1; }
    CopyScreen #copy-detail { height: auto; padding: 0 1; }
    CopyScreen .copy-row Select { width: 1fr; }
    CopyScreen .copy-row Input { width: 1fr; }
    CopyScreen #copy-table { height: 1fr; }
    CopyScreen #copy-notes { height: auto; max-height: 8; padding: 0 1; }
    CopyScreen #copy-status { height: 1; padding: 0 1; color: $text-muted; }
    """
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="copy.cancel"),
        Binding(
            "ctrl+s",
            "submit",
            "Go",
            tooltip="Queue the copies (a move asks first)",
            id="copy.submit",
        ),
        Binding(
            "ctrl+r",
            "relabel",
            "Relabel",
            tooltip="The highlighted row's labels from the templates again",
            id="copy.relabel",
        ),
    ]

    def __init__(
        self,
        selection: Selection,
        session: copying.CopySession,
        *,
        move: bool,
        where: Destination = Destination.PROJECT,
        anonymization: str = "none",
        subject_template: str = copying.SUBJECT_TEMPLATE,
        session_template: str = copying.SESSION_TEMPLATE,
    ) -> None:
        super().__init__()
        self.selection = selection
        self.session = session
        self.move = move
        self.where = where
        self.anonymization = anonymization
        self.templates = (subject_template, session_template)
        self.sources: list[copying.Source] = []
        self.dest: str = ""
        self.overrides: dict[str, copying.Target] = {}
        self.checked: copying.Checked | None = None
        self.notes: list[str] = []
        self.status_line = ""
        # The row whose labels the row fields hold (None: not filled yet).
        self._row_in_fields: str | None = None

    @property
    def verb(self) -> str:
        return "Move" if self.move else "Copy"

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical():
            yield Static(
                assemble(f"{self.verb} ", (self.selection.describe(), "b"), " to another project"),
                id="copy-title",
            )
            with Horizontal(classes="copy-row"):
                yield Label("To project")
                yield Select[str]([], prompt="destination project", id="copy-dest", compact=True)
                yield Label("Into")
                yield Select(WHERE, value=self.where.value, allow_blank=False, id="copy-where",
                             compact=True)  # fmt: skip
                yield Label("Anonymize")
                yield Select(ANON, value=self.anonymization, allow_blank=False, id="copy-anon",
                             compact=True)  # fmt: skip
            with Horizontal(classes="copy-row copy-inputs"):
                yield Label("Subject")
                yield Input(self.templates[0], id="copy-subject-tpl")
                yield Label("Session")
                yield Input(self.templates[1], id="copy-session-tpl")
        table: DataTable[object] = DataTable(id="copy-table", cursor_type="row")
        yield table
        yield Static("", id="copy-detail")
        with Horizontal(classes="copy-row copy-inputs"):
            yield Label("Row subject")
            yield Input(id="copy-row-subject")
            yield Label("Row session")
            yield Input(id="copy-row-session")
        yield Static("", id="copy-notes")
        yield Static("", id="copy-status")
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"{self.verb} to project"
        for label in COLUMNS:
            self.table.add_column(label, key=label)
        self._load()

    # ------------------------------------------------------------ helpers
    @property
    def table(self) -> DataTable[object]:
        return self.query_one("#copy-table", DataTable)

    def status(self, text: str) -> None:
        self.status_line = text
        self.query_one("#copy-status", Static).update(plain(text))

    def _value(self, selector: str) -> str:
        value = self.query_one(selector, Select).value
        return value if isinstance(value, str) else ""

    def _current(self) -> copying.Source | None:
        table = self.table
        if not table.row_count or not self.sources:
            return None
        return self.sources[min(table.cursor_row, len(self.sources) - 1)]

    # ------------------------------------------------------------ loading
    @work(group="copy-load", exclusive=True, exit_on_error=False)
    async def _load(self) -> None:
        self.status("listing the selected sessions and the projects you may copy to…")
        try:
            self.sources = await self.session.selected(self.selection)
            projects = await self.session.destinations(self.selection.project)
        except Exception as exc:
            self.status(f"cannot read the selection: {exc}")
            return
        self.query_one("#copy-dest", Select).set_options([(plain(p), p) for p in projects])
        files = sum(s.session.file_count for s in self.sources)
        size = sum(s.session.size for s in self.sources)
        self.status(
            f"{len(self.sources)} session(s), {files} file(s), {human_bytes(size)}: "
            "choose the destination project"
        )
        self._show_rows()
        self.query_one("#copy-dest", Select).focus()

    # ------------------------------------------------------------ live checks
    def targets(self) -> list[copying.Target | str]:
        return self.session.targets(
            self.sources,
            subject_template=self.query_one("#copy-subject-tpl", Input).value,
            session_template=self.query_one("#copy-session-tpl", Input).value,
            overrides=self.overrides,
        )

    def recheck(self) -> None:
        if not self.sources:
            return
        self.session.settings = replace(
            self.session.settings,
            destination=Destination(self._value("#copy-where") or "project"),
            anonymization=self._value("#copy-anon") or "none",
        )
        self._show_rows()
        if self.dest:
            self._check(self.dest)

    @work(group="copy-check", exclusive=True, exit_on_error=False)
    async def _check(self, dest: str) -> None:
        self.status(f"checking in {dest}…")
        try:
            checked = await self.session.check(self.sources, self.targets(), dest, move=self.move)
        except Exception as exc:
            self.checked = None
            self.status(f"cannot check the destination: {exc}")
            return
        if dest != self.dest:
            return  # the user picked another project meanwhile
        self.checked = checked
        self._show_rows()
        ready = len(checked.queueable)
        blocked = len(checked.rows) - ready
        self.status(
            f"{ready} of {len(checked.rows)} session(s) can be {'moved' if self.move else 'copied'}"
            + (f"; {blocked} cannot (see Detail)" if blocked else "")
            + ("  ctrl+s: go" if ready else "")
        )

    @work(group="copy-notes", exclusive=True, exit_on_error=False)
    async def _differences(self, dest: str) -> None:
        try:
            notes = await self.session.differences(self.selection.project, dest)
        except Exception as exc:
            notes = [f"cannot compare the projects' settings: {exc}"]
        if dest == self.dest:
            self.notes = notes
            self._show_notes()

    def _show_notes(self) -> None:
        lines = [f"• {n}" for n in self.notes]
        if self.checked is not None and self.checked.refusal:
            lines.insert(0, f"✗ not permitted: {self.checked.refusal}")
        self.query_one("#copy-notes", Static).update(plain("\n".join(lines), lines=True))

    def _show_rows(self) -> None:
        table = self.table
        row = table.cursor_row
        targets = self.targets()
        checks = {r.source.experiment.id: r for r in self.checked.rows} if self.checked else {}
        with self.app.batch_update():
            table.clear()
            for source, target in zip(self.sources, targets, strict=True):
                check = checks.get(source.experiment.id)
                subject, label = (
                    ("", "") if isinstance(target, str) else (target.subject, target.label)
                )
                if check is None:
                    status, detail = (
                        Text("…", style="dim"),
                        plain(target if isinstance(target, str) else "choose a destination"),
                    )
                else:
                    kind = check.assessment.kind
                    word = str(kind)
                    if check.job.new_subject and kind.queueable:
                        word += " +subject"
                    status = Text(word, style=KIND_STYLE.get(kind, ""))
                    detail = plain(check.assessment.detail)
                table.add_row(
                    plain(f"{source.subject}/{source.label}"),
                    plain(subject),
                    plain(label),
                    status,
                    detail,
                    key=source.experiment.id,
                )
        if table.row_count:
            table.move_cursor(row=min(row, table.row_count - 1))
        current = self._current()
        if current is not None:
            self._show_detail(current)
        self._show_notes()

    # ------------------------------------------------------------ events
    @on(Select.Changed, "#copy-dest")
    def _dest_changed(self, event: Select.Changed) -> None:
        self.dest = event.value if isinstance(event.value, str) else ""
        self.checked = None
        self.notes = []
        if self.dest:
            self._differences(self.dest)
        self.recheck()

    @on(Select.Changed, "#copy-where")
    @on(Select.Changed, "#copy-anon")
    def _setting_changed(self) -> None:
        self.recheck()

    @on(Input.Changed, "#copy-subject-tpl")
    @on(Input.Changed, "#copy-session-tpl")
    def _template_changed(self) -> None:
        self.recheck()

    @on(DataTable.RowHighlighted, "#copy-table")
    def _row_highlighted(self) -> None:
        source = self._current()
        if source is None:
            return
        self._show_detail(source)
        # A redraw of the table (a check's result landing) highlights the same row again:
        # the row fields keep what the user is typing; only another row refills them.
        if source.experiment.id != self._row_in_fields:
            self._fill_row_fields(source)

    def _fill_row_fields(self, source: copying.Source) -> None:
        target = self.targets()[self.sources.index(source)]
        subject, label = ("", "") if isinstance(target, str) else (target.subject, target.label)
        self._row_in_fields = source.experiment.id
        self.query_one("#copy-row-subject", Input).value = subject
        self.query_one("#copy-row-session", Input).value = label

    def _show_detail(self, source: copying.Source) -> None:
        """The highlighted row's verdict in full (the Detail column is cut to fit)."""
        check = None
        if self.checked is not None:
            check = next(
                (r for r in self.checked.rows if r.source.experiment.id == source.experiment.id),
                None,
            )
        text = Text(f"{source.subject}/{source.label}: ", style="b")
        if check is None:
            text.append("not checked yet", style="dim")
        else:
            kind = check.assessment.kind
            text.append(str(kind), style=KIND_STYLE.get(kind, ""))
            text.append(" — ")
            text.append_text(plain(check.assessment.detail))
        self.query_one("#copy-detail", Static).update(text)

    @on(Input.Changed, "#copy-row-subject")
    @on(Input.Changed, "#copy-row-session")
    def _row_edited(self) -> None:
        source = self._current()
        if source is None:
            return
        typed = copying.Target(
            self.query_one("#copy-row-subject", Input).value.strip(),
            self.query_one("#copy-row-session", Input).value.strip(),
        )
        # Filled in from the row itself (cursor moved, table redrawn): nothing typed.
        if typed == self.targets()[self.sources.index(source)]:
            return
        self.overrides[source.experiment.id] = typed
        self.recheck()

    def action_relabel(self) -> None:
        source = self._current()
        if source is not None and self.overrides.pop(source.experiment.id, None) is not None:
            self.recheck()
            self._fill_row_fields(source)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_submit(self) -> None:
        checked = self.checked
        if not self.dest:
            self.notify("Choose the destination project first.", severity="warning")
            return
        if checked is None:
            self.notify("Still checking the destination; try again in a moment.")
            return
        if checked.refusal:
            self.notify(f"Not permitted: {checked.refusal}", severity="error")
            return
        if not checked.queueable:
            self.notify("No session can go as labelled: see the Detail column.", severity="error")
            return
        self.dismiss(
            CopyRequest(self.session, checked, self.selection.project, self.dest, self.move)
        )


def deleted_lines(request: CopyRequest) -> list[str]:
    """What a move deletes, one line per source session (after its copy is verified)."""
    lines = []
    for row in request.checked.queueable:
        s, t = row.source, row.target
        where = f"{request.dest}/{t.subject}/{t.label}" if isinstance(t, copying.Target) else ""
        lines.append(
            f"{request.source}/{s.subject}/{s.label}: {len(s.session.series)} scan(s), "
            f"{s.session.file_count} file(s), {human_bytes(s.session.size)} → {where}"
        )
    return lines


def move_refusal(selection: Selection) -> str:
    """A move deletes whole sessions: it refuses a pick of only some scans."""
    partial = [s.label for s in selection.sessions if s.scans]
    if partial:
        return (
            f"a move deletes whole sessions, and only some scans of {', '.join(partial)} are "
            "selected: select the sessions themselves (or copy the scans)"
        )
    return ""


async def start_copy(app: XnatTuiApp, selection: Selection, *, move: bool) -> list[str]:
    """The browser action: the copy screen, for a move the typed confirmation, then the
    jobs queued on the Transfers panel's copy engine. Returns the job ids."""
    uploads, jobs = app.uploads, app.jobs
    if uploads is None or jobs is None or uploads.connection.client is None:
        app.notify("Log in to a server to copy or move sessions.", severity="warning")
        return []
    config = app.config
    settings = copying.settings_for(config)
    session = copying.CopySession(uploads.connection, uploads.journal, settings=settings)
    if move:
        refusal = move_refusal(selection) or await session.shared_refusal(
            selection.project, [(s.id, s.label) for s in selection.sessions]
        )
        if refusal:
            app.notify(f"Cannot move: {refusal}", severity="error")
            return []
    request = await app.push_screen_wait(
        CopyScreen(
            selection,
            session,
            move=move,
            where=settings.destination,
            anonymization=settings.anonymization,
            subject_template=config.copy.subject_pattern,
            session_template=config.copy.session_pattern,
        )
    )
    if request is None:
        return []
    if move:
        lines = deleted_lines(request)
        ok = await app.push_screen_wait(MoveConfirmScreen(request.source, request.dest, lines))
        if not ok:
            app.notify("Move cancelled: nothing was copied or deleted.")
            return []
    kind = JobKind.MOVE if move else JobKind.COPY
    engine = await jobs.ensure(kind, uploads.connection, config)
    if not isinstance(engine, CopyEngine):
        raise LookupError("the copy engine is not available")
    plan = request.checked.sendable_plan()
    ids = await session.queue(engine, plan)
    left = len(request.checked.rows) - len(plan.jobs)
    app.notify(
        f"{'Moving' if move else 'Copying'} {len(ids)} session(s) from {request.source} to "
        f"{request.dest}" + (f"; {left} left out (see the plan)" if left else ""),
        title="Transfers",
    )
    return ids
