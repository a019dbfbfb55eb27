"""Archive / route / relabel dialog: target fields with live validation and a server preview."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.timer import Timer
from textual.widgets import Button, Input, Label, Select, Static

from xnat_tui.text import safe
from xnat_tui.ui.screens.dialog import Dialog
from xnat_tui.ui.screens.prearchive_work import lazy
from xnat_tui.ui.validators import LabelRule
from xnat_tui.ui.widgets.format import VisibleControls, assemble, plain
from xnat_tui.workflow.prearchive import (
    OVERWRITE_MODES,
    Action,
    ActionRequest,
    ArchivePreview,
    ArchiveTarget,
    Outcome,
    PrearchiveRow,
)

PreviewFn = Callable[
    [Sequence[tuple[PrearchiveRow, ArchiveTarget]]], Awaitable[list[ArchivePreview]]
]
# Select value meaning "archive each session into the project it is already in".
OWN_PROJECT = "\x00own"

_WORD = {
    Outcome.NEW: ("$success", "new"),
    Outcome.MERGE: ("$warning", "merge"),
    Outcome.CONFLICT: ("$error", "conflict"),
    Outcome.BLOCKED: ("$error", "blocked"),
    Outcome.UNKNOWN: ("$text-muted", "unchecked"),
}


@dataclass(frozen=True)
class ArchiveDecision:
    """What the user confirmed: requests to run, and rows left out with the reason."""

    requests: tuple[ActionRequest, ...]
    skipped: tuple[tuple[PrearchiveRow, str], ...] = ()


class ArchiveDialog(Dialog[ArchiveDecision | None]):
    """``mode`` is "archive", "route" (Unassigned entries) or "relabel" (resolve a conflict)."""

    HELP_GROUP = "Archive dialog"

    DEFAULT_CSS = """
    ArchiveDialog { align: center middle; }
    ArchiveDialog > #archive-box {
        width: 90; max-width: 100%; height: auto; max-height: 95%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    ArchiveDialog .field-row { height: auto; }
    ArchiveDialog .field-row { margin-top: 1; }
    ArchiveDialog .field-row > Label { width: 12; }
    ArchiveDialog .field-row > Input, ArchiveDialog .field-row > Select { width: 1fr; }
    ArchiveDialog #archive-problems { color: $error; height: auto; }
    ArchiveDialog #archive-preview { height: auto; max-height: 12; }
    ArchiveDialog #archive-preview { margin-top: 1; }
    ArchiveDialog #archive-buttons { height: auto; align-horizontal: right; margin-top: 1; }
    ArchiveDialog #archive-buttons > Button { min-width: 10; }
    """

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="prearchive.dialog.cancel"),
        Binding("ctrl+s", "submit", "Archive", id="prearchive.dialog.submit"),
    ]

    def __init__(
        self,
        rows: Sequence[PrearchiveRow],
        projects: Sequence[str],
        preview: PreviewFn,
        *,
        mode: str = "archive",
        overwrite: str = "none",
    ) -> None:
        super().__init__()
        self.rows = list(rows)
        self.projects = sorted(set(projects))
        self.preview_fn = preview
        self.mode = mode
        self.overwrite_default = overwrite if overwrite in OVERWRITE_MODES else "none"
        self.previews: dict[str, ArchivePreview] = {}
        self.preview_key: tuple[str, ...] | None = None
        self._timer: Timer | None = None

    @property
    def single(self) -> bool:
        return len(self.rows) == 1

    def _title(self) -> str:
        n = len(self.rows)
        what = "session" if n == 1 else f"{n} sessions"
        return {
            "route": f"Route {what} from Unassigned, then archive",
            "relabel": f"Resolve conflict: archive {what} under a new label",
        }.get(self.mode, f"Archive {what}")

    def compose(self) -> ComposeResult:
        first = self.rows[0]
        options: list[tuple[str, str]] = [(p, p) for p in self.projects]
        value: str | object = Select.NULL
        if self.single:
            current = "" if first.unassigned else first.project
            if current and current not in self.projects:
                options.append((current, current))
            if current:
                value = current
        elif not all(r.unassigned for r in self.rows):
            # Several sessions: by default each stays in its own project (no silent moves).
            options.insert(0, ("each session's own project", OWN_PROJECT))
            value = OWN_PROJECT
        with Vertical(id="archive-box") as box:
            box.border_title = self._title()
            with Horizontal(classes="field-row"):
                yield Label("Project")
                yield Select(
                    # Project ids from the server: plain text, never markup.
                    [(plain(label, limit=48), v) for label, v in options],
                    prompt="choose a project",
                    value=value,
                    id="archive-project",
                    compact=True,
                )
            if self.single:
                with Horizontal(classes="field-row"):
                    yield Label("Subject")
                    yield Input(
                        first.subject,
                        highlighter=VisibleControls(),
                        id="archive-subject",
                        validators=[LabelRule("subject label")],
                        compact=True,
                    )
                with Horizontal(classes="field-row"):
                    yield Label("Session")
                    yield Input(
                        first.label,
                        highlighter=VisibleControls(),
                        id="archive-label",
                        validators=[LabelRule("session label")],
                        compact=True,
                    )
            else:
                yield Static(
                    "Each session keeps its own subject and session label.", id="archive-note"
                )
            with Horizontal(classes="field-row"):
                yield Label("Overwrite")
                yield Select(
                    [(m, m) for m in OVERWRITE_MODES],
                    allow_blank=False,
                    value=self.overwrite_default,
                    id="archive-overwrite",
                    compact=True,
                )
            yield Static("", id="archive-problems")
            yield Static(assemble(("Checking the target…", "$text-muted")), id="archive-preview")
            with Horizontal(id="archive-buttons"):
                yield Button("Archive (ctrl+s)", id="archive-ok", variant="primary")
                yield Button("Cancel (esc)", id="archive-cancel")

    def on_mount(self) -> None:
        if self.mode == "relabel" and self.single:
            self.query_one("#archive-label", Input).focus()
        elif self.mode == "route":
            self.query_one("#archive-project", Select).focus()
        self._show_problems()
        self._schedule_preview(0.01)

    # --- field state -----------------------------------------------------------------

    def _project(self) -> str:
        value = self.query_one("#archive-project", Select).value
        return value if isinstance(value, str) else ""

    def _overwrite(self) -> str:
        value = self.query_one("#archive-overwrite", Select).value
        return value if isinstance(value, str) else "none"

    def target_for(self, row: PrearchiveRow) -> ArchiveTarget:
        project = self._project()
        if project == OWN_PROJECT:
            project = "" if row.unassigned else row.project
        if self.single:
            subject = self.query_one("#archive-subject", Input).value.strip()
            label = self.query_one("#archive-label", Input).value.strip()
        else:
            subject, label = row.subject, row.label
        return ArchiveTarget(project, subject, label, self._overwrite())

    def _key(self) -> tuple[str, ...]:
        return tuple(
            f"{r.url}|{t.project}|{t.subject}|{t.label}|{t.overwrite}"
            for r in self.rows
            for t in [self.target_for(r)]
        )

    def problems(self) -> list[str]:
        out: list[str] = []
        if not self._project():
            out.append("Choose the destination project.")
        if self.single:
            for input_id in ("#archive-subject", "#archive-label"):
                widget = self.query_one(input_id, Input)
                result = widget.validate(widget.value.strip())
                if result is not None and not result.is_valid:
                    out.extend(result.failure_descriptions)
        return out

    def _show_problems(self) -> None:
        text = "\n".join(safe(p) for p in self.problems())
        self.query_one("#archive-problems", Static).update(plain(text, lines=True))

    @on(Input.Changed)
    @on(Select.Changed)
    def _changed(self) -> None:
        self._show_problems()
        self._schedule_preview()

    # --- server preview (debounced, latest wins) -------------------------------------

    def _schedule_preview(self, delay: float = 0.3) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(delay, self._start_preview)

    def _start_preview(self) -> None:
        self.run_worker(
            lazy(self._compute_previews),
            group="archive-preview",
            exclusive=True,
            exit_on_error=False,
        )

    async def _compute_previews(self) -> dict[str, ArchivePreview]:
        key = self._key()
        items = [(row, self.target_for(row)) for row in self.rows]
        try:
            found = await self.preview_fn(items)
        except Exception as exc:  # noqa: BLE001 - the server decides at archive time
            reason = f"could not check the target ({exc}); the server decides"
            found = [ArchivePreview(Outcome.UNKNOWN, reason) for _ in items]
        results = {row.url: pv for (row, _), pv in zip(items, found, strict=True)}
        if key == self._key():
            self.previews = results
            self.preview_key = key
            self._render_previews()
        return results

    def _render_previews(self) -> None:
        lines = []
        for row in self.rows:
            pv = self.previews.get(row.url)
            if pv is None:
                continue
            style, word = _WORD[pv.outcome]
            prefix = "" if self.single else f"{row.project}/{row.label}: "
            # Names and the server's reason as plain text, on one line each.
            lines.append(assemble(prefix, (word, f"{style} b"), f" {pv.reason}", lines=False))
        self.query_one("#archive-preview", Static).update(Content("\n").join(lines))
        allowed = sum(1 for r in self.rows if self._allowed(r))
        button = self.query_one("#archive-ok", Button)
        button.disabled = allowed == 0 or bool(self.problems())
        if not self.single:
            button.label = f"Archive {allowed} of {len(self.rows)} (ctrl+s)"

    def _allowed(self, row: PrearchiveRow) -> bool:
        pv = self.previews.get(row.url)
        return pv is not None and pv.allowed

    # --- answers ---------------------------------------------------------------------

    async def action_submit(self) -> None:
        problems = self.problems()
        if problems:
            self.notify(problems[0], severity="error")
            return
        if self.preview_key != self._key():
            # The user was faster than the debounce: decide on fresh answers.
            await self._compute_previews()
        requests: list[ActionRequest] = []
        skipped: list[tuple[PrearchiveRow, str]] = []
        for row in self.rows:
            pv = self.previews.get(row.url)
            if pv is not None and not pv.allowed:
                skipped.append((row, pv.reason))
            else:
                requests.append(ActionRequest(row, Action.ARCHIVE, self.target_for(row)))
        if not requests:
            reason = skipped[0][1] if skipped else "nothing to archive"
            self.notify(reason, title="Not archived", severity="error")
            return
        self.dismiss(ArchiveDecision(tuple(requests), tuple(skipped)))

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#archive-ok")
    async def _ok(self) -> None:
        await self.action_submit()

    @on(Button.Pressed, "#archive-cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted)
    async def _submitted(self) -> None:
        await self.action_submit()
