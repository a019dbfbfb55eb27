"""What every journalled job engine does alike around its jobs (no Textual).

The upload engine (:class:`~xnat_tui.transfer.engine.TransferEngine`) and the download
engine (:class:`~xnat_tui.transfer.download.DownloadEngine`) schedule different work,
but hold their jobs the same way: a lease in the journal, pause/cancel/resume asked of
the holder through the journal when another process runs the job, ``wait`` until jobs
settle, requests polled and leases renewed from the progress ticker, a rate from the
last seconds' samples. :class:`JobLifecycle` is that part, once; an engine says how to
read a run's state (:meth:`JobLifecycle._run_state`) and provides pause/cancel/resume.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Iterable
from typing import Generic, TypeVar

from xnat_tui.transfer.events import (
    EngineMessage,
    EventHub,
    EventStream,
    JobProgress,
    ProgressTick,
)
from xnat_tui.transfer.journal import JobRecord, Journal
from xnat_tui.transfer.retry import MonotonicClock
from xnat_tui.transfer.types import JobState

RunT = TypeVar("RunT")

RATE_WINDOW = 5.0  # seconds of progress samples a rate is measured over
REQUEST_POLL = 0.5  # seconds between looks at the journal for other processes' requests

# ``wait`` wakes on a state change; this real-time timeout is only a safety net.
_WALL = MonotonicClock()


def add_sample(samples: deque[tuple[float, int]], now: float, sent: int) -> None:
    """Record bytes ``sent`` at ``now``; samples older than the window go."""
    samples.append((now, sent))
    while samples and now - samples[0][0] > RATE_WINDOW:
        samples.popleft()


def rate_of(samples: deque[tuple[float, int]]) -> float:
    """Bytes per second over the samples kept (0 until there are two)."""
    if len(samples) < 2:
        return 0.0
    (t0, b0), (t1, b1) = samples[0], samples[-1]
    return max(0.0, (b1 - b0) / (t1 - t0)) if t1 > t0 else 0.0


class JobLifecycle(Generic[RunT]):
    """The job-holding half of an engine; the engine sets these in its ``__init__``."""

    journal: Journal
    owner: str
    lease_ttl: float
    # Jobs failed (or also cancelled) that ``retry`` queues again.
    retry_states: tuple[JobState, ...] = (JobState.FAILED,)
    _hub: EventHub
    _changed: asyncio.Event
    _wake: asyncio.Event  # set when the scheduler has something new to look at
    _runs: dict[str, RunT]

    # ------------------------------------------------ what an engine provides
    def _run_state(self, run: RunT) -> JobState:
        raise NotImplementedError

    def _journal_jobs(self, states: Iterable[JobState]) -> list[JobRecord]:
        """This engine's jobs (its server, user and kinds) in the journal in ``states``."""
        raise NotImplementedError

    def _adopt(self, jid: str) -> bool:
        """Take a journalled job over (its lease and a run), False if it cannot be."""
        raise NotImplementedError

    def _pause_run(self, run: RunT) -> None:
        raise NotImplementedError

    def _cancel_run(self, run: RunT) -> None:
        """Stop the run's work, say so in the journal and let its lease go."""
        raise NotImplementedError

    def _emit_state(
        self, run: RunT, state: JobState, previous: JobState | None, message: str
    ) -> None:
        raise NotImplementedError

    async def start(self, *, resume: bool = True) -> list[str]:
        raise NotImplementedError

    def resume(self, job_id: str | None = None) -> list[str]:
        raise NotImplementedError

    # ------------------------------------------------------------------ shared
    def subscribe(self) -> EventStream:
        """A new event stream (state changes at once, progress ticks a few times a second)."""
        return self._hub.subscribe()

    async def wait(self, job_ids: Iterable[str] | None = None) -> dict[str, JobState]:
        """Until the given jobs (default: all held) are finished or paused; their states."""
        ids = list(job_ids) if job_ids is not None else list(self._runs)
        while True:
            states = {jid: self._state_of(jid) for jid in ids}
            if all(s.finished or s is JobState.PAUSED for s in states.values()):
                return states
            self._changed.clear()
            await _WALL.wait(self._changed, 1.0)

    def adopt(self, job_id: str) -> bool:
        """Take over one unfinished job from the journal (False if another process runs it)."""
        if job_id in self._runs:
            return True
        ok = self._adopt(job_id)
        self._wake.set()
        return ok

    def pause(self, job_id: str | None = None) -> list[str]:
        """Pause one job (or all held); another process's job is asked to."""
        ids = self._targets(job_id)
        for jid in ids:
            run = self._runs.get(jid)
            if run is None:
                self._remote_request(jid, "pause")
            elif not self._run_state(run).finished:
                self._pause_run(run)
        return ids

    def cancel(self, job_id: str | None = None) -> list[str]:
        """Cancel one job (or all held); another process's job is asked to."""
        ids = self._targets(job_id)
        for jid in ids:
            run = self._runs.get(jid)
            if run is None:
                self._remote_request(jid, "cancel")
            elif not self._run_state(run).finished:
                self._cancel_run(run)
        return ids

    async def retry(self, job_id: str | None = None) -> list[str]:
        """Queue failed jobs again (one, or all of this engine's); what was done stays done."""
        if job_id is None:
            ids = [j.id for j in self._journal_jobs(self.retry_states)]
        else:
            ids = [job_id]
        done: list[str] = []
        for jid in ids:
            previous = self.journal.job(jid).state
            if previous not in self.retry_states:
                continue
            self._runs.pop(jid, None)
            if self.journal.holder(jid) not in (None, self.owner):
                continue
            self.journal.reset_for_retry(jid)
            if self._adopt(jid):
                done.append(jid)
                self._emit_state(self._runs[jid], JobState.QUEUED, previous, "retrying")
        await self.start(resume=False)
        self._wake.set()
        return done

    def _adopt_paused(self, jid: str) -> bool:
        """Take over a job paused in the journal, for ``resume`` (default: ``_adopt``)."""
        return self._adopt(jid)

    def _run_to_resume(self, jid: str) -> tuple[RunT | None, bool]:
        """For ``resume``: the run of ``jid``, adopting it if the journal has it paused
        and nobody holds it. ``(None, True)``: another process holds it and is asked to
        resume it; ``(None, False)``: nothing to resume here."""
        run = self._runs.get(jid)
        if run is not None:
            return run, False
        if self.journal.job(jid).state is not JobState.PAUSED:
            return None, False
        if self.journal.holder(jid):
            self._remote_request(jid, "resume")
            return None, True
        if not self._adopt_paused(jid):
            return None, False
        return self._runs[jid], False

    def _message(self, level: str, text: str, job_id: str = "") -> None:
        self._hub.publish(EngineMessage(level, text, job_id))

    def _publish_tick(self, jobs: tuple[JobProgress, ...]) -> None:
        """One progress tick over the jobs given (their totals, rate and ETA)."""
        sent = sum(j.bytes_sent for j in jobs)
        total = sum(j.bytes_total for j in jobs)
        rate = sum(j.rate for j in jobs)
        self._hub.publish(
            ProgressTick(jobs, sent, total, rate, (total - sent) / rate if rate > 0 else None)
        )

    def _targets(self, job_id: str | None) -> list[str]:
        if job_id is not None:
            return [job_id]
        return [jid for jid, run in self._runs.items() if not self._run_state(run).finished]

    def _state_of(self, jid: str) -> JobState:
        run = self._runs.get(jid)
        return self._run_state(run) if run is not None else self.journal.job(jid).state

    def _remote_request(self, jid: str, action: str) -> None:
        """The job is not ours: ask its holder through the journal, or act directly."""
        job = self.journal.job(jid)
        if job.state.finished:
            return
        if self.journal.holder(jid):
            self.journal.request(jid, action)
            return
        if action == "pause" and job.state.active:
            self.journal.set_state(jid, JobState.PAUSED, "paused")
        elif action == "cancel":
            self.journal.set_state(jid, JobState.CANCELLED, "cancelled by the user")

    def _release_lease(self, jid: str) -> None:
        with contextlib.suppress(Exception):
            self.journal.release(jid, self.owner)

    def _apply_request(self, jid: str, action: str) -> None:
        """Another process asked (through the journal) for one of our jobs."""
        if jid not in self._runs:
            return
        if action == "pause":
            self.pause(jid)
        elif action == "cancel":
            self.cancel(jid)
        elif action == "resume":
            self.resume(jid)

    def _housekeeping(self, now: float, last_poll: float, last_renew: float) -> tuple[float, float]:
        """From the ticker: other processes' requests (every half second) and our
        leases (a third of their life). Returns the new (last_poll, last_renew)."""
        if now - last_poll >= REQUEST_POLL:
            last_poll = now
            try:
                for jid, action in self.journal.take_requests(self.owner):
                    self._apply_request(jid, action)
            except Exception as exc:  # journal busy: try again next tick
                self._message("warning", f"journal: {exc}")
        if now - last_renew >= self.lease_ttl / 3:
            last_renew = now
            with contextlib.suppress(Exception):
                self.journal.renew(self.owner, self.lease_ttl)
        return last_poll, last_renew
