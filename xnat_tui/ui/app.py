"""The App: wiring only — styles, keys, themes, commands, and the long-lived services.

The upload session (planner, engine) and its event consumer live here, not on a
screen, so uploads keep going while the user browses, scans, labels or triages.
Screens reach what they need through :attr:`XnatTuiApp` attributes, typed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.notifications import SeverityLevel
from textual.worker import Worker, WorkerState

from xnat_tui.config import Config
from xnat_tui.dicom.model import ScanBatch, ScanSummary
from xnat_tui.text import safe
from xnat_tui.transfer.events import EventStream, ProgressTick
from xnat_tui.transfer.journal import Journal
from xnat_tui.transfer.kinds import JobKind
from xnat_tui.transfer.types import Destination, JobState, Overwrite
from xnat_tui.ui.commands import WorkbenchCommands
from xnat_tui.ui.logbuffer import LogBuffer
from xnat_tui.ui.messages import TargetsChecked
from xnat_tui.ui.screens.confirm import ConfirmScreen
from xnat_tui.ui.themes import load_themes
from xnat_tui.ui.transfer_model import JobRow, TransferModel
from xnat_tui.workflow.checks import Sleep, TargetChecks
from xnat_tui.workflow.jobs import JobAction, JobRouter
from xnat_tui.workflow.login import Connection, Connector, LoginRequest
from xnat_tui.workflow.targets import LabelRules
from xnat_tui.workflow.upload import (
    Anonymization,
    EngineFactory,
    UploadSession,
    UploadSettings,
    label_rules_for,
    transfer_engine,
)
from xnat_tui.workflow.workbench import Workbench
from xnat_tui.xnat.client import XnatClient

log = logging.getLogger("xnat_tui.ui")

# What a verified job did, in the "Transfer done" notification.
_DONE_VERB = {
    JobKind.UPLOAD: "uploaded",
    JobKind.SEND: "sent over DICOM",
    JobKind.DOWNLOAD: "downloaded",
    JobKind.COPY: "copied",
    JobKind.MOVE: "moved",
}

# Seconds between checks that the terminal is still there (see _watch_terminal).
TERMINAL_CHECK = 1.0
# Remote label checks wait this long after the last keystroke.
CHECK_DEBOUNCE = 0.35

ScanFunc = Callable[[list[Path]], AsyncIterator[ScanBatch | ScanSummary]]


# What cancelling leaves behind, as each kind of job leaves it.
_CANCEL_QUESTION = {
    JobKind.UPLOAD: "Cancel the upload of {label}? Series already sent stay in the server's "
    "prearchive; retry sends the rest later.",
    JobKind.SEND: "Cancel sending {label}? Instances the receiver already stored stay there; "
    "retry sends the rest later.",
    JobKind.DOWNLOAD: "Cancel the download of {label}? Files already downloaded and verified "
    "stay in the folder, unfinished ones as .part; retry fetches only the rest.",
    JobKind.COPY: "Cancel the copy of {label}? What already reached the destination project "
    "stays there; the source is not changed; retry copies the rest later.",
    JobKind.MOVE: "Cancel the move of {label}? The source is deleted only after its copy is "
    "verified, so it stays; what already reached the destination stays there too.",
}


class XnatTuiApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "xnat-tui"
    COMMANDS = App.COMMANDS | {WorkbenchCommands}
    BINDINGS = [
        Binding(
            "ctrl+q",
            "quit",
            "Quit",
            tooltip="Quit (asks first while transfers run)",
            priority=True,
            id="app.quit",
        ),
        Binding("question_mark,f1", "help", "Help", tooltip="List every key", id="app.help"),
        Binding("ctrl+l", "show_log", "Log", tooltip="Show the application log", id="app.log"),
        Binding(
            "f2", "change_theme", "Theme", tooltip="Choose a theme", show=False, id="app.theme"
        ),
    ]

    def __init__(
        self,
        config: Config,
        *,
        scan: ScanFunc,
        connector: Connector,
        start_path: Path,
        login: LoginRequest | None = None,
        auto_login: bool = False,
        journal: Callable[[], Journal] = Journal,
        engine_factory: EngineFactory = transfer_engine,
        sleep: Sleep = asyncio.sleep,
        theme_dirs: list[Path] | None = None,
        log_buffer: LogBuffer | None = None,
        sandbox_url: str = "",
    ) -> None:
        super().__init__()
        self.config = config
        self.scan = scan
        self.connector = connector
        self.start_path = start_path
        self.login = login
        self.auto_login = auto_login
        self.sandbox_url = sandbox_url
        self._journal = journal
        self._engine_factory = engine_factory
        # The upload session of the logged-in server (None offline / before login).
        self.uploads: UploadSession | None = None
        # Every workflow's engine behind one event stream and one set of job actions
        # (None offline / before login); ``jobs.ensure(kind, ...)`` starts one on first use.
        self.jobs: JobRouter | None = None
        d = config.defaults
        self.workbench = Workbench(LabelRules(d.subject_pattern, d.session_pattern))
        self.workbench.project_rules = lambda project: label_rules_for(config, project)
        self.checks = TargetChecks(self.workbench, delay=CHECK_DEBOUNCE, sleep=sleep)
        self.transfers = TransferModel()
        self.log_buffer = log_buffer or LogBuffer()
        self.theme_warnings: list[str] = []
        self._theme_dirs = theme_dirs
        self._events_worker: Worker[None] | None = None
        self._stopping = False

    # ------------------------------------------------------------ properties used by other screens

    @property
    def client(self) -> XnatClient | None:
        """The logged-in client (None offline or before login)."""
        return self.uploads.connection.client if self.uploads is not None else None

    def upload_session(self, connection: Connection) -> UploadSession:
        """The upload session for a new connection, with this config's settings."""
        d = self.config.defaults
        profile = self.config.profile(
            self.login.profile if self.login and self.login.profile else None
        )
        return UploadSession(
            connection,
            self._journal(),
            settings=UploadSettings(
                destination=Destination(d.destination),
                overwrite=Overwrite(d.overwrite),
                concurrency=d.concurrency,
                bandwidth_limit_mbps=d.bandwidth_limit_mbps,
            ),
            anon_default=lambda project: Anonymization(
                self.config.anonymization_for(profile, project)
            ),
            engine_factory=self._engine_factory,
        )

    # ------------------------------------------------------------ start-up

    def on_mount(self) -> None:
        logging.getLogger("xnat_tui").addHandler(self.log_buffer)
        logging.getLogger("xnat_tui").setLevel(logging.INFO)
        self._register_themes()
        self.set_keymap(self.config.keymap)
        if self.no_color:
            log.info("NO_COLOR is set: colours are off")
        from xnat_tui.ui.screens.login import LoginScreen

        self.push_screen(LoginScreen(self.login, auto=self.auto_login))
        self._watch_terminal()

    def _watch_terminal(self, fd: int | None = None) -> None:
        """Exit when the terminal goes away.

        Closing a tmux pane or losing an SSH connection hangs the terminal up, but the
        SIGHUP goes to the session leader: under a wrapper that survives it (``make
        demo`` does), we never see it, and Textual's input thread then spins on
        end-of-file at 100% CPU, on a shared login node, for good (seen in testing).
        A hung-up terminal stops being a tty, so look once a second.
        """
        if fd is None:
            if self.is_headless or sys.__stdin__ is None:
                return
            try:
                fd = sys.__stdin__.fileno()
            except (ValueError, OSError):
                return
        if not os.isatty(fd):
            return  # not started on a terminal: nothing to lose
        watched = fd
        self.set_interval(TERMINAL_CHECK, lambda: self._check_terminal(watched), name="tty")

    async def _check_terminal(self, fd: int) -> None:
        if os.isatty(fd) or self._stopping:
            return
        log.warning("the terminal is gone: stopping (unfinished transfers resume next time)")
        await self._shutdown_and_exit()

    def _register_themes(self) -> None:
        loaded = load_themes(self._theme_dirs)
        for theme in loaded.themes:
            self.register_theme(theme)
        self.theme_warnings = list(loaded.warnings)
        wanted = self.config.defaults.theme
        if wanted in self.available_themes:
            self.theme = wanted
        else:
            self.theme_warnings.append(
                f"Theme {wanted!r} from the config is not installed; using {self.theme!r}."
            )
        for warning in self.theme_warnings:
            log.warning("%s", warning)
            self.notify(warning, title="Theme", severity="warning", timeout=8)

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Every toast of the app: its text is data (a label, a server's message), so
        it is made safe and never parsed as markup, whoever calls (``Widget.notify``
        comes here too)."""
        super().notify(
            safe(message, lines=True),
            title=safe(title),
            severity=severity,
            timeout=timeout,
            markup=False,
        )

    def on_unmount(self) -> None:
        logging.getLogger("xnat_tui").removeHandler(self.log_buffer)

    # ------------------------------------------------------------ after login

    async def logged_in(self, connection: Connection) -> None:
        """Called by the login screen: start the engine and show the workbench."""
        from xnat_tui.ui.screens.main import MainScreen

        self.uploads = self.upload_session(connection)
        self.jobs = JobRouter(self.uploads.journal)
        events = self.jobs.subscribe()
        resumed = await self.uploads.start()
        assert self.uploads.engine is not None
        self.jobs.attach([JobKind.UPLOAD], self.uploads.engine, self.uploads.stream)
        resumed += await self._resume_other_kinds(connection)
        log.info("logged in as %s at %s", connection.user, connection.url)
        self._events_worker = self._consume_events(events)
        await self.switch_screen(MainScreen(self.start_path))
        self.sub_title = safe(f"{connection.user} @ {connection.url}")
        paused = sum(1 for p in self.jobs.snapshot() if p.state is JobState.PAUSED)
        said = []
        if resumed:
            said.append(f"Resuming {len(resumed)} unfinished transfer(s) from an earlier run.")
        if paused:
            said.append(
                f"{paused} paused transfer(s) stay paused (space on one in Transfers resumes it)."
            )
        if said:
            self.notify(" ".join(said), title="Transfers")

    async def go_offline(self) -> None:
        """Browse and scan without a server; uploads stay disabled."""
        from xnat_tui.ui.screens.main import MainScreen

        log.info("working offline")
        await self.switch_screen(MainScreen(self.start_path))
        self.sub_title = "offline"

    async def _resume_other_kinds(self, connection: Connection) -> list[str]:
        """Start the engines of other workflows (DICOM sends, downloads, copies) whose
        jobs this server has unfinished in the journal; they resume them."""
        assert self.jobs is not None
        unfinished = self.jobs.journal.jobs(
            states=[s for s in JobState if not s.finished], server=connection.port.server_url
        )
        resumed: list[str] = []
        for kind in dict.fromkeys(j.kind for j in unfinished if j.kind is not JobKind.UPLOAD):
            try:
                engine = await self.jobs.ensure(kind, connection, self.config)
            except Exception as exc:  # one workflow failing to start must not block login
                log.error("cannot resume %s jobs: %s", kind, exc)
                self.notify(
                    f"Cannot resume {kind} jobs: {exc}", title="Transfers", severity="error"
                )
                continue
            resumed += [p.job_id for p in engine.snapshot() if p.state is not JobState.PAUSED]
        return resumed

    @work(group="engine-events", exclusive=True, exit_on_error=False)
    async def _consume_events(self, events: EventStream) -> None:
        if self.jobs is None:
            return
        for progress in self.jobs.snapshot():
            tick = ProgressTick((progress,), progress.bytes_sent, progress.bytes_total, 0.0, None)
            self.transfers.apply(tick)
        async for event in events:
            self.transfers.apply(event)
            for row in self.transfers.take_finished():
                self._announce(row)

    def _announce(self, row: JobRow) -> None:
        state = row.state
        if state is JobState.VERIFIED:
            # The engine says how: "verified by MD5 in the archive", "verified by size ...".
            how = row.message.split(":", 1)[0] if row.message.startswith("verified") else ""
            done = _DONE_VERB.get(row.kind, "done")
            self.notify(f"{row.label}: {done}, {how or 'verified'}.", title="Transfer done")
            log.info("job %s (%s) verified", row.job_id, row.label)
            if self.uploads is not None:
                self.uploads.planner.refresh()
        elif state is JobState.FAILED:
            self.notify(
                f"{row.label}: {row.message or 'failed'}",
                title="Transfer failed",
                severity="error",
                timeout=10,
            )
            log.error("job %s (%s) failed: %s", row.job_id, row.label, row.message)
        elif state is JobState.CANCELLED:
            self.notify(f"{row.label}: cancelled.", title="Transfer", severity="warning")
            log.warning("job %s (%s) cancelled", row.job_id, row.label)

    # ------------------------------------------------------------ target checks

    def check_targets(self, uids: list[str]) -> None:
        """Debounced: classify these rows' targets soon (each call restarts the wait)."""
        if self.uploads is None or self.workbench.project is None:
            return
        self.checks.mark(uids)
        self._run_checks()

    @work(group="remote-check", exclusive=True, exit_on_error=False)
    async def _run_checks(self) -> None:
        if self.uploads is None:
            return
        checked = await self.checks.run(self.uploads)
        if checked:
            self.screen.post_message(TargetsChecked(tuple(i.uid for i in checked)))

    # ------------------------------------------------------------ transfers

    def job_action(self, action: str, job_id: str | None) -> None:
        """A JobAction's value, or "receipt"."""
        if action == "receipt":
            from xnat_tui.ui.screens.receipt import ReceiptScreen

            if job_id:
                self.push_screen(ReceiptScreen(job_id))
            return
        if action == "cancel":
            row = self.transfers.jobs.get(job_id or "")
            label = row.label if row else job_id
            kind = row.kind if row else JobKind.UPLOAD

            def answered(ok: bool | None) -> None:
                if ok:
                    self._run_job_action(JobAction.CANCEL, job_id)

            self.push_screen(
                ConfirmScreen(
                    "Cancel transfer?",
                    _CANCEL_QUESTION[kind].format(label=label),
                    yes="Cancel it",
                    no="Keep going",
                ),
                callback=answered,
            )
            return
        self._run_job_action(JobAction(action), job_id)

    @work(group="job-action", exit_on_error=False)
    async def _run_job_action(self, action: JobAction, job_id: str | None) -> None:
        try:
            if self.jobs is None:
                raise RuntimeError("not connected: there are no transfers to control")
            await self.jobs.act(action, job_id)
        except Exception as exc:  # an engine refusal is shown, never crashes the UI
            self.notify(str(exc), title="Transfers", severity="error")
            log.error("%s %s: %s", action, job_id or "all", exc)
        else:
            log.info("%s %s", action, job_id or "all jobs")

    # ------------------------------------------------------------ actions

    def action_help(self) -> None:
        from xnat_tui.ui.screens.help import HelpScreen

        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.screen))

    def action_show_log(self) -> None:
        from xnat_tui.ui.screens.log import LogScreen

        if isinstance(self.screen, LogScreen):
            return
        self.push_screen(LogScreen(self.log_buffer))

    async def action_quit(self) -> None:
        active = self.transfers.unfinished
        from xnat_tui.ui.browser_actions import ACTION_GROUP

        # A browser action (a download listing its files) has queued nothing yet.
        preparing = sum(1 for w in self.workers if w.group == ACTION_GROUP and w.is_running)
        if active or preparing:
            self._confirm_quit(len(active), preparing)
            return
        await self._shutdown_and_exit()

    @work(group="quit", exclusive=True)
    async def _confirm_quit(self, count: int, preparing: int = 0) -> None:
        said = []
        if count:
            said.append(
                f"{count} transfer(s) are not finished. They stop now and resume where they "
                "left off the next time you start xnat-tui (or run `xnat-tui transfers "
                "resume`)."
            )
        if preparing:
            said.append(
                f"Still being prepared from the browser, not started yet: {preparing} "
                "download(s) or copies. They are dropped, to be asked for again."
            )
        ok = await self.push_screen_wait(
            ConfirmScreen("Quit?", " ".join(said), yes="Quit", no="Stay")
        )
        if ok:
            await self._shutdown_and_exit()

    async def _shutdown_and_exit(self) -> None:
        if self._stopping:  # a quit and a lost terminal may both ask
            return
        self._stopping = True
        try:
            if self.jobs is not None:
                await self.jobs.close()  # every workflow's engine, the upload one too
            if self.uploads is not None:
                await self.uploads.close()
        except Exception as exc:
            log.error("engine shutdown: %s", exc)
        self.exit(0)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.report_worker(event)

    def report_worker(self, event: Worker.StateChanged) -> None:
        """One place where background failures become something the user sees.

        StateChanged does not bubble: screens forward theirs here.
        """
        if event.state is not WorkerState.ERROR:
            return
        error = event.worker.error
        name = event.worker.group or event.worker.name
        message = str(error) or type(error).__name__
        hint = getattr(error, "hint", "")
        log.error("%s failed: %s", name, message, exc_info=error)
        self.notify(
            f"{message}\n{hint}".strip(), title=f"{name} failed", severity="error", timeout=10
        )
