"""Every workflow's engine speaks one protocol, so the Transfers panel and
``xnat-tui transfers`` drive uploads, DICOM sends, downloads and copies alike.

Each workflow module registers a factory for its kinds with :func:`register`; the app
and ``transfers resume/retry`` look the engine up by the journalled job's kind. An
engine adopts only jobs of its own kinds (the journal is shared).

In the TUI the App holds one :class:`JobRouter` (``app.jobs``) that feeds the
Transfers panel and routes its pause/cancel/retry keys. A screen that starts work of
another kind gets that kind's engine from it and submits there::

    engine = await app.jobs.ensure(JobKind.DOWNLOAD, app.uploads.connection, app.config)

``xnat-tui transfers resume/retry`` builds a router the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from xnat_tui.config import Config
from xnat_tui.transfer.events import EventHub, EventStream, JobProgress, ProgressTick
from xnat_tui.transfer.journal import Journal
from xnat_tui.transfer.kinds import JobKind
from xnat_tui.transfer.types import JobState

if TYPE_CHECKING:  # login loads aiohttp: commands such as send need not
    from xnat_tui.workflow.login import Connection


class JobEngine(Protocol):
    """What the panel, the CLI's progress reporter and ``transfers`` need of an engine."""

    journal: Journal

    def subscribe(self) -> EventStream: ...
    async def start(self, *, resume: bool = True) -> list[str]: ...
    def snapshot(self) -> list[JobProgress]: ...
    def adopt(self, job_id: str) -> bool: ...
    def pause(self, job_id: str | None = None) -> list[str]: ...
    def resume(self, job_id: str | None = None) -> list[str]: ...
    def cancel(self, job_id: str | None = None) -> list[str]: ...
    async def retry(self, job_id: str | None = None) -> list[str]: ...
    async def wait(self, job_ids: Iterable[str] | None = None) -> dict[str, JobState]: ...
    async def close(self) -> None: ...


class JobAction(StrEnum):
    PAUSE = "pause"
    PAUSE_ALL = "pause_all"
    RESUME = "resume"
    RESUME_ALL = "resume_all"
    CANCEL = "cancel"
    RETRY = "retry"


# Builds the engine that runs journalled jobs of some kinds for one logged-in server.
EngineBuilder = Callable[["Connection", Journal, Config], Awaitable[JobEngine]]

_BUILDERS: dict[JobKind, EngineBuilder] = {}


def register(kinds: Iterable[JobKind], builder: EngineBuilder) -> None:
    for kind in kinds:
        _BUILDERS[kind] = builder


def builder_for(kind: JobKind) -> EngineBuilder:
    """The registered factory; importing the workflow modules registers them all."""
    _load_workflows()
    try:
        return _BUILDERS[kind]
    except KeyError:
        raise LookupError(f"no engine runs {kind} jobs in this version") from None


def _load_workflows() -> None:
    # Imported here, not at the top: each workflow module imports this one to register.
    import importlib

    for name in ("upload", "send", "download", "copy"):
        try:
            importlib.import_module(f"xnat_tui.workflow.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"xnat_tui.workflow.{name}":
                raise


class JobRouter:
    """Several engines as one: the Transfers panel and ``transfers resume`` see a
    single event stream and send each job's action to the engine of its kind.

    It is itself a :class:`JobEngine`, so the CLI's progress reporter runs over it
    unchanged. Progress ticks are merged: each engine ticks its own jobs, and the
    overall figures are the sum of every engine's latest tick.
    """

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self._engines: dict[JobKind, JobEngine] = {}
        self._hub = EventHub()
        self._forwarders: list[asyncio.Task[None]] = []
        self._ticks: dict[int, ProgressTick] = {}
        # One engine per builder: a builder registered for several kinds (copy and move)
        # gets one engine that runs them all, never two splitting the jobs.
        self._built: dict[int, JobEngine] = {}

    # ------------------------------------------------------------ engines
    def attach(
        self, kinds: Iterable[JobKind], engine: JobEngine, stream: EventStream | None = None
    ) -> None:
        """Route these kinds to ``engine`` and forward its events. ``stream`` is a
        subscription taken before the engine started (so no early event is lost);
        without it the router subscribes now."""
        first = all(e is not engine for e in self._engines.values())
        for kind in kinds:
            self._engines[kind] = engine
        if first:
            stream = stream or engine.subscribe()
            self._forwarders.append(
                asyncio.create_task(self._forward(id(engine), stream), name="job-router")
            )

    def engine(self, kind: JobKind) -> JobEngine | None:
        return self._engines.get(kind)

    async def ensure(
        self, kind: JobKind, connection: Connection, config: Config, *, resume: bool = True
    ) -> JobEngine:
        """The engine for ``kind``, built, started (resuming its kind's unfinished jobs
        unless ``resume`` is False) and attached on first use."""
        engine = self._engines.get(kind)
        if engine is None:
            builder = builder_for(kind)
            engine = self._built.get(id(builder))
            if engine is None:
                engine = await builder(connection, self.journal, config)
                self._built[id(builder)] = engine
                await engine.start(resume=resume)
            self.attach([kind], engine)
        return engine

    @property
    def engines(self) -> list[JobEngine]:
        unique: list[JobEngine] = []
        for engine in self._engines.values():
            if all(e is not engine for e in unique):
                unique.append(engine)
        return unique

    async def _forward(self, key: int, stream: EventStream) -> None:
        async for event in stream:
            if isinstance(event, ProgressTick):
                self._ticks[key] = event
                ticks = list(self._ticks.values())
                etas = [t.eta for t in ticks if t.eta is not None]
                event = ProgressTick(
                    event.jobs,
                    sum(t.bytes_sent for t in ticks),
                    sum(t.bytes_total for t in ticks),
                    sum(t.rate for t in ticks),
                    max(etas) if etas else None,
                )
            self._hub.publish(event)

    def _for_job(self, job_id: str) -> JobEngine:
        # The engine holding the job first (actions are rare; snapshots are cheap),
        # else by the kind the journal gives it (a job no engine has adopted yet).
        for engine in self.engines:
            if any(p.job_id == job_id for p in engine.snapshot()):
                return engine
        kind = self.journal.job(job_id).kind
        runner = self._engines.get(kind)
        if runner is None:
            raise LookupError(f"job {job_id} is a {kind} job, and no {kind} engine is running")
        return runner

    # ------------------------------------------------------------ JobEngine
    def subscribe(self) -> EventStream:
        return self._hub.subscribe()

    async def start(self, *, resume: bool = True) -> list[str]:
        ids: list[str] = []
        for engine in self.engines:
            ids += await engine.start(resume=resume)
        return ids

    def snapshot(self) -> list[JobProgress]:
        return [p for engine in self.engines for p in engine.snapshot()]

    def adopt(self, job_id: str) -> bool:
        return self._for_job(job_id).adopt(job_id)

    def pause(self, job_id: str | None = None) -> list[str]:
        if job_id is not None:
            return self._for_job(job_id).pause(job_id)
        return [i for engine in self.engines for i in engine.pause(None)]

    def resume(self, job_id: str | None = None) -> list[str]:
        if job_id is not None:
            return self._for_job(job_id).resume(job_id)
        return [i for engine in self.engines for i in engine.resume(None)]

    def cancel(self, job_id: str | None = None) -> list[str]:
        if job_id is not None:
            return self._for_job(job_id).cancel(job_id)
        return [i for engine in self.engines for i in engine.cancel(None)]

    async def retry(self, job_id: str | None = None) -> list[str]:
        if job_id is not None:
            return await self._for_job(job_id).retry(job_id)
        return [i for engine in self.engines for i in await engine.retry(None)]

    async def wait(self, job_ids: Iterable[str] | None = None) -> dict[str, JobState]:
        if job_ids is None:
            states: dict[str, JobState] = {}
            for engine in self.engines:
                states |= await engine.wait(None)
            return states
        by_engine: dict[int, tuple[JobEngine, list[str]]] = {}
        for jid in job_ids:
            engine = self._for_job(jid)
            by_engine.setdefault(id(engine), (engine, []))[1].append(jid)
        results = await asyncio.gather(*(e.wait(ids) for e, ids in by_engine.values()))
        merged: dict[str, JobState] = {}
        for result in results:
            merged |= result
        return merged

    async def act(self, action: JobAction, job_id: str | None) -> list[str]:
        """A Transfers-panel action on one job (by its kind's engine) or on all."""
        match action:
            case JobAction.PAUSE:
                return self.pause(job_id)
            case JobAction.PAUSE_ALL:
                return self.pause(None)
            case JobAction.RESUME:
                return self.resume(job_id)
            case JobAction.RESUME_ALL:
                return self.resume(None)
            case JobAction.CANCEL:
                return self.cancel(job_id)
            case JobAction.RETRY:
                return await self.retry(job_id)

    async def close(self) -> None:
        for engine in self.engines:
            await engine.close()
        for task in self._forwarders:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._forwarders.clear()
        self._hub.close()
