"""Before/after tag diff of one sample file per series, for a chosen anonymization profile.

The same engine the upload uses runs on one file per series (in a thread worker), so
what is shown is what will be sent. The screen dismisses with an :class:`AnonChoice`
when the user picks a profile (ctrl+s), or None when they just close it.
"""

from __future__ import annotations

import logging

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static
from textual.worker import Worker, WorkerState, get_current_worker

from xnat_tui.dicom.dicomedit import TagChange
from xnat_tui.dicom.model import Session
from xnat_tui.transfer.types import AnonOptions
from xnat_tui.ui.anon_service import (
    PROFILE_SUMMARY,
    PROFILES,
    AnonChoice,
    PreviewComputer,
    PreviewRequest,
    PreviewResult,
    SeriesPreview,
    ServerScript,
    ServerScripts,
    fetch_server_scripts,
    next_profile,
    series_samples,
)
from xnat_tui.ui.screens.anon_variables import AnonVariablesScreen
from xnat_tui.ui.screens.base import AppScreen
from xnat_tui.ui.widgets.anon_diff import AnonDiffTable, AnonSeriesTable
from xnat_tui.ui.widgets.format import assemble, plain
from xnat_tui.xnat.client import XnatClient

log = logging.getLogger("xnat_tui.ui")

PREVIEW_GROUP = "anon-preview"
SCRIPTS_GROUP = "anon-scripts"

_OPTION_LABELS = (
    ("retain_dates", "dates"),
    ("retain_uids", "UIDs"),
    ("retain_device", "device"),
)


class AnonPreviewScreen(AppScreen, Screen[AnonChoice | None]):
    HELP_GROUP = "Anonymization preview"
    # Below 100 columns the series list goes above the diff, so both stay readable.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]

    DEFAULT_CSS = """
    AnonPreviewScreen #anon-bar {
        height: auto; padding: 0 1; background: $panel; color: $foreground;
    }
    AnonPreviewScreen #anon-body { height: 1fr; }
    AnonPreviewScreen #anon-series {
        width: 36%; min-width: 26; max-width: 56; height: 1fr;
        border: round $foreground 30%; border-title-color: $foreground 70%;
    }
    AnonPreviewScreen #anon-right { width: 1fr; height: 1fr; }
    AnonPreviewScreen.-narrow #anon-body { layout: vertical; }
    AnonPreviewScreen.-narrow #anon-series {
        width: 100%; max-width: 100%; height: auto; max-height: 7;
    }
    AnonPreviewScreen.-narrow #anon-row { max-height: 2; }
    AnonPreviewScreen #anon-diff {
        height: 1fr; border: round $foreground 30%; border-title-color: $foreground 70%;
    }
    AnonPreviewScreen #anon-series:focus, AnonPreviewScreen #anon-diff:focus {
        border: round $primary; border-title-color: $primary;
    }
    AnonPreviewScreen #anon-info { height: auto; max-height: 4; padding: 0 1; }
    AnonPreviewScreen #anon-info.-error { color: $text-error; }
    AnonPreviewScreen #anon-info.-warning { color: $text-warning; }
    AnonPreviewScreen #anon-row { height: auto; max-height: 3; padding: 0 1; color: $text-muted; }
    AnonPreviewScreen #anon-status { height: auto; max-height: 3; padding: 0 1; }
    AnonPreviewScreen #anon-status.-error { color: $text-error; }
    AnonPreviewScreen #anon-status.-warning { color: $text-warning; }
    """

    BINDINGS = [
        Binding(
            "escape", "close", "Close", tooltip="Back without choosing", id="anon.preview.close"
        ),
        Binding(
            "p",
            "cycle_profile",
            "Profile",
            tooltip="Switch profile: none → xnat → basic",
            id="anon.preview.profile",
        ),
        Binding("n", "set_profile('none')", "None", show=False, id="anon.preview.none"),
        Binding("x", "set_profile('xnat')", "XNAT", show=False, id="anon.preview.xnat"),
        Binding("b", "set_profile('basic')", "Basic", show=False, id="anon.preview.basic"),
        Binding(
            "right_square_bracket",
            "series(1)",
            "Next series",
            tooltip="Preview the next series",
            id="anon.preview.next_series",
        ),
        Binding(
            "left_square_bracket",
            "series(-1)",
            "Prev series",
            show=False,
            id="anon.preview.prev_series",
        ),
        Binding(
            "d",
            "retain('retain_dates')",
            "Keep dates",
            tooltip="Basic Profile: retain dates and times",
            id="anon.preview.retain_dates",
        ),
        Binding(
            "u",
            "retain('retain_uids')",
            "Keep UIDs",
            tooltip="Basic Profile: retain UIDs",
            id="anon.preview.retain_uids",
        ),
        Binding(
            "e",
            "retain('retain_device')",
            "Keep device",
            tooltip="Basic Profile: retain device identity",
            id="anon.preview.retain_device",
        ),
        Binding(
            "v",
            "variables",
            "Variables",
            tooltip="Values for the script's variables",
            id="anon.preview.variables",
        ),
        Binding(
            "r",
            "reload",
            "Reload scripts",
            tooltip="Fetch the project's scripts again",
            show=False,
            id="anon.preview.reload",
        ),
        Binding(
            "ctrl+s",
            "use",
            "Use profile",
            tooltip="Upload with this profile and these values",
            id="anon.preview.use",
        ),
    ]

    def __init__(
        self,
        session: Session,
        project: str | None,
        subject: str,
        session_label: str,
        profile: str = "xnat",
    ) -> None:
        super().__init__()
        if profile not in PROFILES:
            raise ValueError(f"unknown anonymization profile {profile!r} (one of {PROFILES})")
        self.session = session
        self.project = project
        self.subject = subject
        self.session_label = session_label
        self.profile = profile
        self.options = AnonOptions()
        self.variables: dict[str, str] = {}
        self.samples = series_samples(session)
        self.computer = PreviewComputer()
        self.results: dict[PreviewRequest, PreviewResult] = {}
        self.current: PreviewResult | None = None
        self.server: tuple[ServerScript, ...] | None = None
        self.unreadable: tuple[str, ...] = ()
        self.server_error = ""
        self._fetching = False

    # ------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="anon-bar")
        with Horizontal(id="anon-body"):
            series = AnonSeriesTable(self.samples, id="anon-series")
            series.border_title = "Series"
            yield series
            with Vertical(id="anon-right"):
                yield Static(id="anon-info")
                diff = AnonDiffTable(id="anon-diff")
                diff.border_title = "Before → after (one sample file)"
                yield diff
                yield Static(id="anon-row")
        yield Static(id="anon-status")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"Anonymization preview · {self.session_label or self.session.patient_id}"
        self.query_one(AnonSeriesTable).focus()
        self.refresh_preview()

    @property
    def client(self) -> XnatClient | None:
        return self.xapp.client

    @property
    def base_variables(self) -> dict[str, str]:
        return {
            "project": self.project or "",
            "subject": self.subject,
            "session": self.session_label,
        }

    @property
    def series_table(self) -> AnonSeriesTable:
        return self.query_one(AnonSeriesTable)

    @property
    def diff_table(self) -> AnonDiffTable:
        return self.query_one(AnonDiffTable)

    def request(self) -> PreviewRequest:
        return PreviewRequest.make(
            self.profile, options=self.options, server=self.server, variables=self.variables
        )

    # ------------------------------------------------------------ computing

    def refresh_preview(self) -> None:
        """Show the preview for the current profile/options/values, computing it if needed."""
        self._render_bar()
        if not self.samples:
            self.refresh_bindings()
            self._set_status("This session has no series to preview.", "warning")
            return
        if self.profile == "xnat" and self.server is None:
            will_fetch = self.client is not None and bool(self.project) and not self.server_error
            self._show_result(None, pending=will_fetch)
            if self.client is None:
                self._set_status(
                    "Not connected: the xnat profile needs the project's scripts from the "
                    "server. Log in, or preview the basic profile (b).",
                    "warning",
                )
            elif not self.project:
                self._set_status(
                    "Choose a project first: the xnat profile runs that project's scripts.",
                    "warning",
                )
            elif self.server_error:
                self._set_status(
                    f"Cannot read the anonymization scripts of {self.project}: "
                    f"{self.server_error}  (r to retry)",
                    "error",
                )
            else:
                self._fetch_scripts()
            return
        request = self.request()
        cached = self.results.get(request)
        if cached is not None:
            self._show_result(cached)
            return
        self._show_result(None, pending=True)
        self._set_status("Computing the preview…")
        self.run_worker(
            lambda: self._compute(request),
            name=f"anon preview ({self.profile})",
            group=PREVIEW_GROUP,
            thread=True,
            exclusive=True,
            exit_on_error=False,
        )

    def _compute(self, request: PreviewRequest) -> PreviewResult:
        worker = get_current_worker()
        return self.computer.compute(
            self.samples, request, self.base_variables, cancelled=lambda: worker.is_cancelled
        )

    def _fetch_scripts(self) -> None:
        if self._fetching or not self.project or self.client is None:
            return
        self._fetching = True
        self._set_status(f"Fetching the anonymization scripts of {self.project}…")
        self.run_worker(
            fetch_server_scripts(self.client, self.project),
            name=f"anon scripts of {self.project}",
            group=SCRIPTS_GROUP,
            exclusive=True,
            exit_on_error=False,
        )

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group == SCRIPTS_GROUP and event.state in (
            WorkerState.SUCCESS,
            WorkerState.ERROR,
            WorkerState.CANCELLED,
        ):
            self._fetching = False
            fetched = worker.result
            if event.state is WorkerState.SUCCESS and isinstance(fetched, ServerScripts):
                self.server = fetched.scripts
                self.unreadable = fetched.unreadable
                self.server_error = ""
            elif event.state is WorkerState.ERROR:
                error = worker.error
                self.server_error = getattr(error, "message", "") or str(error)
                hint = getattr(error, "hint", "")
                if hint:
                    self.server_error += f" ({hint})"
                log.warning("anon scripts of %s: %s", self.project, self.server_error)
                # Shown on this screen, where the user can retry: not a global alert.
                event.stop()
            if self.profile == "xnat" and event.state is not WorkerState.CANCELLED:
                self.refresh_preview()
        elif worker.group == PREVIEW_GROUP:
            if event.state is WorkerState.SUCCESS:
                result = worker.result
                if not isinstance(result, PreviewResult) or result.cancelled:
                    return
                self.results[result.request] = result
                if result.error:
                    log.warning(
                        "anonymization profile %s refused: %s", result.request.profile, result.error
                    )
                if result.request == self.request():
                    self._show_result(result)
            elif event.state is WorkerState.ERROR:
                log.error("anonymization preview failed: %s", worker.error, exc_info=worker.error)
                self._set_status(f"The preview failed: {worker.error}", "error")

    # ------------------------------------------------------------ rendering

    def _render_bar(self) -> None:
        parts: list[str | tuple[str, str]] = ["Profile"]
        for name in PROFILES:
            parts += [
                " ",
                (f" {name} ", "reverse $accent") if name == self.profile else f" {name} ",
            ]
        parts += ["  ", ("(p to switch)", "dim")]
        if self.profile == "basic":
            boxes = [
                f"{'☑' if getattr(self.options, attr) else '☐'} {label}"
                for attr, label in _OPTION_LABELS
            ]
            parts += ["   retain: " + "  ".join(boxes) + " ", ("(d u e)", "dim")]
        summary = PROFILE_SUMMARY[self.profile]
        # The target names come from DICOM and the user: plain text, never markup.
        names = (self.project or "(no project)", self.subject or "?", self.session_label or "?")
        parts += ["\n", (f"{summary} · target {' / '.join(names)}", "dim")]
        self.query_one("#anon-bar", Static).update(assemble(*parts))

    def _set_status(self, text: str, level: str = "") -> None:
        status = self.query_one("#anon-status", Static)
        status.update(plain(text, lines=True))
        status.set_class(level == "error", "-error")
        status.set_class(level == "warning", "-warning")

    def _set_info(self, text: Content, level: str = "") -> None:
        info = self.query_one("#anon-info", Static)
        info.update(text)
        info.set_class(level == "error", "-error")
        info.set_class(level == "warning", "-warning")

    def _show_result(self, result: PreviewResult | None, *, pending: bool = False) -> None:
        self.current = result
        self.series_table.show_results(
            self.profile, result.series if result else None, pending=pending
        )
        self.refresh_bindings()
        if result is None:
            self._show_changes([])
            self._set_info(self._sample_text())
            return
        if result.error:
            self._show_changes([])
            self._set_info(
                assemble(
                    f"The script cannot be run here, so nothing would be sent: {result.error}"
                ),
                "error",
            )
            self._set_status(
                "Fix the script on the server, or choose another profile (p).", "error"
            )
            return
        self._show_series()
        self._set_status(*self._summary(result))

    def _summary(self, result: PreviewResult) -> tuple[str, str]:
        if self.profile == "xnat" and self.unreadable:
            return (
                "Some of the project's anonymization scripts cannot be read with your account "
                f"({'; '.join(self.unreadable)}), so they cannot run here and the xnat profile "
                "is not available. Choose none (the server applies them) or basic.",
                "error",
            )
        if not result.scripts:
            if self.profile == "xnat":
                return (
                    f"Project {self.project} has no enabled anonymization script: "
                    "files are sent unchanged.",
                    "warning",
                )
            return ("No script runs on this machine; files are sent unchanged.", "")
        scripts = ", ".join(f"{name} ({sha[:8]})" for name, sha in result.scripts)
        text = f"Runs: {scripts}"
        missing = [r for r in result.missing if not r.hidden]
        if missing:
            named = ", ".join(
                f"{r.name} ({r.description})" if r.description else r.name for r in missing
            )
            return (f"{text}\nThe script needs values for: {named} — press v.", "warning")
        if self.variables:
            given = ", ".join(f"{k}={v}" for k, v in sorted(self.variables.items()))
            text += f" · variables: {given}"
        return (text, "")

    def _sample_text(self) -> Content:
        uid = self.series_table.current_uid
        sample = next((s for s in self.samples if s.series_uid == uid), None)
        if sample is None:
            return Content("")
        n = sample.file_count
        text = assemble(
            f"Series {sample.label} {sample.description} · {n} file{'s' if n != 1 else ''}"
            f" · sample {sample.path.name if sample.path else '—'}"
        )
        verdict = sample.burned_in(self.profile)
        if verdict.flagged:
            what = (
                "left out by default under basic"
                if verdict.action == "exclude"
                else "no header script cleans pixels"
            )
            text += assemble(
                "\n",
                (
                    f"⚠ may have identifying text in its pixels ({'; '.join(verdict.reasons)}): "
                    f"{what}",
                    "$text-warning",
                ),
            )
        return text

    def _show_series(self) -> None:
        result = self.current
        uid = self.series_table.current_uid
        item: SeriesPreview | None = result.series.get(uid) if result and uid else None
        info = self._sample_text()
        if item is None:
            self._show_changes([])
            self._set_info(info)
            return
        self._show_changes(item.changes)
        if item.error:
            self._set_info(info + assemble(f"\nThis file would fail: {item.error}"), "error")
            return
        counts = item.counts()
        if item.changes:
            tally = " · ".join(f"{n} {kind}" for kind, n in counts.items() if n)
        else:
            tally = "no tag changes"
        self._set_info(info + assemble(f"\n{tally}"))

    def _show_changes(self, changes: list[TagChange]) -> None:
        self.diff_table.show_changes(changes)
        self._show_row()

    def _show_row(self) -> None:
        """The highlighted change in full (the table clips long values)."""
        change = self.diff_table.highlighted
        text = ""
        if change is not None:
            before = "(absent)" if change.before is None else change.before or '""'
            after = "(removed)" if change.after is None else change.after or '""'
            text = f"{change.tag} {change.keyword}: {before} → {after}"
        self.query_one("#anon-row", Static).update(plain(text))

    @on(DataTable.RowHighlighted, "#anon-diff")
    def _change_highlighted(self) -> None:
        self._show_row()

    @on(DataTable.RowHighlighted, "#anon-series")
    def _series_highlighted(self) -> None:
        if self.current is not None:
            self._show_series()
        else:
            self._set_info(self._sample_text())

    # ------------------------------------------------------------ actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Keys that belong to another profile are hidden (False), not just dimmed.
        if action == "retain":
            return self.profile == "basic"
        if action == "variables":
            result = self.current
            return result is not None and any(not r.hidden for r in result.required)
        if action == "reload":
            return self.profile == "xnat" and self.client is not None
        if action == "use":
            result = self.current
            ok = (
                result is not None
                and not result.error
                and not (self.profile == "xnat" and self.unreadable)
                and not any(not r.hidden for r in result.missing)
            )
            return True if ok else None
        if action == "series":
            return True if len(self.samples) > 1 else None
        return True

    def action_close(self) -> None:
        self.dismiss(None)

    def action_cycle_profile(self) -> None:
        self.action_set_profile(next_profile(self.profile))

    def action_set_profile(self, profile: str) -> None:
        if profile not in PROFILES or profile == self.profile:
            return
        self.profile = profile
        self.refresh_preview()

    def action_retain(self, option: str) -> None:
        if self.profile != "basic":
            return
        self.options = self.options.toggled(option)
        self.refresh_preview()

    def action_series(self, step: int) -> None:
        table = self.series_table
        if not self.samples:
            return
        row = (table.cursor_row + step) % len(self.samples)
        table.move_cursor(row=row)

    def action_reload(self) -> None:
        if self.profile != "xnat":
            return
        self.server = None
        self.unreadable = ()
        self.server_error = ""
        self.results = {r: v for r, v in self.results.items() if r.profile != "xnat"}
        self.refresh_preview()

    def action_variables(self) -> None:
        result = self.current
        if result is None:
            return
        wanted = [r for r in result.required if not r.hidden]
        if not wanted:
            return

        def answered(values: dict[str, str] | None) -> None:
            if values is None:
                return
            self.variables.update(values)
            self.refresh_preview()

        self.app.push_screen(
            AnonVariablesScreen(
                [r.name for r in wanted],
                self.variables,
                descriptions={r.name: r.description for r in wanted if r.description},
            ),
            callback=answered,
        )

    def action_use(self) -> None:
        result = self.current
        if result is None or result.error:
            return
        names = {r.name for r in result.required}
        self.dismiss(
            AnonChoice(
                profile=self.profile,
                options=self.options,
                variables={k: v for k, v in self.variables.items() if k in names},
                script_hashes=tuple(sha for _, sha in result.scripts),
            )
        )
