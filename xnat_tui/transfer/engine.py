"""The transfer engine: scheduler, sender, commit, resume and verification.

One :class:`TransferEngine` per server connection, living on the caller's event loop
(the TUI's App or the CLI's ``asyncio.run``). It runs up to ``concurrency`` series at
once across all its jobs, journals every step before and after it happens, and
publishes one throttled event stream (:meth:`subscribe`).

Life cycle of a job: QUEUED → SENDING (series by series, each one zip) → COMMITTING →
VERIFYING → VERIFIED | FAILED. PAUSED and CANCELLED come from the user. A process
that dies leaves the job in its active state; the next ``start()`` (CLI or TUI)
resumes it: acknowledged series are not re-sent, a series cut mid-stream is re-sent
whole, and a commit whose outcome is unknown is looked up on the server first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from xnat_tui.config import check_bandwidth
from xnat_tui.transfer import as_is
from xnat_tui.transfer.events import (
    Event,
    EventHub,
    JobProgress,
    JobStateChanged,
    SeriesStateChanged,
)
from xnat_tui.transfer.journal import (
    JobRecord,
    Journal,
    NewJob,
    SeriesRecord,
    make_owner,
)
from xnat_tui.transfer.kinds import JobKind
from xnat_tui.transfer.lifecycle import JobLifecycle, add_sample, rate_of
from xnat_tui.transfer.packer import FileTransform, SeriesPacker
from xnat_tui.transfer.plan import Plan, PlannedJob
from xnat_tui.transfer.retry import (
    Clock,
    MonotonicClock,
    RetryPolicy,
    TokenBucket,
)
from xnat_tui.transfer.server import (
    CommitOutcome,
    RemoteSession,
    ServerPort,
    SourceChanged,
    TransferError,
    is_retriable,
)
from xnat_tui.transfer.types import (
    Compression,
    Destination,
    JobState,
    SeriesState,
)
from xnat_tui.transfer.verifier import (
    Receipt,
    default_receipts_dir,
    tighten_receipts,
    verify,
    write_receipt,
)

TransformFactory = Callable[[JobRecord], FileTransform | None]
"""Per job: the anonymization transform to apply in the packer (None: send as is)."""

# Prearchive statuses during which a commit is still being carried out by the server.
_IN_PROGRESS = ("BUILDING", "ARCHIVING", "QUEUED_", "_")


@dataclass
class _Run:
    """A job this engine holds the lease for."""

    job: JobRecord
    series: dict[str, SeriesRecord]
    order: list[str]
    paused: bool = False
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    packers: dict[str, SeriesPacker | as_is.ArchiveBody] = field(default_factory=dict)
    not_before: dict[str, float] = field(default_factory=dict)
    finalizer: asyncio.Task[None] | None = None
    samples: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=40))
    receipt: Receipt | None = None

    @property
    def bytes_total(self) -> int:
        return sum(s.bytes for s in self.series.values())

    @property
    def files_total(self) -> int:
        return sum(s.file_count for s in self.series.values())

    def done_series(self) -> list[SeriesRecord]:
        return [s for s in self.series.values() if s.state in (SeriesState.SENT, SeriesState.EMPTY)]

    def progress_bytes(self) -> tuple[int, int]:
        done = self.done_series()
        b = sum(s.bytes for s in done)
        f = sum(s.file_count for s in done)
        for uid, p in self.packers.items():
            if self.series[uid].state is SeriesState.SENDING:
                b += p.bytes_done
                f += p.files_done
        return b, f


class TransferEngine(JobLifecycle[_Run]):
    """Schedules, sends, commits and verifies jobs for one server.

    ``server`` is a :class:`ServerPort` (wrap an ``XnatClient`` with
    :func:`xnat_tui.transfer.xnat_port.port_for`). ``transform_for`` returns the
    anonymization hook for a job. Call :meth:`start` once (it resumes unfinished
    jobs of this server), :meth:`submit` plans, and :meth:`close` when done; jobs
    still running at close stay resumable.
    """

    def __init__(
        self,
        server: ServerPort,
        journal: Journal | None = None,
        *,
        concurrency: int = 4,
        bandwidth_limit_mbps: float = 0.0,
        retry: RetryPolicy | None = None,
        compression: Compression = Compression.STORED,
        transform_for: TransformFactory | None = None,
        receipts_dir: Path | None = None,
        progress_interval: float = 0.25,
        lease_ttl: float = 30.0,
        clock: Clock | None = None,
        kinds: Collection[JobKind] = (JobKind.UPLOAD,),
    ) -> None:
        self.server = server
        # The journal also holds downloads, DICOM sends and copies, which other engines
        # run: this one adopts, resumes and retries only the kinds it was given.
        self.kinds = tuple(kinds)
        self.journal = journal or Journal()
        self.concurrency = max(1, concurrency)
        self.retry_policy = retry or RetryPolicy()
        self.compression = compression
        self.transform_for = transform_for
        self.receipts_dir = receipts_dir or default_receipts_dir()
        tighten_receipts(self.receipts_dir)
        self.progress_interval = progress_interval
        self.lease_ttl = lease_ttl
        self.owner = make_owner()
        # Every pause, tick, retry delay and bandwidth wait goes through this clock.
        self.clock: Clock = clock or MonotonicClock()
        # A cap that cannot be meant (NaN, negative, 1e-300) is refused, not obeyed.
        bandwidth = check_bandwidth(bandwidth_limit_mbps)
        self.bucket = TokenBucket(bandwidth * 1e6 / 8, clock=self.clock) if bandwidth > 0 else None
        self._hub = EventHub()
        self._runs: dict[str, _Run] = {}
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._closed = False
        self._in_flight = 0

    # ================================================================= public
    async def start(self, *, resume: bool = True) -> list[str]:
        """Start scheduling; with ``resume`` take over unfinished jobs of this server.

        Returns the ids of resumed jobs. Jobs held by another live process are left alone.
        """
        if self._dispatcher is None:
            self._dispatcher = asyncio.create_task(self._dispatch_loop(), name="transfer-dispatch")
            self._ticker = asyncio.create_task(self._tick_loop(), name="transfer-ticker")
        if not resume:
            return []
        resumed: list[str] = []
        # Only this server's and user's: another user's jobs are theirs to resume, with
        # their credentials.
        for job in self._journal_jobs(
            [JobState.QUEUED, JobState.SENDING, JobState.COMMITTING, JobState.VERIFYING]
        ):
            if job.id not in self._runs and self._adopt(job.id):
                resumed.append(job.id)
        # Paused jobs are held too (still paused), so they show in snapshot() and a
        # resume from this process or a request from another one reaches them.
        for job in self._journal_jobs([JobState.PAUSED]):
            if job.id not in self._runs:
                self._adopt(job.id, force=True)
        if resumed:
            self._message("info", f"resuming {len(resumed)} unfinished transfer(s)")
        return resumed

    async def submit(self, plan: Plan | Iterable[PlannedJob]) -> list[str]:
        """Journal every sendable job of the plan (before anything is sent) and queue it."""
        planned = plan.sendable if isinstance(plan, Plan) else [p for p in plan if p.ok]
        new_jobs: list[NewJob] = []
        for p in planned:
            r = p.request
            new_jobs.append(
                NewJob(
                    server=self.server.server_url,
                    username=self.server.username,
                    project=r.project,
                    subject=r.subject,
                    label=r.label,
                    study_uid=r.session.study_instance_uid,
                    destination=r.destination,
                    overwrite=r.overwrite,
                    series=p.series,
                    anonymization=r.anonymization,
                    compression=self.compression,
                    verify_digests=p.verify_digests,
                    new_subject=p.new_subject,
                    verdict=str(p.verdict),
                    source_root=str(r.session.root or ""),
                    anon_options=r.anon_options.for_profile(r.anonymization),
                    anon_variables=dict(r.variables),
                    kind=r.kind,
                    params=dict(r.params),
                )
            )
        ids = self.journal.create_jobs(new_jobs)
        for jid in ids:
            if self._adopt(jid):
                run = self._runs[jid]
                self._emit_state(run, JobState.QUEUED, None, "queued")
        await self.start(resume=False)
        self._wake.set()
        return ids

    def _pause_run(self, run: _Run) -> None:
        # In-flight series stop within a second; they are resent whole later.
        run.paused = True
        for task in list(run.tasks.values()):
            task.cancel()
        if run.finalizer is None:
            self._set_state(run, JobState.PAUSED, "paused")

    def _journal_jobs(self, states: Iterable[JobState]) -> list[JobRecord]:
        return self.journal.jobs(
            states=list(states),
            server=self.server.server_url,
            username=self.server.username,
            kinds=self.kinds,
        )

    def resume(self, job_id: str | None = None) -> list[str]:
        """Resume paused jobs (also ones paused by an earlier process)."""
        ids: list[str] = []
        if job_id is None:
            candidates = [j.id for j in self._journal_jobs([JobState.PAUSED])]
            candidates += [jid for jid, r in self._runs.items() if r.paused]
        else:
            candidates = [job_id]
        for jid in dict.fromkeys(candidates):
            run = self._runs.get(jid)
            if run is None:
                job = self.journal.job(jid)
                if job.state is not JobState.PAUSED:
                    continue
                if self.journal.holder(jid):
                    self._remote_request(jid, "resume")
                    ids.append(jid)
                    continue
                if not self._adopt(jid, force=True):
                    continue
                run = self._runs[jid]
            run.paused = False
            if run.job.state is JobState.PAUSED:
                self._set_state(run, JobState.QUEUED, "resumed")
            ids.append(jid)
        self._wake.set()
        return ids

    def _cancel_run(self, run: _Run) -> None:
        # Series already in the prearchive stay there (the message says where).
        for task in list(run.tasks.values()):
            task.cancel()
        if run.finalizer is not None:
            run.finalizer.cancel()
        where = f"; partial data left at {run.job.prearchive_uri}" if run.job.prearchive_uri else ""
        self._set_state(run, JobState.CANCELLED, f"cancelled by the user{where}")
        self._release(run)

    def snapshot(self) -> list[JobProgress]:
        """Progress of every job this engine holds (for a first render)."""
        return [self._progress(run) for run in self._runs.values()]

    def job_ids(self) -> list[str]:
        return list(self._runs)

    def receipt(self, job_id: str) -> Receipt | None:
        run = self._runs.get(job_id)
        return run.receipt if run else None

    async def close(self) -> None:
        """Stop everything; unfinished jobs stay journalled as they are, to be resumed."""
        if self._closed:
            return
        self._closed = True
        tasks: list[asyncio.Task[None]] = []
        for run in self._runs.values():
            tasks += list(run.tasks.values())
            if run.finalizer is not None:
                tasks.append(run.finalizer)
        for t in (self._dispatcher, self._ticker):
            if t is not None:
                tasks.append(t)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for run in list(self._runs.values()):
            self._release(run)
        self._hub.close()

    async def __aenter__(self) -> TransferEngine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ============================================================== internals
    def _run_state(self, run: _Run) -> JobState:
        return run.job.state

    def _adopt(self, jid: str, *, force: bool = False) -> bool:
        if not self.journal.acquire(jid, self.owner, self.lease_ttl):
            return False
        job = self.journal.job(jid)
        if job.kind not in self.kinds or not (
            job.state.active or force or job.state is JobState.PAUSED
        ):
            self.journal.release(jid, self.owner)
            return False
        records = self.journal.series(jid)
        for s in records:
            if s.state is SeriesState.SENDING:
                # Cut mid-stream by a crash: the import is idempotent per file, resend whole.
                self.journal.series_interrupted(jid, s.uid, "interrupted; will be re-sent whole")
                s.state = SeriesState.PENDING
        run = _Run(job=job, series={s.uid: s for s in records}, order=[s.uid for s in records])
        run.paused = job.state is JobState.PAUSED
        self._runs[jid] = run
        self._wake.set()
        return True

    def _release(self, run: _Run) -> None:
        self._release_lease(run.job.id)

    # ---------------------------------------------------------------- events
    def _publish(self, event: Event) -> None:
        self._hub.publish(event)

    def _emit_state(self, run: _Run, state: JobState, previous: JobState | None, msg: str) -> None:
        self._publish(
            JobStateChanged(
                run.job.id,
                run.job.display,
                state,
                previous,
                msg,
                bytes_total=run.bytes_total,
                files_total=run.files_total,
                kind=run.job.kind,
            )
        )
        self._changed.set()

    def _set_state(self, run: _Run, state: JobState, message: str = "") -> None:
        previous = run.job.state
        if previous is state and not message:
            return
        self.journal.set_state(run.job.id, state, message)
        run.job.state = state
        run.job.message = message
        self._emit_state(run, state, previous, message)

    def _series_event(self, run: _Run, s: SeriesRecord, msg: str = "") -> None:
        self._publish(SeriesStateChanged(run.job.id, s.uid, s.number, s.state, msg, s.attempts))

    def _progress(self, run: _Run) -> JobProgress:
        b, f = run.progress_bytes()
        rate = rate_of(run.samples)
        remaining = run.bytes_total - b
        eta = remaining / rate if rate > 0 else None
        return JobProgress(
            job_id=run.job.id,
            label=run.job.display,
            kind=run.job.kind,
            state=run.job.state,
            bytes_sent=b,
            bytes_total=run.bytes_total,
            files_sent=f,
            files_total=run.files_total,
            series_done=len(run.done_series()),
            series_total=len(run.series),
            rate=rate,
            eta=eta if run.job.state is JobState.SENDING else None,
            message=run.job.message,
        )

    async def _tick_loop(self) -> None:
        last_renew = self.clock.now()
        last_poll = 0.0
        while not self._closed:
            await self.clock.sleep(self.progress_interval)
            now = self.clock.now()
            moving = [
                r
                for r in self._runs.values()
                if r.job.state in (JobState.SENDING, JobState.COMMITTING, JobState.VERIFYING)
            ]
            for run in moving:
                add_sample(run.samples, now, run.progress_bytes()[0])
            if moving:
                held = [r for r in self._runs.values() if not r.job.state.finished]
                self._publish_tick(tuple(self._progress(r) for r in held))
            last_poll, last_renew = self._housekeeping(now, last_poll, last_renew)

    # ------------------------------------------------------------- scheduling
    def _next_work(self) -> tuple[_Run, SeriesRecord] | float | None:
        """The next series to send, or the delay until one becomes due."""
        soonest: float | None = None
        now = self.clock.now()
        for run in self._runs.values():
            if run.paused or not run.job.state.active or run.finalizer is not None:
                continue
            if run.tasks and as_is.path_of(run.job.params):
                continue  # one body carries every series of an as-is job
            for uid in run.order:
                s = run.series[uid]
                if s.state is not SeriesState.PENDING or uid in run.tasks:
                    continue
                due = run.not_before.get(uid, 0.0)
                if due > now:
                    soonest = due - now if soonest is None else min(soonest, due - now)
                    continue
                return run, s
        return soonest

    async def _dispatch_loop(self) -> None:
        while not self._closed:
            self._wake.clear()
            timeout: float | None = None
            while self._in_flight < self.concurrency:
                work = self._next_work()
                if isinstance(work, tuple):
                    run, s = work
                    self._launch(run, s)
                    continue
                timeout = work
                break
            self._finalize_ready()
            await self.clock.wait(self._wake, timeout if timeout else 1.0)

    def _launch(self, run: _Run, s: SeriesRecord) -> None:
        if run.job.state in (JobState.QUEUED,):
            self._set_state(run, JobState.SENDING, "")
        self._in_flight += 1
        send = self._send_archive if as_is.path_of(run.job.params) else self._send_series
        task = asyncio.create_task(send(run, s), name=f"send-{run.job.id}-{s.uid[-8:]}")
        run.tasks[s.uid] = task

        def done(_: asyncio.Task[None], run: _Run = run, uid: str = s.uid) -> None:
            self._in_flight -= 1
            run.tasks.pop(uid, None)
            run.packers.pop(uid, None)
            self._after_series(run)
            self._wake.set()

        task.add_done_callback(done)

    def _finalize_ready(self) -> None:
        for run in list(self._runs.values()):
            if run.finalizer is not None or run.paused or run.tasks:
                continue
            state = run.job.state
            if state in (JobState.COMMITTING, JobState.VERIFYING) or (
                state in (JobState.QUEUED, JobState.SENDING)
                and all(
                    s.state in (SeriesState.SENT, SeriesState.EMPTY) for s in run.series.values()
                )
            ):
                run.finalizer = asyncio.create_task(
                    self._finalize(run), name=f"commit-{run.job.id}"
                )

                def done(_: asyncio.Task[None], run: _Run = run) -> None:
                    run.finalizer = None
                    self._wake.set()

                run.finalizer.add_done_callback(done)

    def _after_series(self, run: _Run) -> None:
        if run.job.state.finished or run.tasks:
            return
        states = [s.state for s in run.series.values()]
        if SeriesState.PENDING in states or SeriesState.SENDING in states:
            return
        failed = [s for s in run.series.values() if s.state is SeriesState.FAILED]
        if failed:
            # Series that failed for the same reason (a full disk fails them all) are
            # named together, so the reason reads once.
            by_reason: dict[str, list[str]] = {}
            for s in failed:
                name = str(s.number) if s.number is not None else s.uid
                by_reason.setdefault(s.message, []).append(name)
            detail = "; ".join(
                f"series {', '.join(names)}: {reason}" for reason, names in by_reason.items()
            )
            retry = f"'xnat-tui transfers retry {run.job.id}'"
            if any(_disk_full(s.message) for s in failed):
                hint = f"An administrator must free space on the server; then {retry}"
            else:
                hint = f"Fix the cause, then {retry}"
            if any("vanished" in s.message for s in failed):
                hint += " (add --skip-missing to send the session without the missing files)"
            if any("changed since it was scanned" in s.message for s in failed):
                hint = (
                    "A file changed since the scan: scan again and upload anew (a retry "
                    "checks the files against the old scan and refuses them again)"
                )
            self._set_state(
                run,
                JobState.FAILED,
                f"{len(failed)} series failed, not committed ({detail}). {hint}",
            )
            self._release(run)

    # ----------------------------------------------------------------- sending
    def _body(self, packer: SeriesPacker) -> AsyncIterator[bytes]:
        return self._throttled(packer.body())

    async def _send_series(self, run: _Run, s: SeriesRecord) -> None:
        job = run.job
        s.attempts = self.journal.series_started(job.id, s.uid)
        s.state = SeriesState.SENDING
        self._series_event(run, s, f"attempt {s.attempts}")
        files = self.journal.files(job.id, s.uid)
        try:
            transform = self.transform_for(job) if self.transform_for else None
        except Exception as exc:
            self._send_failed(run, s, exc)
            return
        packers: list[SeriesPacker] = []

        def body() -> AsyncIterator[bytes]:
            # A fresh packer per call: the client may resend after a transparent re-login.
            if packers:
                packers[-1].cancel()
            p = SeriesPacker(s.uid, files, compression=job.compression, transform=transform)
            packers.append(p)
            run.packers[s.uid] = p
            return self._body(p)

        # Stored and not anonymized: the exact size is known, so the request carries a
        # Content-Length and skips chunked encoding (one copy less per chunk).
        probe = SeriesPacker(s.uid, files, compression=job.compression, transform=transform)
        body_factory = _Body(body, probe.content_length)
        extra: dict[str, str] = {}
        if job.anonymization not in ("", "none"):
            # Anonymized here (the server's scripts or the Basic Profile): the server must
            # not run its site script over it a second time (as the Desktop Client does).
            extra["prevent_anon"] = "true"
        try:
            uri = await self.server.import_series(
                body_factory,
                project=job.project,
                subject=job.subject,
                session=job.label,
                overwrite=str(job.overwrite),
                extra=extra,
            )
        except asyncio.CancelledError:
            for p in packers:
                p.cancel()
            self.journal.series_interrupted(job.id, s.uid, "interrupted; will be re-sent whole")
            s.state = SeriesState.PENDING
            self._series_event(run, s, "interrupted")
            raise
        except Exception as exc:
            for p in packers:
                p.cancel()
            err = next((p.error for p in reversed(packers) if p.error is not None), None)
            self._send_failed(run, s, err or exc)
            return
        if not packers or len(packers[-1].manifest) != len(files):
            self._send_failed(
                run, s, TransferError("the upload ended before every file was sent", retriable=True)
            )
            return
        if not uri:
            # A 200 without a prearchive URI: the server stored none of these files (its
            # import filter dropped them all, or it could not read them). The plan left
            # out every series it predicted the filter would drop, so this is a surprise
            # that must never pass for an uploaded series.
            reason = (
                f"the server answered but imported none of the {len(files)} file(s) of this "
                "series (dropped by the server's series import filter, or files it could not "
                "read); nothing of it is on the server"
            )
            self.journal.series_interrupted(job.id, s.uid, reason, failed=True)
            s.state, s.message = SeriesState.FAILED, reason
            self._series_event(run, s, reason)
            self._message("error", f"{job.display} series {s.number}: {reason}", job.id)
            return
        s.manifest = list(packers[-1].manifest)
        s.uri = uri
        self.journal.series_sent(job.id, s.uid, uri, s.manifest)
        s.state = SeriesState.SENT
        if not job.prearchive_uri:
            job.prearchive_uri = uri
        elif uri != job.prearchive_uri:
            self._message(
                "warning",
                f"series {s.number} went to {uri}, not {job.prearchive_uri}",
                job.id,
            )
        self._series_event(run, s)

    async def _send_archive(self, run: _Run, lead: SeriesRecord) -> None:
        """An as-is job: the archive file itself is one import for all its series (what
        is pending of them); they are sent, retried and journalled together."""
        job = run.job
        path = as_is.path_of(job.params)
        pending = [run.series[u] for u in run.order if run.series[u].state is SeriesState.PENDING]
        for s in pending:
            s.attempts = self.journal.series_started(job.id, s.uid)
            s.state = SeriesState.SENDING
            self._series_event(run, s, f"attempt {s.attempts} (the archive as it is)")

        def follow_lead() -> None:
            for s in pending:
                if s is lead:
                    continue
                failed = lead.state is SeriesState.FAILED
                self.journal.series_interrupted(job.id, s.uid, lead.message, failed=failed)
                s.state, s.message = lead.state, lead.message
                if lead.uid in run.not_before:
                    run.not_before[s.uid] = run.not_before[lead.uid]
                self._series_event(run, s, lead.message)

        try:
            files = {s.uid: self.journal.files(job.id, s.uid) for s in pending}
            manifests = await asyncio.to_thread(as_is.member_manifests, files)
            body = as_is.ArchiveBody(
                path, sum(s.bytes for s in pending), sum(s.file_count for s in pending)
            )
            run.packers[lead.uid] = body

            def chunks() -> AsyncIterator[bytes]:
                return self._throttled(body.chunks())

            factory = _Body(chunks, body.content_length, body.content_type)
            uri = await self.server.import_series(
                factory,
                project=job.project,
                subject=job.subject,
                session=job.label,
                overwrite=str(job.overwrite),
                extra={"Ignore-Unparsable": "true"},
            )
        except asyncio.CancelledError:
            for s in pending:
                self.journal.series_interrupted(job.id, s.uid, "interrupted; will be re-sent whole")
                s.state = SeriesState.PENDING
                self._series_event(run, s, "interrupted")
            raise
        except Exception as exc:
            self._send_failed(run, lead, exc)
            follow_lead()
            return
        if not uri:
            reason = (
                "the server answered but imported none of the archive's DICOM files; "
                "nothing of it is on the server"
            )
            for s in pending:
                self.journal.series_interrupted(job.id, s.uid, reason, failed=True)
                s.state, s.message = SeriesState.FAILED, reason
                self._series_event(run, s, reason)
            self._message("error", f"{job.display}: {reason}", job.id)
            return
        for s in pending:
            s.manifest, s.uri = manifests[s.uid], uri
            self.journal.series_sent(job.id, s.uid, uri, s.manifest)
            s.state = SeriesState.SENT
            self._series_event(run, s)
        if not job.prearchive_uri:
            job.prearchive_uri = uri

    async def _throttled(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            if self.bucket is not None:
                await self.bucket.take(len(chunk))
            yield chunk

    def _send_failed(self, run: _Run, s: SeriesRecord, exc: BaseException) -> None:
        job = run.job
        text = str(exc) or type(exc).__name__
        if isinstance(exc, SourceChanged):
            self.journal.series_interrupted(job.id, s.uid, text, failed=True)
            s.state, s.message = SeriesState.FAILED, text
            self._series_event(run, s, text)
            self._message("error", f"{job.display}: {text}", job.id)
            return
        if _disk_full(text):
            # The fact only: what to do about it is said once, in the job's message
            # (_after_series), not once per series and again per channel.
            reason = (
                text if "out of disk space" in text else f"the server is out of disk space ({text})"
            )
            self.journal.series_interrupted(job.id, s.uid, reason, failed=True)
            s.state, s.message = SeriesState.FAILED, reason
            self._series_event(run, s, reason)
            return
        if is_retriable(exc) and s.attempts < self.retry_policy.attempts:
            delay = self.retry_policy.delay(s.attempts)
            self.journal.series_interrupted(job.id, s.uid, text)
            s.state, s.message = SeriesState.PENDING, text
            run.not_before[s.uid] = self.clock.now() + delay
            self._series_event(run, s, f"{text}; retrying in {delay:.1f}s")
            self._message(
                "warning",
                f"{job.display} series {s.number}: {text}; "
                f"retry {s.attempts}/{self.retry_policy.attempts - 1} in {delay:.1f}s",
                job.id,
            )
            return
        reason = text if not is_retriable(exc) else f"{text} (gave up after {s.attempts} attempts)"
        self.journal.series_interrupted(job.id, s.uid, reason, failed=True)
        s.state, s.message = SeriesState.FAILED, reason
        self._series_event(run, s, reason)
        self._message("error", f"{job.display} series {s.number}: {reason}", job.id)

    # -------------------------------------------------------- commit + verify
    def _auto_archive(self, job: JobRecord) -> bool | None:
        if job.destination is Destination.ARCHIVE:
            return True
        if job.destination is Destination.PREARCHIVE:
            return False
        return None

    async def _finalize(self, run: _Run) -> None:
        job = run.job
        try:
            if not job.prearchive_uri:
                self._set_state(
                    run,
                    JobState.FAILED,
                    "the server kept none of the files (import filter); nothing to commit",
                )
                self._release(run)
                return
            if job.commit_phase != "done":
                self._set_state(run, JobState.COMMITTING, "")
                outcome = await self._commit_with_retries(run)
                if outcome is None:
                    return
            self._set_state(run, JobState.VERIFYING, "")
            await self._verify_with_retries(run)
        except Exception as exc:  # never let one job's bug stop the engine
            self._set_state(run, JobState.FAILED, f"unexpected error: {exc!r}")
            self._release(run)

    async def _commit_with_retries(self, run: _Run) -> CommitOutcome | None:
        job = run.job
        attempt = 0
        while True:
            attempt += 1
            try:
                if job.commit_phase == "started":
                    looked = await self._lookup_commit(run)
                    if looked is not None:
                        self.journal.commit_done(job.id, archived=looked.archived, uri=looked.uri)
                        job.commit_phase, job.archived, job.result_uri = (
                            "done",
                            looked.archived,
                            looked.uri,
                        )
                        self._message(
                            "info",
                            f"{job.display}: commit had already happened ({looked.uri})",
                            job.id,
                        )
                        return looked
                    self.journal.commit_reset(job.id, "not committed on the server")
                    job.commit_phase = ""
                self.journal.commit_started(job.id)
                job.commit_phase = "started"
                outcome = await self.server.commit(
                    job.prearchive_uri, auto_archive=self._auto_archive(job)
                )
            except Exception as exc:
                text = str(exc) or type(exc).__name__
                if is_retriable(exc) and attempt < self.retry_policy.attempts:
                    delay = self.retry_policy.delay(attempt)
                    self._message(
                        "warning",
                        f"{job.display}: commit: {text}; retrying in {delay:.1f}s",
                        job.id,
                    )
                    await self.clock.sleep(delay)
                    continue
                if not is_retriable(exc):
                    # The server answered: the commit did not happen.
                    self.journal.commit_reset(job.id, text)
                    job.commit_phase = ""
                self._set_state(
                    run,
                    JobState.FAILED,
                    f"commit failed: {text}. The series are in the prearchive at "
                    f"{job.prearchive_uri}; 'xnat-tui transfers retry {job.id}' commits again",
                )
                self._release(run)
                return None
            self.journal.commit_done(job.id, archived=outcome.archived, uri=outcome.uri)
            job.commit_phase, job.archived, job.result_uri = "done", outcome.archived, outcome.uri
            return outcome

    async def _lookup_commit(self, run: _Run) -> CommitOutcome | None:
        """Commit outcome unknown (crash or dropped answer): ask the server, never guess."""
        job = run.job
        for _ in range(30):
            sessions = await self.server.sessions(job.project)
            mine = [
                s
                for s in sessions
                if s.label == job.label and (not s.study_uid or s.study_uid == job.study_uid)
            ]
            archived = [s for s in mine if s.location == "archive"]
            pre = [
                s
                for s in mine
                if s.location == "prearchive" and _same_uri(s.uri, job.prearchive_uri)
            ]
            if pre and pre[0].status.startswith(_IN_PROGRESS):
                await self.clock.sleep(1.0)
                continue
            wants_archive = self._auto_archive(job)
            if pre:
                status = pre[0].status
                if status in ("CONFLICT", "ERROR"):
                    raise _CommitRefused(
                        f"the server could not archive the session (prearchive status {status})"
                    )
                if status == "READY" and wants_archive is not True and not archived:
                    return CommitOutcome(False, pre[0].uri)
                return None  # still receiving (or archive wanted): commit again
            if archived:
                return CommitOutcome(True, archived[0].uri)
            return None
        return None

    async def _verify_with_retries(self, run: _Run) -> None:
        job = run.job
        if job.archived:
            remote = RemoteSession(
                job.label,
                job.subject,
                job.study_uid,
                "archive",
                job.result_uri,
                project=job.project,
            )
        else:
            remote = RemoteSession(
                job.label,
                job.subject,
                job.study_uid,
                "prearchive",
                job.result_uri or job.prearchive_uri,
                project=job.project,
            )
        series = [run.series[u] for u in run.order]
        for attempt in range(1, self.retry_policy.attempts + 1):
            try:
                receipt = await verify(self.server, job, series, remote)
                break
            except Exception as exc:
                if is_retriable(exc) and attempt < self.retry_policy.attempts:
                    await self.clock.sleep(self.retry_policy.delay(attempt))
                    continue
                self._set_state(
                    run, JobState.FAILED, f"verification could not list the session: {exc}"
                )
                self._release(run)
                return
        receipt.anonymization = {
            "profile": job.anonymization,
            "options": job.anon_options.for_profile(job.anonymization).to_dict(),
            "variables": dict(job.anon_variables),
            "scripts_sha256": [],
        }
        if job.anonymization not in ("", "none") and self.transform_for is not None:
            with contextlib.suppress(Exception):
                hook = self.transform_for(job)
                receipt.anonymization["scripts_sha256"] = list(getattr(hook, "script_hashes", []))
        path = await asyncio.to_thread(write_receipt, receipt, self.receipts_dir)
        self.journal.set_receipt(job.id, str(path), receipt.verified_by)
        job.receipt, job.verified_by = str(path), receipt.verified_by
        run.receipt = receipt
        where = "archive" if job.archived else "prearchive"
        if receipt.verified:
            # "verified by size" where the server lists no digests (the prearchive):
            # never a bare "verified" that a reader would take for a content check.
            self._set_state(run, JobState.VERIFIED, f"{receipt.how} in the {where}: {remote.uri}")
        else:
            bad = [c for c in receipt.scans if not c.passed]
            detail = "; ".join(f"scan {c.scan_id}: {c.detail}" for c in bad)
            self._set_state(run, JobState.FAILED, f"verification failed ({detail}); receipt {path}")
        self._release(run)


class _Body:
    """The zip body factory, with its exact length when known (read by the port)."""

    def __init__(
        self,
        make: Callable[[], AsyncIterator[bytes]],
        content_length: int | None,
        content_type: str | None = None,
    ) -> None:
        self.make = make
        self.content_length = content_length
        # None: a zip (the packer's); an as-is archive names its own format.
        self.content_type = content_type

    def __call__(self) -> AsyncIterator[bytes]:
        return self.make()


class _CommitRefused(Exception):
    retriable = False


def _disk_full(text: str) -> bool:
    # Retrying minutes later rarely helps; failing fast with a clear reason does.
    low = text.lower()
    return any(
        marker in low
        for marker in (
            "no space left on device",
            "disk full",
            "insufficient storage",
            "out of disk space",
        )
    )


def _same_uri(a: str, b: str) -> bool:
    def norm(u: str) -> str:
        u = u.strip().rstrip("/")
        return u[5:] if u.startswith("/data/") else u

    return norm(a) == norm(b)
