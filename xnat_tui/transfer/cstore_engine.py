"""The DICOM send engine: journalled C-STORE jobs (kind ``send``) with per-instance
acknowledgement, retries with backoff, pause/cancel/resume, and a look-up afterwards.

It speaks the same protocol and events as the upload engine (``workflow.jobs.JobEngine``)
and shares its journal. Each association sends from its own thread; the instances the
receiver stores (0x0000 or a warning) are journalled as done in groups (one SQLite
transaction for up to ``ack_batch`` instances, committed before that association sends
its next instance once the group is full or the last commit is ``ack_interval`` old,
and always before the engine stops, pauses, cancels or sees a failure). The guarantee:
a resume after a dropped connection, a pause, a cancel, Ctrl+C or a crash of the
application sends only what was never acknowledged; after ``kill -9`` or a power cut,
the instances acknowledged in the last ``ack_interval`` seconds (at most ``ack_batch``
per association, and none beyond the one in flight when the receiver is slower than
one instance per ``ack_interval``) may be sent again; the look-up afterwards reports
a session split by such a late duplicate.

A job's ``params`` hold the destination (``ae``, ``host``, ``port``, ``calling_ae``), the
routing written into each copy (``routing``: keyword -> value, empty for none) and the
number of associations. The engine knows nothing of XNAT's REST API: the optional
``verifier`` looks the session up after the receiver's idle time.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xnat_tui.transfer.cstore import (
    DicomDestination,
    DicomSendError,
    FileInfo,
    StoreResult,
    contexts_for,
    in_memory,
    is_stored,
    read_info,
    sent_syntax,
    unsendable,
)
from xnat_tui.transfer.cstore_link import Link, open_link
from xnat_tui.transfer.events import (
    Event,
    EventHub,
    JobProgress,
    JobStateChanged,
    ProgressTick,
)
from xnat_tui.transfer.journal import JobRecord, Journal, make_owner
from xnat_tui.transfer.kinds import JobKind
from xnat_tui.transfer.lifecycle import JobLifecycle, add_sample, rate_of
from xnat_tui.transfer.retry import Clock, MonotonicClock, RetryPolicy
from xnat_tui.transfer.types import JobState

if TYPE_CHECKING:
    # Typing only: pydicom is loaded only for a changed copy, and the packer loads
    # stream_zip, which sending over DICOM never uses.
    from pydicom.dataset import Dataset

    from xnat_tui.transfer.packer import FileTransform

Key = tuple[str, int]  # (series_uid, index in the series): the journal's file key


@dataclass(frozen=True)
class Verification:
    """What the look-up found; ``ok`` False fails the job with ``message``."""

    ok: bool
    message: str
    # Prearchive entries to route by hand (Unassigned, or a split study).
    triage: tuple[str, ...] = ()


# The look-up after the idle time: (job, instances sent per series) -> what was found.
Verifier = Callable[[JobRecord, dict[str, int]], Awaitable[Verification]]
TransformFor = Callable[[JobRecord], "FileTransform | None"]


@dataclass
class _Instance:
    key: Key
    path: str  # text: a Path per instance costs more than sending a small one
    size: int
    info: FileInfo | None = None
    attempts: int = 0


@dataclass
class _SendRun:
    job: JobRecord
    total_files: int
    total_bytes: int
    series_files: dict[str, int]
    done: set[Key] = field(default_factory=set)
    sent_bytes: int = 0
    failed: dict[Key, str] = field(default_factory=dict)
    warnings: int = 0
    paused: bool = False
    task: asyncio.Task[None] | None = None
    samples: deque[tuple[float, int]] = field(default_factory=deque)
    triage: tuple[str, ...] = ()
    # The job's files in the journal's order: key -> (path, size).
    files: dict[Key, tuple[str, int]] = field(default_factory=dict)
    # Instances stored per series, kept with ``done`` (the progress tick reads it a few
    # times a second: counting ``done`` each time cost ~25 ms at 10,000 instances).
    per_series: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.per_series = Counter(uid for uid, _idx in self.done)

    def mark_done(self, key: Key) -> None:
        if key not in self.done:
            self.done.add(key)
            self.per_series[key[0]] += 1

    @property
    def remaining(self) -> int:
        return self.total_files - len(self.done) - len(self.failed)

    def counts(self) -> str:
        return f"{len(self.done)} sent, {len(self.failed)} failed, {self.remaining} remaining"


class SendEngine(JobLifecycle[_SendRun]):
    """Runs ``send`` jobs of one journal (one job at a time, N associations each).

    Holding jobs (subscribe, wait, adopt, pause/cancel/retry, requests from other
    processes, leases, ticks) is :class:`JobLifecycle`'s, as for uploads and downloads;
    what is the send engine's own is the scheduling: one job at a time from a queue,
    its associations in worker threads, acknowledgements journalled in groups."""

    kinds: tuple[JobKind, ...] = (JobKind.SEND,)

    def __init__(
        self,
        journal: Journal | None = None,
        *,
        verifier: Verifier | None = None,
        idle_time: float = 300.0,
        transform_for: TransformFor | None = None,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        progress_interval: float = 0.25,
        lease_ttl: float = 30.0,
        timeout: float = 30.0,
        opener: Callable[..., Link] = open_link,
        ack_batch: int = 64,
        ack_interval: float = 0.1,
    ) -> None:
        self.journal = journal or Journal()
        self.verifier = verifier
        self.idle_time = idle_time
        self.transform_for = transform_for
        self.retry_policy = retry or RetryPolicy()
        self.clock: Clock = clock or MonotonicClock()
        self.progress_interval = progress_interval
        self.lease_ttl = lease_ttl
        self.timeout = timeout
        self.opener = opener
        self.ack_batch = max(1, ack_batch)
        self.ack_interval = ack_interval
        self.owner = make_owner()
        self._hub = EventHub()
        self._runs: dict[str, _SendRun] = {}
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._changed = asyncio.Event()
        # JobLifecycle sets it on adopt/retry; this engine's scheduler is ``_queue``
        # (``_adopt`` queues what it takes), so nothing waits on it.
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._closed = False
        # path -> what the scan already read of its File Meta (``know``).
        self._known: dict[str, FileInfo] = {}

    # ================================================================= protocol
    async def start(self, *, resume: bool = True) -> list[str]:
        if self._worker is None:
            self._worker = asyncio.create_task(self._work_loop(), name="dicom-send")
            self._ticker = asyncio.create_task(self._tick_loop(), name="dicom-send-ticker")
        if not resume:
            return []
        resumed = [
            j.id
            for j in self._journal_jobs([JobState.QUEUED, JobState.SENDING, JobState.VERIFYING])
            if j.id not in self._runs and self._adopt(j.id)
        ]
        if resumed:
            self._message("info", f"resuming {len(resumed)} unfinished DICOM send(s)")
        return resumed

    def snapshot(self) -> list[JobProgress]:
        return [self._progress(r) for r in self._runs.values()]

    def resume(self, job_id: str | None = None) -> list[str]:
        ids: list[str] = []
        candidates = [job_id] if job_id else [j for j, r in self._runs.items() if r.paused]
        if job_id is None:
            candidates += [j.id for j in self._journal_jobs([JobState.PAUSED])]
        for jid in dict.fromkeys(candidates):
            run, asked = self._run_to_resume(jid)
            if run is None:
                if asked:  # another process holds it and was asked to resume
                    ids.append(jid)
                continue
            if not run.paused and run.job.state is not JobState.PAUSED:
                continue
            run.paused = False
            self._set_state(run, JobState.QUEUED, "resumed")
            self._queue.put_nowait(jid)
            ids.append(jid)
        return ids

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        tasks = [t for t in (self._worker, self._ticker) if t is not None]
        tasks += [r.task for r in self._runs.values() if r.task is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for run in self._runs.values():
            self._release(run)
        self._hub.close()

    # ============================================================ submit (workflow)
    def queue(self, job_ids: Iterable[str]) -> list[str]:
        """Adopt freshly journalled jobs and queue them."""
        return [jid for jid in job_ids if self._adopt(jid)]

    def know(self, infos: dict[str, FileInfo]) -> None:
        """What a scan of this process read of the files (path -> SOP class, instance,
        transfer syntax): the job then proposes its contexts without reading every
        file's start again (10,000 small files: ~0.2 s). A file the scan did not see,
        or a job resumed by another process, is read as before."""
        self._known.update(infos)

    def failures(self, job_id: str) -> dict[Key, str]:
        run = self._runs.get(job_id)
        return dict(run.failed) if run else {}

    def triage(self, job_id: str) -> tuple[str, ...]:
        run = self._runs.get(job_id)
        return run.triage if run else ()

    # ============================================================== internals
    def _run_state(self, run: _SendRun) -> JobState:
        return run.job.state

    def _journal_jobs(self, states: Iterable[JobState]) -> list[JobRecord]:
        return self.journal.jobs(states=list(states), kinds=self.kinds)

    def _adopt_paused(self, jid: str) -> bool:
        return self._adopt(jid, force=True)

    def _pause_run(self, run: _SendRun) -> None:
        # Instances on the wire finish and are journalled (``_send_items``); the rest
        # stay for the resume.
        run.paused = True
        if run.task is not None:
            run.task.cancel()
        self._set_state(run, JobState.PAUSED, f"paused: {run.counts()}")

    def _cancel_run(self, run: _SendRun) -> None:
        if run.task is not None:
            run.task.cancel()
        self._set_state(
            run,
            JobState.CANCELLED,
            f"cancelled by the user ({len(run.done)} instance(s) already stored stay "
            "with the receiver)",
        )
        self._release(run)

    def _adopt(self, jid: str, *, force: bool = False) -> bool:
        if not self.journal.acquire(jid, self.owner, self.lease_ttl):
            return False
        job = self.journal.job(jid)
        if job.kind not in self.kinds or not (job.state.active or force):
            self.journal.release(jid, self.owner)
            return False
        series = self.journal.series(jid)
        done = set(self.journal.done_files(jid))
        order = {s.uid: n for n, s in enumerate(series)}
        rows = sorted(
            self.journal.file_rows(jid), key=lambda r: (order.get(r[0], len(order)), r[1])
        )
        files = {(uid, idx): (path, size) for uid, idx, path, size in rows}
        run = _SendRun(
            job=job,
            total_files=len(files),
            total_bytes=sum(size for _path, size in files.values()),
            series_files={s.uid: s.file_count for s in series},
            done=done,
            sent_bytes=sum(files[k][1] for k in done if k in files),
            paused=job.state is JobState.PAUSED,
            files=files,
        )
        self._runs[jid] = run
        if not run.paused:
            self._queue.put_nowait(jid)
        return True

    def _release(self, run: _SendRun) -> None:
        self._release_lease(run.job.id)

    def _publish(self, event: Event) -> None:
        self._hub.publish(event)

    def _set_state(self, run: _SendRun, state: JobState, message: str = "") -> None:
        previous = run.job.state
        self.journal.set_state(run.job.id, state, message)
        run.job.state = state
        run.job.message = message
        self._emit_state(run, state, previous, message)

    def _emit_state(
        self, run: _SendRun, state: JobState, previous: JobState | None, message: str
    ) -> None:
        """The event of a state change already journalled (``retry`` resets the job
        in the journal itself)."""
        self._publish(
            JobStateChanged(
                run.job.id,
                run.job.display,
                state,
                previous,
                message,
                bytes_total=run.total_bytes,
                files_total=run.total_files,
                kind=JobKind.SEND,
            )
        )
        if previous is JobState.SENDING and state is not JobState.SENDING:
            # Ticks come only while sending: without this last one a send shorter than
            # the tick interval would stay at 0/N in the Transfers panel.
            last = self._progress(run)
            self._publish(ProgressTick((last,), last.bytes_sent, last.bytes_total, 0.0, None))
        self._changed.set()

    def _progress(self, run: _SendRun) -> JobProgress:
        rate = rate_of(run.samples)
        left = run.total_bytes - run.sent_bytes
        per_series = run.per_series
        series_done = sum(1 for uid, n in run.series_files.items() if per_series[uid] >= n)
        return JobProgress(
            job_id=run.job.id,
            label=run.job.display,
            state=run.job.state,
            bytes_sent=run.sent_bytes,
            bytes_total=run.total_bytes,
            files_sent=len(run.done),
            files_total=run.total_files,
            series_done=series_done,
            series_total=len(run.series_files),
            rate=rate,
            eta=left / rate if rate > 0 else None,
            message=run.counts() if run.job.state is JobState.SENDING else run.job.message,
            kind=JobKind.SEND,
        )

    async def _tick_loop(self) -> None:
        last_renew = self.clock.now()
        last_poll = 0.0
        while not self._closed:
            await self.clock.sleep(self.progress_interval)
            now = self.clock.now()
            moving = [r for r in self._runs.values() if r.job.state is JobState.SENDING]
            for run in moving:
                add_sample(run.samples, now, run.sent_bytes)
            if moving:
                self._publish_tick(tuple(self._progress(r) for r in moving))
            last_poll, last_renew = self._housekeeping(now, last_poll, last_renew)

    async def _work_loop(self) -> None:
        while True:
            jid = await self._queue.get()
            run = self._runs.get(jid)
            if run is None or run.paused or run.job.state.finished:
                continue
            run.task = asyncio.create_task(self._run_job(run), name=f"dicom-send-{jid}")
            try:
                await asyncio.shield(run.task)
            except asyncio.CancelledError:
                me = asyncio.current_task()
                if me is not None and me.cancelling():
                    raise  # the engine closes; a paused or cancelled job is not that
            if run.task.done() and not run.task.cancelled() and run.task.exception():
                exc = run.task.exception()
                self._set_state(run, JobState.FAILED, f"internal error: {exc}")
                self._release(run)
            run.task = None

    # ------------------------------------------------------------------ a job
    async def _run_job(self, run: _SendRun) -> None:
        job = run.job
        self._set_state(run, JobState.SENDING, "preparing")
        try:
            destination = DicomDestination.from_params(job.params)
        except (KeyError, ValueError) as exc:
            self._set_state(run, JobState.FAILED, f"bad destination in the journal: {exc}")
            self._release(run)
            return
        # The journal's file list as adopted (read once: ~10 µs a file).
        items = [
            _Instance(key, path, size)
            for key, (path, size) in run.files.items()
            if key not in run.done
        ]
        run.failed.clear()
        try:
            infos = await asyncio.to_thread(_read_infos, items, self._known)
        except (OSError, DicomSendError) as exc:
            self._set_state(run, JobState.FAILED, f"cannot read a file to send: {exc}")
            self._release(run)
            return
        refused = unsendable((it.path, info) for it, info in zip(items, infos, strict=True))
        if refused:
            more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
            self._set_state(run, JobState.FAILED, f"nothing sent: {refused[0]}{more}")
            self._release(run)
            return
        for it, info in zip(items, infos, strict=True):
            it.info = info
        transform = self.transform_for(job) if self.transform_for else None
        routing: dict[str, str] = dict(job.params.get("routing") or {})
        if items:
            ok = await self._send_items(run, destination, items, transform, routing)
            if not ok:
                return
        if run.failed:
            first_key, why = next(iter(run.failed.items()))
            self._set_state(
                run,
                JobState.FAILED,
                f"{run.counts()}; first failure: instance {first_key[1] + 1} of series "
                f"{first_key[0]}: {why}",
            )
            self._release(run)
            return
        await self._verify(run)

    async def _send_items(
        self,
        run: _SendRun,
        destination: DicomDestination,
        items: list[_Instance],
        transform: FileTransform | None,
        routing: dict[str, str],
    ) -> bool:
        """Each association runs its own send loop in its own thread (no hop to the event
        loop per instance); acknowledgements come back in batches (``_Lane.flush``)."""
        contexts = contexts_for(it.info for it in items if it.info is not None)
        n = max(1, min(int(run.job.params.get("associations") or 1), 32, len(items)))
        loop = asyncio.get_running_loop()
        lane = _Lane(loop=loop, outstanding=len(items), alive=n)
        for it in items:
            lane.items.put(it)
        self._set_state(run, JobState.SENDING, f"sending to {destination}: {run.counts()}")
        pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="dicom-assoc")
        threads = [
            loop.run_in_executor(
                pool, self._association, run, lane, destination, contexts, transform, routing
            )
            for _ in range(n)
        ]
        try:
            await lane.finished.wait()
        finally:
            lane.stop.set()
            for _ in range(n):
                lane.items.put(None)
            for task in list(lane.retries):
                task.cancel()
            # Instances already on the wire finish and their acknowledgements reach the
            # journal before this returns, even when the job is paused or cancelled, and
            # even when the engine closes meanwhile (a second cancellation): a lost
            # acknowledgement would have a resume send that instance again.
            gathered = asyncio.gather(*threads, return_exceptions=True)
            while True:
                try:
                    results = await asyncio.shield(gathered)
                    break
                except asyncio.CancelledError:
                    if gathered.done():
                        results = gathered.result()
                        break
            pool.shutdown(wait=False)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        if lane.errors and lane.outstanding > 0:
            self._set_state(run, JobState.FAILED, f"{lane.errors[0]} ({run.counts()})")
            self._release(run)
            return False
        return True

    # ------------------------------------------------- an association's thread
    def _association(
        self,
        run: _SendRun,
        lane: _Lane,
        destination: DicomDestination,
        contexts: list[tuple[str, str]],
        transform: FileTransform | None,
        routing: dict[str, str],
    ) -> None:
        """Send instances from the lane until it is empty or stopped (a worker thread).

        Acknowledgements are journalled in groups: a group is handed to the event loop
        and committed before this association sends its next instance once it holds
        ``ack_batch`` instances or the last commit is ``ack_interval`` seconds old. So
        at any moment at most ``ack_batch`` acknowledged instances, all answered in the
        last ``ack_interval`` seconds, are not yet in the journal: only a ``kill -9``
        in that window sends them again on resume (and a receiver slower than one
        instance per ``ack_interval`` has each answer journalled before the next
        instance goes out)."""
        link: Link | None = None
        acks: list[tuple[_Instance, StoreResult]] = []
        last = time.monotonic()
        try:
            while not lane.stop.is_set():
                if link is None or not link.alive:
                    # Opened before an instance is taken: a refused association leaves
                    # the queue to the associations that work.
                    link = self.opener(destination, contexts, timeout=self.timeout)
                try:
                    item = lane.items.get_nowait()
                except queue.Empty:
                    # Nothing to send now (the rest is in flight elsewhere or waiting
                    # for a retry): journal what is acknowledged before waiting.
                    if acks:
                        lane.flush(self._ack_batch, run, acks)
                        acks, last = [], time.monotonic()
                    try:
                        item = lane.items.get(timeout=0.2)
                    except queue.Empty:
                        continue
                if item is None:
                    break
                result = self._store_now(link, item, transform, routing)
                if _stored(result):
                    acks.append((item, result))
                    now = time.monotonic()
                    if len(acks) >= self.ack_batch or now - last >= self.ack_interval:
                        lane.flush(self._ack_batch, run, acks)
                        acks, last = [], now
                    continue
                if acks:  # journalled before the failure is looked at
                    lane.flush(self._ack_batch, run, acks)
                    acks, last = [], time.monotonic()
                lane.loop.call_soon_threadsafe(self._retry_or_fail, run, lane, item, result)
        except DicomSendError as exc:
            lane.loop.call_soon_threadsafe(self._lost_association, run, lane, str(exc))
        finally:
            if acks:
                lane.flush(self._ack_batch, run, acks)
            if link is not None:
                link.release()

    def _store_now(
        self,
        link: Link,
        item: _Instance,
        transform: FileTransform | None,
        routing: dict[str, str],
    ) -> StoreResult:
        info = item.info
        assert info is not None
        ts = sent_syntax(info.transfer_syntax)
        try:
            payload: str | Dataset
            if transform is None and not routing and info.streamable and ts == info.transfer_syntax:
                payload = item.path  # byte for byte from disk
            else:
                path = Path(item.path)
                data = transform(path, path.read_bytes()) if transform else None
                payload = in_memory(path, data, routing)
            return link.store(payload, info.sop_class, ts, info.sop_instance)
        except OSError as exc:
            return StoreResult(-1, f"cannot read {item.path}: {exc.strerror or exc}")
        except Exception as exc:  # anonymization or a header pydicom cannot encode
            return StoreResult(-1, f"cannot prepare the copy to send: {exc}")

    # ------------------------------------------------------- on the event loop
    def _ack_batch(
        self, run: _SendRun, lane: _Lane, acks: list[tuple[_Instance, StoreResult]]
    ) -> None:
        """Journal a group of stored instances in one transaction."""
        self.journal.files_done(run.job.id, [item.key for item, _ in acks])
        for item, result in acks:
            run.mark_done(item.key)
            run.sent_bytes += item.size
            if result.status != 0:
                run.warnings += 1
                self._message("warning", f"{_name(item)}: {result.message}", run.job.id)
        lane.resolve(len(acks))

    def _retry_or_fail(
        self, run: _SendRun, lane: _Lane, item: _Instance, result: StoreResult
    ) -> None:
        item.attempts += 1
        if result.status == -1 or item.attempts >= self.retry_policy.attempts:
            run.failed[item.key] = result.message
            self._message("error", f"{_name(item)}: {result.message} (gave up)", run.job.id)
            lane.resolve(1)
            return
        delay = self.retry_policy.delay(item.attempts)
        self._message(
            "warning",
            f"{_name(item)}: {result.message}; retry {item.attempts} in {delay:.1f} s",
            run.job.id,
        )

        async def later() -> None:
            await self.clock.sleep(delay)
            lane.items.put(item)

        task = asyncio.ensure_future(later())
        lane.retries.add(task)
        task.add_done_callback(lane.retries.discard)

    def _lost_association(self, run: _SendRun, lane: _Lane, why: str) -> None:
        lane.errors.append(why)
        lane.alive -= 1
        if lane.alive > 0:
            self._message("warning", f"one association fewer: {why}", run.job.id)
        else:
            lane.finished.set()

    async def _verify(self, run: _SendRun) -> None:
        job = run.job
        stored = f"all {len(run.done)} instance(s) stored" + (
            f" ({run.warnings} with a warning)" if run.warnings else ""
        )
        if self.verifier is None or not job.params.get("verify", True):
            self._set_state(run, JobState.VERIFIED, f"{stored}; not looked up (no XNAT connection)")
            self.journal.set_receipt(job.id, "", "count")
            self._release(run)
            return
        # The job's own destination's idle time (a sandbox receiver builds after a few
        # seconds, XNAT after 5 minutes); the engine's for jobs journalled without one.
        idle = float(job.params.get("idle_seconds", self.idle_time))
        self._set_state(
            run,
            JobState.VERIFYING,
            f"{stored}; looking the session up after the receiver's idle time ({idle:g} s)",
        )
        await self.clock.sleep(idle)
        per_series: dict[str, int] = {}
        for uid, _idx in run.done:
            per_series[uid] = per_series.get(uid, 0) + 1
        try:
            found = await self.verifier(job, per_series)
        except Exception as exc:
            self._set_state(run, JobState.FAILED, f"{stored}; the look-up failed: {exc}")
            self._release(run)
            return
        run.triage = found.triage
        state = JobState.VERIFIED if found.ok else JobState.FAILED
        self._set_state(run, state, f"{stored}; {found.message}")
        if found.ok:
            self.journal.set_receipt(job.id, "", "count")
        self._release(run)


def _stored(result: StoreResult) -> bool:
    return result.status is not None and result.status >= 0 and is_stored(result.status)


@dataclass
class _Lane:
    """What one job's association threads share with the event loop."""

    loop: asyncio.AbstractEventLoop
    outstanding: int  # instances neither journalled as stored nor given up on
    alive: int  # association threads still able to send
    items: queue.SimpleQueue[_Instance | None] = field(default_factory=queue.SimpleQueue)
    stop: threading.Event = field(default_factory=threading.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    errors: list[str] = field(default_factory=list)
    retries: set[asyncio.Future[None]] = field(default_factory=set)

    def resolve(self, count: int) -> None:
        self.outstanding -= count
        if self.outstanding <= 0:
            self.finished.set()

    def flush(
        self,
        commit: Callable[[_SendRun, _Lane, list[tuple[_Instance, StoreResult]]], None],
        run: _SendRun,
        acks: list[tuple[_Instance, StoreResult]],
    ) -> None:
        """From an association's thread: have the loop journal ``acks`` and wait until
        it has (the journal's connection belongs to the loop's thread)."""
        committed = threading.Event()

        def on_loop() -> None:
            try:
                commit(run, self, acks)
            finally:
                committed.set()

        try:
            self.loop.call_soon_threadsafe(on_loop)
        except RuntimeError:  # the loop is closed: nothing can journal any more
            return
        while not committed.wait(1.0):
            if self.loop.is_closed() or not self.loop.is_running():
                return


def _read_infos(items: list[_Instance], known: dict[str, FileInfo]) -> list[FileInfo]:
    return [known.get(it.path) or read_info(Path(it.path)) for it in items]


def _name(item: _Instance) -> str:
    return os.path.basename(item.path)


def default_params(
    destination: DicomDestination,
    *,
    routing: dict[str, str],
    associations: int,
    verify: bool,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What a send job journals in ``params``."""
    return {
        **destination.to_params(),
        "routing": dict(routing),
        "associations": associations,
        "verify": verify,
        "journalled": time.time(),
        **(extra or {}),
    }
