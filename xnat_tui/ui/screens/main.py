"""The upload workbench: folders → sessions → scans + labels, transfers docked below."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, Static
from textual.worker import Worker, WorkerState

from xnat_tui.dicom.model import ScanBatch, ScanSummary, Session
from xnat_tui.ui.messages import TargetsChecked
from xnat_tui.ui.screens.base import AppScreen
from xnat_tui.ui.widgets.folders import FoldersPane
from xnat_tui.ui.widgets.format import plain
from xnat_tui.ui.widgets.labels import LabelsPane
from xnat_tui.ui.widgets.scans import ScansPane
from xnat_tui.ui.widgets.sessions import SessionsPane
from xnat_tui.ui.widgets.transfers import TransfersPane
from xnat_tui.units import human_bytes
from xnat_tui.workflow.workbench import RowState, SessionItem

if TYPE_CHECKING:
    from xnat_tui.ui.anon_service import AnonChoice
    from xnat_tui.workflow.browse import BrowseModel

log = logging.getLogger("xnat_tui.ui")
# A scan reports five times a second; the Sessions table and the progress line follow
# at most this often. Each refresh re-lays out the screen (rows added, the status line
# rewrapped), which is what a key press would wait for.
SCAN_REFRESH = 0.5


class MainScreen(AppScreen, Screen[None]):
    HELP_GROUP = "Main"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]
    BINDINGS = [
        Binding("1", "focus_pane('folder-tree')", "Folders", show=False, id="main.focus_folders"),
        Binding(
            "2", "focus_pane('sessions-table')", "Sessions", show=False, id="main.focus_sessions"
        ),
        Binding("3", "focus_pane('scans-table')", "Scans", show=False, id="main.focus_scans"),
        Binding("4", "focus_pane('project')", "Labels", show=False, id="main.focus_labels"),
        Binding(
            "5", "focus_pane('transfers-table')", "Transfers", show=False, id="main.focus_transfers"
        ),
        Binding(
            "u",
            "upload",
            "Upload",
            tooltip="Review and queue the selected sessions",
            id="main.upload",
        ),
        Binding("b", "bulk", "Bulk", tooltip="Label many sessions with patterns", id="main.bulk"),
        Binding(
            "t",
            "toggle_transfers",
            "Expand transfers",
            tooltip="Show transfers full screen / docked",
            id="main.transfers",
        ),
        Binding(
            "p",
            "prearchive",
            "Prearchive",
            tooltip="Triage the server's prearchive",
            id="main.prearchive",
        ),
        Binding(
            "e",
            "edit_label",
            "Edit label",
            tooltip="Edit the highlighted session's label",
            id="main.edit_label",
        ),
        Binding(
            "A",
            "anon_preview",
            "Anonymize",
            tooltip="Preview the anonymization of the highlighted session and choose the profile",
            id="main.anon_preview",
        ),
        Binding(
            "o",
            "routing",
            "Routing",
            tooltip="Sessions routed to another project: follow the routing, or upload to "
            "the chosen project",
            id="main.routing",
            show=False,
        ),
        Binding(
            "B",
            "browse",
            "Browse server",
            tooltip="Browse the server's projects, subjects, sessions and scans; download",
            id="main.browse",
        ),
        Binding(
            "T",
            "triage_send",
            "Triage",
            tooltip="A DICOM send that landed Unassigned or split: open prearchive triage",
            id="main.triage_send",
            show=False,
        ),
        Binding(
            "R",
            "refresh_project",
            "Refresh",
            tooltip="Reload the project's subjects and sessions from the server",
            id="main.refresh",
            show=False,
        ),
    ]

    def __init__(self, start_path: Path) -> None:
        super().__init__()
        self.start_path = start_path
        self.scan_worker: Worker[None] | None = None
        self._footer_state: tuple[bool, ...] = ()
        self._browsed: tuple[object, BrowseModel] | None = None  # (the login, its tree)

    def compose(self) -> ComposeResult:
        wb = self.xapp.workbench
        yield Header()
        with Horizontal(id="upper"):
            yield FoldersPane(self.start_path, id="folders")
            with Vertical(id="right"):
                yield SessionsPane(wb, id="sessions")
                with Horizontal(id="detail"):
                    yield ScansPane(wb, id="scans")
                    yield LabelsPane(id="labels")
        yield TransfersPane(self.xapp.transfers, id="transfers")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#folder-tree").focus()
        self.set_interval(0.25, self._sync_transfer_states)
        self.load_projects()

    # ------------------------------------------------------------ panes

    @property
    def sessions(self) -> SessionsPane:
        return self.query_one(SessionsPane)

    @property
    def labels(self) -> LabelsPane:
        return self.query_one(LabelsPane)

    @property
    def scans(self) -> ScansPane:
        return self.query_one(ScansPane)

    @property
    def folders(self) -> FoldersPane:
        return self.query_one(FoldersPane)

    def action_focus_pane(self, widget_id: str) -> None:
        if self.has_class("-transfers-expanded") and widget_id != "transfers-table":
            self.remove_class("-transfers-expanded")
        self.query_one(f"#{widget_id}").focus()

    def action_toggle_transfers(self) -> None:
        self.toggle_class("-transfers-expanded")
        if self.has_class("-transfers-expanded"):
            self.query_one("#transfers-table").focus()

    # ------------------------------------------------------------ scanning

    @on(FoldersPane.ScanRequested)
    def _scan_requested(self, event: FoldersPane.ScanRequested) -> None:
        self.start_scan(event.paths)

    @on(FoldersPane.CancelRequested)
    def _scan_cancel(self) -> None:
        if self.scan_worker is not None:
            self.scan_worker.cancel()

    def start_scan(self, paths: list[Path]) -> None:
        if self.scan_worker is not None and self.scan_worker.state is WorkerState.RUNNING:
            self.notify("A scan is already running; stop it with x first.", severity="warning")
            return
        self.folders.set_scanning(True)
        names = ", ".join(p.name or str(p) for p in paths)
        self.folders.show_progress(f"Scanning {names}…", None)
        log.info("scan started: %s", ", ".join(str(p) for p in paths))
        self.scan_worker = self._scan(paths)

    @work(group="scan", exclusive=True, exit_on_error=False)
    async def _scan(self, paths: list[Path]) -> None:
        found = 0
        # Sessions touched since the table was last refreshed. Only read here, between
        # the scan's steps, while the scan thread is not running.
        touched: dict[str, Session] = {}
        shown = time.monotonic()
        try:
            async for event in self.xapp.scan(paths):
                if isinstance(event, ScanBatch):
                    touched.update((s.study_instance_uid, s) for s in event.sessions)
                    if time.monotonic() - shown < SCAN_REFRESH:
                        continue
                    shown = time.monotonic()
                    found += self._absorb(list(touched.values()))
                    touched.clear()
                    p = event.progress
                    total = f"/{p.files_seen}" if p.walk_done else f" of {p.files_seen}+"
                    self.folders.show_progress(
                        f"{p.files_parsed}{total} files · {len(self.xapp.workbench)} sessions "
                        f"· {p.rate:.0f}/s",
                        p.fraction,
                    )
                elif isinstance(event, ScanSummary):
                    found += self._absorb(event.sessions)  # every session, touched or not
                    p = event.progress
                    state = "stopped" if event.cancelled else "done"
                    problems = len(event.all_problems)
                    self.folders.show_progress(
                        f"Scan {state}: {p.files_dicom} DICOM files, "
                        f"{len(event.sessions)} sessions, {problems} problems "
                        f"({p.elapsed:.1f}s" + (", tree unchanged)" if event.reused else ")"),
                        1.0,
                    )
                    log.info(
                        "scan %s: %d files, %d sessions, %d problems",
                        state,
                        p.files_parsed,
                        len(event.sessions),
                        problems,
                    )
                    # File, series and session problems, for the log screen (bounded).
                    for problem in event.all_problems[:500]:
                        log.warning("%s: %s (%s)", problem.kind, problem.path, problem.detail)
                    self.app.notify(
                        f"Scan {state}: {len(event.sessions)} sessions found.",
                        title="Scan",
                    )
        except asyncio.CancelledError:
            self.folders.show_progress("Scan stopped.", None)
            log.info("scan stopped by the user")
            raise
        except Exception as exc:
            self.folders.show_progress(f"Scan failed: {exc}", None)
            raise
        finally:
            self.folders.set_scanning(False)

    def _absorb(self, sessions: Sequence[Session]) -> int:
        """Put found sessions into the workbench and the table; returns how many are new."""
        wb = self.xapp.workbench
        changed: list[SessionItem] = []
        new = 0
        for session in sessions:
            item, is_new = wb.upsert(session)
            new += is_new
            changed.append(item)
        if wb.project is not None:
            self._compute_dropped(changed)
        self.sessions.refresh_rows(changed)
        current = self.sessions.current_uid
        if current and any(i.uid == current for i in changed):
            self.scans.show(current)
            self.labels.show(wb.get(current))
        if changed and wb.project is not None:
            self.schedule_check([i.uid for i in changed])
        return new

    # ------------------------------------------------------------ highlighting / editing

    @on(SessionsPane.Highlighted)
    def _highlighted(self, event: SessionsPane.Highlighted) -> None:
        self.scans.show(event.uid)
        self.labels.show(self.xapp.workbench.get(event.uid))
        self._refresh_footer_if_changed()

    def _refresh_footer_if_changed(self) -> None:
        """The footer is rebuilt on refresh_bindings: only ask when something flipped."""
        state = tuple(check() for check in self._availability().values())
        if state != self._footer_state:
            self._footer_state = state
            self.refresh_bindings()

    @on(SessionsPane.SelectionChanged)
    def _selection_changed(self) -> None:
        self.refresh_bindings()

    @on(ScansPane.Changed)
    def _series_changed(self, event: ScansPane.Changed) -> None:
        item = self.xapp.workbench.get(event.uid)
        if item is not None:
            self.sessions.refresh_rows([item])

    @on(LabelsPane.Edited)
    def _edited(self, event: LabelsPane.Edited) -> None:
        wb = self.xapp.workbench
        wb.set_labels(event.uid, subject=event.subject, label=event.label)
        item = wb.items[event.uid]
        self.sessions.refresh_rows([item])
        self.labels.show_status(item)
        self.schedule_check([event.uid])

    @on(LabelsPane.Regenerate)
    def _regenerate(self, event: LabelsPane.Regenerate) -> None:
        wb = self.xapp.workbench
        item = wb.items[event.uid]
        wb.relabel([item])
        self.sessions.refresh_rows([item])
        self.labels.show(item)
        self.schedule_check([item.uid])

    # ------------------------------------------------------------ project

    @work(group="projects", exclusive=True, exit_on_error=False)
    async def load_projects(self) -> None:
        uploads = self.xapp.uploads
        if uploads is None:
            self.labels.set_projects([], None)
            return
        projects = [(p.id, p.secondary_id) for p in await uploads.projects()]
        current = self.xapp.workbench.project.id if self.xapp.workbench.project else None
        self.labels.set_projects(projects, current)
        if len(projects) == 1 and current is None:
            self.choose_project(projects[0][0])

    @on(LabelsPane.ProjectChosen)
    def _project_chosen(self, event: LabelsPane.ProjectChosen) -> None:
        self.choose_project(event.project)

    def choose_project(self, project: str, *, refresh: bool = False) -> None:
        self.labels.query_one("#project-settings", Static).update(plain(f"Loading {project}…"))
        self._load_project(project, refresh)

    @work(group="project", exclusive=True, exit_on_error=False)
    async def _load_project(self, project: str, refresh: bool) -> None:
        uploads = self.xapp.uploads
        if uploads is None:
            return
        info = await uploads.project(project, refresh=refresh)
        wb = self.xapp.workbench
        await uploads.load_existing(wb, project)
        wb.project = info
        # Labels are proposed against what the project holds, as `xnat-tui upload` does.
        wb.relabel(list(wb.items.values()), only_unedited=True)
        self.sessions.refresh_rows(list(wb.items.values()))
        self.labels.show(wb.get(self.sessions.current_uid))
        self._compute_dropped(list(wb.items.values()))
        self.labels.set_project(info)
        self.scans.show(self.sessions.current_uid)
        self.schedule_check(list(wb.items))
        self.refresh_bindings()
        log.info("project %s loaded: %d subjects", project, len(info.subjects))

    def action_refresh_project(self) -> None:
        project = self.xapp.workbench.project
        if project is not None:
            self.choose_project(project.id, refresh=True)

    def _compute_dropped(self, items: list[SessionItem]) -> None:
        project = self.xapp.workbench.project
        uploads = self.xapp.uploads
        if project is None or uploads is None:
            return
        for item in items:
            for scan in item.scans():
                project.dropped.pop(scan.series_instance_uid, None)
            project.dropped.update(uploads.dropped_reasons(project, item))

    # ------------------------------------------------------------ remote checks

    def schedule_check(self, uids: list[str]) -> None:
        """Ask for a (debounced) check of these rows' targets."""
        self.xapp.check_targets(uids)
        self.sessions.refresh_rows([i for u in uids if (i := self.xapp.workbench.get(u))])

    @on(TargetsChecked)
    def _targets_checked(self, event: TargetsChecked) -> None:
        wb = self.xapp.workbench
        self.sessions.refresh_rows([i for u in event.uids if (i := wb.get(u))])
        current = wb.get(self.sessions.current_uid)
        if current is not None:
            self.labels.show_status(current)
        self._refresh_footer_if_changed()

    def action_routing(self) -> None:
        """Routed sessions: follow the routing, or (pressed again) the chosen project."""
        self._choose_routing()

    @work(group="routing", exclusive=True, exit_on_error=False)
    async def _choose_routing(self) -> None:
        wb = self.xapp.workbench
        uploads = self.xapp.uploads
        items = [i for i in self.upload_candidates() if wb.routed_elsewhere(i)]
        if uploads is None or not items:
            self.notify(
                "No selected session is routed to another project by its DICOM.",
                severity="information",
            )
            return
        follow = not all(i.follow_routing for i in items)
        changed = await uploads.choose_routing(wb, items, follow=follow)
        where = (
            ", ".join(sorted({i.routed_project for i in changed}))
            if follow
            else (wb.project.id if wb.project else "the chosen project")
        )
        self.notify(
            f"{len(changed)} session(s) now go to {where}"
            + (" as their DICOM routes them." if follow else ", not where routed."),
            title="Routing",
        )
        log.info("routing: %d session(s) %s", len(changed), "follow" if follow else "kept")
        self.labels.show(wb.get(self.sessions.current_uid))
        self.schedule_check([i.uid for i in changed])

    # ------------------------------------------------------------ uploading

    def upload_candidates(self) -> list[SessionItem]:
        wb = self.xapp.workbench
        chosen = wb.selected() or [i for i in [wb.get(self.sessions.current_uid)] if i]
        return [i for i in chosen if not i.state.in_transfer]

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.xapp.report_worker(event)

    def _availability(self) -> dict[str, Callable[[], bool]]:
        """The actions whose availability follows the workbench, each with its test
        (run only when asked: Textual checks bindings often). The footer is rebuilt
        (a costly recompose) only when one of them flips."""
        wb = self.xapp.workbench

        def connected() -> bool:
            return self.xapp.uploads is not None

        def current() -> SessionItem | None:
            return wb.get(self.sessions.current_uid)

        def can_edit() -> bool:
            item = current()
            return item is not None and not item.state.in_transfer

        return {
            "upload": lambda: (
                wb.project is not None
                and connected()
                and any(i.state.queueable for i in self.upload_candidates())
            ),
            "routing": lambda: any(wb.routed_elsewhere(i) for i in self.upload_candidates()),
            "bulk": lambda: bool(len(wb)),
            "refresh_project": lambda: bool(wb.project),
            "prearchive": connected,
            "edit_label": can_edit,
            "anon_preview": lambda: current() is not None,
        }

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        available = self._availability().get(action)
        return True if available is None or available() else None

    # ------------------------------------------------------------ sending (issue 16)
    def on_labels_pane_send_requested(self, event: LabelsPane.SendRequested) -> None:
        from xnat_tui.ui.screens.send import send_selected

        event.stop()
        self.run_worker(
            send_selected(self, self.upload_candidates()),
            group="send",
            exclusive=True,
            exit_on_error=False,
        )

    def action_triage_send(self) -> None:
        from xnat_tui.ui.screens.send import open_triage

        row = self.query_one(TransfersPane).current
        if row is not None:
            open_triage(self, row.job_id)

    def action_upload(self) -> None:
        items = [i for i in self.upload_candidates() if i.state.queueable]
        if not items:
            self.notify(
                "Nothing to upload: choose a project and fix the labels first.", severity="warning"
            )
            return
        self._plan_and_confirm(items)

    @work(group="plan", exclusive=True, exit_on_error=False)
    async def _plan_and_confirm(self, items: list[SessionItem]) -> None:
        from xnat_tui.ui.screens.upload_confirm import UploadConfirmScreen

        wb = self.xapp.workbench
        project = wb.project
        uploads = self.xapp.uploads
        if project is None or uploads is None:
            return
        plan = await uploads.plan_items(wb, items)
        missing = uploads.missing_anon_variables(project, plan)
        if missing:
            from xnat_tui.ui.screens.anon_variables import AnonVariablesScreen

            values = await self.app.push_screen_wait(
                AnonVariablesScreen(
                    [n for n, _ in missing],
                    uploads.anonymization(project.id).variables,
                    descriptions=dict(missing),
                )
            )
            if values is None:
                self.notify(
                    "Nothing queued: the anonymization script needs those values.",
                    severity="warning",
                )
                return
            uploads.set_anon_variables(project.id, values)
            plan = await uploads.plan_items(wb, items)
        confirmed = await self.app.push_screen_wait(UploadConfirmScreen(plan, project))
        if not confirmed:
            return
        job_ids = await uploads.submit(plan)
        by_uid = {uid: job for uid, job in job_ids.items()}
        for item in items:
            job = by_uid.get(item.uid)
            if job:
                item.job_id = job
                item.state = RowState.QUEUED
                item.selected = False
        self.sessions.refresh_rows(items)
        self.scans.show(self.sessions.current_uid)
        self.labels.show(self.xapp.workbench.get(self.sessions.current_uid))
        self.notify(f"Queued {len(by_uid)} session(s) for upload.", title="Transfers")
        log.info("queued %d jobs: %s", len(by_uid), ", ".join(by_uid.values()))

    def _sync_transfer_states(self) -> None:
        """Mirror job states into the sessions table (4 Hz, only rows that changed)."""
        wb = self.xapp.workbench
        model = self.xapp.transfers
        changed: list[SessionItem] = []
        for item in wb.items.values():
            if not item.job_id:
                continue
            row = model.jobs.get(item.job_id)
            if row is None:
                continue
            state = RowState.of_job(row.state)
            detail = row.message
            if state is RowState.VERIFIED:
                detail = f"{row.files_total} files, {human_bytes(row.bytes_total)} verified"
            if (state, detail) != (item.state, item.detail):
                item.state, item.detail = state, detail
                changed.append(item)
        if changed:
            self.sessions.refresh_rows(changed)
            current = wb.get(self.sessions.current_uid)
            if current in changed:
                self.labels.show_status(current)

    @on(TransfersPane.ActionRequested)
    def _job_action(self, event: TransfersPane.ActionRequested) -> None:
        self.xapp.job_action(event.action, event.job_id)

    # ------------------------------------------------------------ other screens

    def action_bulk(self) -> None:
        from xnat_tui.ui.screens.bulk import BulkScreen

        self.app.push_screen(BulkScreen(), callback=self._after_bulk)

    def _after_bulk(self, outcome: str | None) -> None:
        wb = self.xapp.workbench
        self.sessions.refresh_rows(list(wb.items.values()))
        self.labels.show(wb.get(self.sessions.current_uid))
        self.scans.show(self.sessions.current_uid)
        if outcome == "queue":
            self.action_upload()
        elif outcome == "changed":
            self.schedule_check(list(wb.items))

    def action_edit_label(self) -> None:
        field = self.query_one("#session")
        if not field.disabled:
            field.focus()

    def action_anon_preview(self) -> None:
        try:
            from xnat_tui.ui.screens.anon_preview import AnonPreviewScreen
        except ImportError:
            self.notify(
                "The anonymization preview is not available in this build.", severity="warning"
            )
            return
        item = self.xapp.workbench.get(self.sessions.current_uid)
        if item is None:
            return
        project = self.xapp.workbench.project
        uploads = self.xapp.uploads
        profile = uploads.anonymization(project.id).profile if project and uploads else "basic"
        screen = AnonPreviewScreen(
            item.session,
            project.id if project else None,
            item.subject,
            item.label,
            profile=profile if profile != "none" else "basic",
        )

        def chosen(choice: AnonChoice | None) -> None:
            if choice is None or project is None or uploads is None:
                return
            picked = choice.profile
            uploads.choose_anonymization(
                project.id, choice.profile, choice.options, dict(choice.variables)
            )
            self.notify(
                f"Uploads to {project.id} will be anonymized with: {picked}.", title="Anonymization"
            )
            log.info("anonymization for %s set to %s for this session", project.id, picked)

        self.app.push_screen(screen, callback=chosen)

    def action_browse(self) -> None:
        from xnat_tui.ui.screens.browser import BrowserScreen
        from xnat_tui.workflow.browse import BrowseModel, ClientBrowseSource

        client = self.xapp.client
        if client is None:
            self.notify("Log in to a server to browse it.", severity="warning")
            return
        # The tree as it was left (open rows, filter, selection, cursor), for this login.
        if self._browsed is None or self._browsed[0] is not client:
            self._browsed = (client, BrowseModel(ClientBrowseSource(client)))
        self.app.push_screen(BrowserScreen(model=self._browsed[1]))

    def action_prearchive(self) -> None:
        try:
            from xnat_tui.ui.screens.prearchive import PrearchiveScreen
        except ImportError:
            self.notify("The prearchive screen is not available in this build.", severity="warning")
            return
        from xnat_tui.xnat.prearchive_ops import ClientTriageOps

        client = self.xapp.client
        if client is None:
            self.notify("Log in to a server to triage its prearchive.", severity="warning")
            return
        self.app.push_screen(
            PrearchiveScreen(ClientTriageOps(client), overwrite=self.xapp.config.defaults.overwrite)
        )
