"""What the Transfers pane draws: the latest snapshot of every job, fed by engine events.

Events are folded in as they arrive (cheap dict updates); the pane redraws from
this model on a 5 Hz timer and only when ``version`` moved, so a burst of events
costs one redraw, never one per chunk.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from xnat_tui.transfer.events import (
    EngineMessage,
    Event,
    JobProgress,
    JobStateChanged,
    ProgressTick,
    SeriesStateChanged,
)
from xnat_tui.transfer.kinds import JobKind
from xnat_tui.transfer.types import JobState


@dataclass
class JobRow:
    job_id: str
    label: str
    state: JobState
    bytes_sent: int = 0
    bytes_total: int = 0
    files_sent: int = 0
    files_total: int = 0
    series_done: int = 0
    series_total: int = 0
    rate: float = 0.0
    eta: float | None = None
    message: str = ""
    kind: JobKind = JobKind.UPLOAD
    updated: float = field(default_factory=time.monotonic)

    @property
    def fraction(self) -> float:
        if self.state is JobState.VERIFIED:
            return 1.0
        return self.bytes_sent / self.bytes_total if self.bytes_total else 0.0


@dataclass
class Overall:
    bytes_sent: int = 0
    bytes_total: int = 0
    rate: float = 0.0
    eta: float | None = None


class TransferModel:
    def __init__(self) -> None:
        self.jobs: dict[str, JobRow] = {}
        self.overall = Overall()
        self.version = 0
        self.messages: list[EngineMessage] = []
        # State changes not yet turned into notifications by the UI.
        self.finished: list[JobRow] = []

    def _bump(self) -> None:
        self.version += 1

    def upsert(self, progress: JobProgress) -> JobRow:
        row = self.jobs.get(progress.job_id)
        values = dict(
            label=progress.label,
            state=progress.state,
            bytes_sent=progress.bytes_sent,
            bytes_total=progress.bytes_total,
            files_sent=progress.files_sent,
            files_total=progress.files_total,
            series_done=progress.series_done,
            series_total=progress.series_total,
            rate=progress.rate,
            eta=progress.eta,
            message=progress.message or (row.message if row else ""),
            kind=progress.kind,
            updated=time.monotonic(),
        )
        if row is None:
            row = JobRow(job_id=progress.job_id, **values)  # type: ignore[arg-type]
            self.jobs[row.job_id] = row
        else:
            for key, value in values.items():
                setattr(row, key, value)
        return row

    def apply(self, event: Event) -> None:
        if isinstance(event, ProgressTick):
            for progress in event.jobs:
                row = self.jobs.get(progress.job_id)
                if row is not None and row.state.finished and not progress.state.finished:
                    # A tick sampled before the job ended (the first-render snapshot, a
                    # coalesced tick): a finished job only moves again through a state
                    # change (retry), never back to "sending" through a stale count.
                    continue
                self.upsert(progress)
            self.overall = Overall(event.bytes_sent, event.bytes_total, event.rate, event.eta)
        elif isinstance(event, JobStateChanged):
            row = self.jobs.get(event.job_id)
            # Its words said again in the same state (a cancel's count) are not a new end.
            ended = event.state.finished and event.previous is not event.state
            if row is None:
                row = JobRow(
                    job_id=event.job_id, label=event.label, state=event.state, kind=event.kind
                )
                self.jobs[row.job_id] = row
            if event.message or event.state is not row.state:
                # A new state's own words: an empty one clears the last state's ("queued"
                # left on a job receiving).
                row.message = event.message
            row.state = event.state
            if event.files_total or event.bytes_total:
                row.bytes_total, row.files_total = event.bytes_total, event.files_total
            if event.files_sent is not None:
                row.files_sent = event.files_sent
                row.bytes_sent = event.bytes_sent or 0
            if event.state is JobState.VERIFIED:
                # A small job can finish between two progress ticks; verified means the
                # server holds every file, so the counters must say so too.
                row.bytes_sent = row.bytes_total
                row.files_sent = row.files_total
            if event.state.finished:
                row.rate = 0.0
                row.eta = None
            if ended:
                # Every end (verified, failed, cancelled) is announced, not only success.
                self.finished.append(replace(row))
        elif isinstance(event, SeriesStateChanged):
            row = self.jobs.get(event.job_id)
            if row is not None and event.message:
                row.message = event.message
        elif isinstance(event, EngineMessage):
            self.messages.append(event)
            del self.messages[:-200]
            row = self.jobs.get(event.job_id) if event.job_id else None
            if row is not None:
                row.message = event.text
        self._bump()

    def take_finished(self) -> list[JobRow]:
        done, self.finished = self.finished, []
        return done

    @property
    def active(self) -> list[JobRow]:
        return [r for r in self.jobs.values() if r.state.active]

    @property
    def unfinished(self) -> list[JobRow]:
        """Jobs that stop if the app quits now: not verified, failed or cancelled.

        What the quit dialog counts; a verified job is done, whatever its last
        progress tick said.
        """
        return [r for r in self.jobs.values() if not r.state.finished]
