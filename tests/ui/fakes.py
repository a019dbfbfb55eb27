"""Fakes for Pilot tests: an in-memory server port, a scripted engine, built sessions.

Only the edges are faked (network, engine timing); the planner, workbench, panes and
screens under test are the real ones.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from tests.fixtures.fake_server import FakePort, FakeProject, make_session  # noqa: F401 - re-exported for the UI tests
from xnat_tui.config import Config
from xnat_tui.dicom.model import ScanBatch, ScanProgress, ScanSummary, Session
from xnat_tui.transfer.events import EventHub, JobProgress, JobStateChanged, ProgressTick
from xnat_tui.transfer.server import ProjectInfo
from xnat_tui.transfer.types import JobState
from xnat_tui.ui.app import XnatTuiApp
from xnat_tui.workflow.login import Connection, LoginRequest
from xnat_tui.xnat.filters import SeriesImportFilter


def scan_func_for(sessions: list[Session]) -> Any:
    """A scan that yields the given sessions in one batch plus a summary."""

    async def scan(paths: list[Path]) -> AsyncIterator[ScanBatch | ScanSummary]:
        files = sum(s.file_count for s in sessions)
        progress = ScanProgress(files, files, files, 0, 0, 0, 0.1, True)
        yield ScanBatch(files=[], problems=[], sessions=list(sessions), progress=progress)
        yield ScanSummary(sessions=list(sessions), problems=[], progress=progress, roots=paths)

    return scan


def default_projects() -> dict[str, FakeProject]:
    return {
        "PILOT": FakeProject(ProjectInfo("PILOT"), name="Pilot", subjects={"SUBJ01"}),
        "STUDY_A": FakeProject(
            ProjectInfo(
                "STUDY_A", allow_create_subject=False, allow_bulk_upload=False, prearchive_code=4
            ),
            name="Study A",
            subjects={"P001", "P002"},
        ),
        "STUDY_B": FakeProject(
            ProjectInfo(
                "STUDY_B",
                # The app's own filter, parsed from what XNAT stores for the project.
                series_filters=[
                    SeriesImportFilter.parse(
                        {"mode": "blacklist", "list": "localizer"}, "project STUDY_B"
                    )
                ],
                anon_script=True,
                prearchive_code=5,
            ),
            name="Study B",
        ),
    }


class FakeEngine:
    """Records control calls and publishes the events a real engine would."""

    def __init__(self, port: Any = None, journal: Any = None) -> None:
        self.hub = EventHub()
        self.calls: list[tuple[str, str | None]] = []
        self.submitted: list[Any] = []
        self.states: dict[str, JobState] = {}
        self.labels: dict[str, str] = {}
        self._ids = itertools.count(1)

    def subscribe(self) -> Any:
        return self.hub.subscribe()

    # Jobs an earlier run left unfinished: (job id, label, bytes sent, bytes total).
    resumable: list[tuple[str, str, int, int]] = []

    async def start(self, *, resume: bool = True) -> list[str]:
        if not resume:
            return []
        for jid, label, _, _ in self.resumable:
            self.labels[jid] = label
            self.states[jid] = JobState.QUEUED
        return [jid for jid, _, _, _ in self.resumable]

    def snapshot(self) -> list[JobProgress]:
        # Every job the engine holds, as the real one reports them.
        sizes = {jid: (sent, total) for jid, _, sent, total in self.resumable}
        return [
            JobProgress(jid, self.labels[jid], state, *sizes.get(jid, (0, 0)), 0, 3, 0, 1)
            for jid, state in self.states.items()
        ]

    def adopt(self, job_id: str) -> bool:
        return job_id in self.states

    async def wait(self, job_ids: Any = None) -> dict[str, JobState]:
        return {j: self.states[j] for j in (job_ids or self.states)}

    def set_state(self, job_id: str, state: JobState, message: str = "") -> None:
        previous = self.states.get(job_id)
        self.states[job_id] = state
        self.hub.publish(JobStateChanged(job_id, self.labels[job_id], state, previous, message))

    def progress(
        self, job_id: str, sent: int, total: int, state: JobState = JobState.SENDING
    ) -> None:
        jp = JobProgress(
            job_id, self.labels[job_id], state, sent, total, 1, 2, 0, 1, rate=1e6, eta=3.0
        )
        self.hub.publish(ProgressTick((jp,), sent, total, 1e6, 3.0))

    async def submit(self, plan: Any) -> list[str]:
        ids = []
        for job in plan.sendable:
            jid = f"job{next(self._ids)}"
            self.labels[jid] = job.target
            self.submitted.append(job)
            ids.append(jid)
            self.set_state(jid, JobState.QUEUED, "queued")
        return ids

    def _act(self, name: str, job_id: str | None, state: JobState | None) -> list[str]:
        self.calls.append((name, job_id))
        ids = [job_id] if job_id else [j for j, s in self.states.items() if not s.finished]
        if state is not None:
            for jid in ids:
                self.set_state(jid, state)
        return ids

    def pause(self, job_id: str | None = None) -> list[str]:
        return self._act("pause", job_id, JobState.PAUSED)

    def resume(self, job_id: str | None = None) -> list[str]:
        return self._act("resume", job_id, JobState.QUEUED)

    def cancel(self, job_id: str | None = None) -> list[str]:
        return self._act("cancel", job_id, JobState.CANCELLED)

    async def retry(self, job_id: str | None = None) -> list[str]:
        return self._act("retry", job_id, JobState.QUEUED)

    async def close(self) -> None:
        self.calls.append(("close", None))
        self.hub.close()


def fake_connector(port: FakePort, *, fail: BaseException | None = None) -> Any:
    async def connect(request: LoginRequest) -> Connection:
        if fail is not None:
            raise fail
        return Connection(
            url=request.url,
            user=request.user or "alice",
            port=port,  # type: ignore[arg-type]
            projects=port,
        )

    return connect


def make_app(
    tmp_path: Path,
    *,
    sessions: list[Session] | None = None,
    port: FakePort | None = None,
    config: Config | None = None,
    login: LoginRequest | None = None,
    auto: bool = True,
    fail: BaseException | None = None,
    theme_dirs: list[Path] | None = None,
    sleep: ManualSleep | None = None,
) -> tuple[XnatTuiApp, FakePort, FakeEngine]:
    from xnat_tui.transfer.journal import Journal

    port = port or FakePort(default_projects())
    engine = FakeEngine()
    (tmp_path / "dicom" / "A").mkdir(parents=True, exist_ok=True)
    app = XnatTuiApp(
        config or Config(),
        scan=scan_func_for(sessions or []),
        journal=lambda: Journal(tmp_path / "journal.sqlite3"),
        engine_factory=lambda port, journal, transform, settings: engine,  # type: ignore[arg-type,return-value]
        connector=fake_connector(port, fail=fail),
        **({"sleep": sleep} if sleep is not None else {}),
        start_path=tmp_path / "dicom",
        login=login or LoginRequest(url="http://fake.test", user="alice", password="alice"),
        auto_login=auto,
        theme_dirs=theme_dirs if theme_dirs is not None else [],
    )
    # Scroll/focus animations only slow Pilot down; the assertions are about state.
    app.animation_level = "none"
    return app, port, engine


async def until(pilot: Any, predicate: Any, within: float = 30.0) -> None:
    """Let the app run until ``predicate()`` holds (workers and timers included).

    The deadline only matters when something is broken: on a loaded 2-core CI machine
    a worker can take seconds to get its turn, so it is generous.
    """
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(
                f"timed out waiting for {getattr(predicate, '__name__', predicate)}"
            )
        await pilot.pause(0.02)


def busy_workers(app: Any, *groups: str) -> list[Any]:
    """Workers of these groups (on any screen) that have not finished yet."""
    from textual.worker import WorkerState

    return [
        w
        for w in app.workers
        if w.group in groups and w.state in (WorkerState.PENDING, WorkerState.RUNNING)
    ]


async def checks_done(pilot: Any) -> None:
    """Wait until no label check (workbench or bulk) is pending, then for quiet rows."""
    await until(
        pilot,
        lambda: (
            not busy_workers(pilot.app, "remote-check", "bulk-check")
            and all(i.state != "checking" for i in pilot.app.workbench.items.values())
        ),
    )


async def to_main(pilot: Any) -> Any:
    from xnat_tui.ui.screens.main import MainScreen

    await until(pilot, lambda: isinstance(pilot.app.screen, MainScreen))
    return pilot.app.screen


async def scanned(pilot: Any, count: int) -> Any:
    screen = await to_main(pilot)
    await pilot.press("s")
    await until(pilot, lambda: len(pilot.app.workbench) == count and not screen.folders.scanning)
    return screen


class ManualSleep:
    """The App's debounce wait, controlled by the test: each wait lasts until released."""

    def __init__(self) -> None:
        self._events: list[asyncio.Event] = []

    async def __call__(self, seconds: float) -> None:
        event = asyncio.Event()
        self._events.append(event)
        try:
            await event.wait()
        finally:
            self._events.remove(event)

    @property
    def waiting(self) -> int:
        """Waits in progress (a superseded check's wait is cancelled, so not counted)."""
        return len(self._events)

    def release_all(self) -> None:
        for event in list(self._events):
            event.set()


async def with_project(
    pilot: Any, screen: Any, project: str, *, release: ManualSleep | None = None
) -> None:
    screen.choose_project(project)

    def released() -> bool:
        if release is not None:
            release.release_all()
        return True

    await until(
        pilot,
        lambda: (
            released()
            and pilot.app.workbench.project is not None
            and pilot.app.workbench.project.id == project
            and all(i.state not in ("—", "checking") for i in pilot.app.workbench.items.values())
        ),
    )
