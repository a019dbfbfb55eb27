"""The engine's single event stream, shared by the CLI and the TUI.

State changes are delivered as they happen (they are rare). Byte/file progress is
never one event per chunk: the engine samples its counters a few times a second and
emits one :class:`ProgressTick` holding every active job.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from xnat_tui.transfer.kinds import JobKind
from xnat_tui.transfer.types import JobState, SeriesState


@dataclass(frozen=True)
class JobStateChanged:
    job_id: str
    label: str
    state: JobState
    previous: JobState | None
    message: str = ""
    # The job's size: a small job can finish before any ProgressTick names it.
    bytes_total: int = 0
    files_total: int = 0
    kind: JobKind = JobKind.UPLOAD
    # Where the job's counters stand, where its engine says (a job ending between two
    # progress ticks: a cancel's files finished after the last one).
    bytes_sent: int | None = None
    files_sent: int | None = None


@dataclass(frozen=True)
class SeriesStateChanged:
    job_id: str
    series_uid: str
    series_number: int | None
    state: SeriesState
    message: str = ""
    attempt: int = 0


@dataclass(frozen=True)
class JobProgress:
    """A snapshot of one job; rate is bytes/s over the last few seconds, eta in seconds."""

    job_id: str
    label: str
    state: JobState
    bytes_sent: int
    bytes_total: int
    files_sent: int
    files_total: int
    series_done: int
    series_total: int
    rate: float = 0.0
    eta: float | None = None
    message: str = ""
    # Which way the bytes go; every workflow's engine emits these same events.
    kind: JobKind = JobKind.UPLOAD

    @property
    def fraction(self) -> float:
        return self.bytes_sent / self.bytes_total if self.bytes_total else 1.0


@dataclass(frozen=True)
class ProgressTick:
    """Emitted a few times per second while something moves."""

    jobs: tuple[JobProgress, ...]
    bytes_sent: int
    bytes_total: int
    rate: float
    eta: float | None


@dataclass(frozen=True)
class EngineMessage:
    """Something a user should read (retry scheduled, file vanished, re-login...)."""

    level: str  # info | warning | error
    text: str
    job_id: str = ""


Event = JobStateChanged | SeriesStateChanged | ProgressTick | EngineMessage


class EventStream:
    """One subscriber's view: ``async for event in stream``; ``close()`` to stop.

    Progress ticks coalesce when a subscriber falls behind (only the latest is kept),
    so a slow consumer never makes the queue grow without bound.
    """

    def __init__(self, hub: EventHub) -> None:
        self._hub = hub
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._pending_tick: ProgressTick | None = None
        self._closed = False

    def _push(self, event: Event) -> None:
        if self._closed:
            return
        if isinstance(event, ProgressTick):
            already = self._pending_tick is not None
            self._pending_tick = event
            if already:
                return
        self._queue.put_nowait(event)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._hub._streams.discard(self)
            self._queue.put_nowait(None)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        item = await self._queue.get()
        if item is None:
            raise StopAsyncIteration
        if isinstance(item, ProgressTick):
            latest = self._pending_tick or item
            self._pending_tick = None
            return latest
        return item


class EventHub:
    def __init__(self) -> None:
        self._streams: set[EventStream] = set()

    def subscribe(self) -> EventStream:
        stream = EventStream(self)
        self._streams.add(stream)
        return stream

    def publish(self, event: Event) -> None:
        for stream in list(self._streams):
            stream._push(event)

    def close(self) -> None:
        for stream in list(self._streams):
            stream.close()
