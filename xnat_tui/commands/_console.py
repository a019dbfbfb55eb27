"""Text rendering of plans, jobs and live progress for the CLI (``upload``, ``transfers``).

Three modes: a live status line on a terminal, plain lines (state changes and
messages, a progress line every few seconds) when the output is a pipe or a log
file, and quiet (``--json``: only the final summary is printed, by the caller).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterable
from typing import Any, TextIO

from xnat_tui.text import pad, safe
from xnat_tui.transfer.events import (
    EngineMessage,
    EventStream,
    JobStateChanged,
    ProgressTick,
    SeriesStateChanged,
)
from xnat_tui.transfer.journal import JobRecord, Journal, SeriesRecord
from xnat_tui.transfer.kinds import JobKind
from xnat_tui.transfer.plan import Plan, PlannedJob
from xnat_tui.transfer.types import JobState, SeriesState
from xnat_tui.transfer.verifier import verified_how
from xnat_tui.units import human_bytes, human_rate
from xnat_tui.workflow.jobs import JobEngine


def human_eta(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 60:02d}:{s % 60:02d}"


def plan_lines(plan: Plan) -> list[str]:
    out: list[str] = []
    for job in plan.jobs:
        out.extend(planned_job_lines(job))
    ok = plan.sendable
    out.append(
        f"{len(ok)} of {len(plan.jobs)} session(s) ready to send: "
        f"{sum(j.files_total for j in ok)} files, {human_bytes(sum(j.bytes_total for j in ok))}"
    )
    return out


def planned_job_lines(job: PlannedJob) -> list[str]:
    r = job.request
    mark = "ok " if job.ok else "NO "
    # Labels, paths, descriptions and server messages are external text: text.safe.
    src = safe(r.session.root if r.session.root else r.session.study_instance_uid)
    extras = []
    if job.new_subject:
        extras.append("new subject")
    extras.append(str(job.verdict))
    extras.append(f"dest={safe(r.destination)}")
    if r.overwrite.value != "none":
        extras.append(f"overwrite={r.overwrite}")
    target = safe(job.target) if r.project else "(no project: not routed)"
    lines = [
        f"{mark}{target}  [{', '.join(extras)}]  "
        f"{len(job.series)} series, {job.files_total} files, {human_bytes(job.bytes_total)}",
        f"     from {src}",
    ]
    for d in job.dropped:
        num = d.series.series_number if d.series.series_number is not None else "?"
        lines.append(f"     dropped series {num} {_quoted(d.series.description)}: {safe(d.reason)}")
    for d in job.excluded:
        num = d.series.series_number if d.series.series_number is not None else "?"
        lines.append(
            f"     excluded series {num} {_quoted(d.series.description)}: {safe(d.reason)}"
        )
    for issue in job.issues:
        if issue.code in ("filtered", "burned-in-excluded"):
            continue
        lines.append(f"     {issue.severity}: {safe(issue.message)}")
    return lines


def _quoted(description: str) -> str:
    """A series description in quotes (an empty one stays visible), made safe."""
    return f"'{safe(description)}'"


def job_dict(job: JobRecord, series: list[SeriesRecord]) -> dict[str, Any]:
    return {
        "id": job.id,
        "kind": str(job.kind),
        "state": str(job.state),
        "server": job.server,
        "user": job.username,
        "project": job.project,
        "subject": job.subject,
        "session": job.label,
        "study_instance_uid": job.study_uid,
        "destination": str(job.destination),
        "overwrite": str(job.overwrite),
        "anonymization": job.anonymization,
        "anon_options": job.anon_options.for_profile(job.anonymization).to_dict(),
        "anon_variables": dict(job.anon_variables),
        "source": job.source_root,
        "message": job.message,
        "prearchive_uri": job.prearchive_uri,
        "result_uri": job.result_uri,
        "archived": job.archived,
        "receipt": job.receipt or None,
        "verified_by": job.verified_by or None,
        "next": next_step(job),
        "created": job.created,
        "updated": job.updated,
        "files": sum(s.file_count for s in series),
        "bytes": sum(s.bytes for s in series),
        "series": [
            {
                "series_instance_uid": s.uid,
                "series_number": s.number,
                "description": s.description,
                "state": str(s.state),
                "attempts": s.attempts,
                "files": s.file_count,
                "bytes": s.bytes,
                "message": s.message,
            }
            for s in series
        ],
    }


def next_step(job: JobRecord) -> str | None:
    """The command that takes a job further, when it needs the user (a failed one)."""
    if job.state is JobState.FAILED:
        return f"xnat-tui transfers retry {job.id}"
    return None


def state_text(job: JobRecord) -> str:
    """The job's state as users read it: 'verified by size', never a bare 'verified'
    when only sizes (or counts) could be compared."""
    if job.state is JobState.VERIFIED and job.verified_by:
        return verified_how(job.verified_by)
    return job.kind.word(job.state.value)  # a download is 'receiving', not 'sending'


def job_line(job: JobRecord, series: list[SeriesRecord]) -> str:
    done = sum(1 for s in series if s.state in (SeriesState.SENT, SeriesState.EMPTY))
    size = human_bytes(sum(s.bytes for s in series))
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(job.updated))
    line = (
        f"{job.id}  {job.kind.arrow:<10} {state_text(job):<16} {pad(safe(job.display), 40)} "
        f"{done}/{len(series)} series  {size:>9}  {when}"
    )
    step = next_step(job)
    return f"{line}  next: {step}" if step else line


class Reporter:
    """Consumes the engine's event stream and writes to ``out`` (stderr by default)."""

    def __init__(self, mode: str, out: TextIO | None = None, plain_every: float = 10.0) -> None:
        self.mode = mode  # tty | plain | quiet
        self.out = out or sys.stderr
        self.plain_every = plain_every
        self._last_plain = time.monotonic()
        self._line_len = 0
        # job id -> the message its final state was printed with (the summary at the
        # end then does not print the same reason and hint a second time).
        self.reported: dict[str, str] = {}

    def detach(self) -> None:
        """The terminal went away (SSH dropped): stop writing, keep uploading."""
        self.mode = "quiet"

    def _write(self, text: str) -> None:
        try:
            self.out.write(text)
            self.out.flush()
        except (OSError, ValueError):
            self.detach()  # a dead terminal must not stop the upload

    def _clear(self) -> None:
        if self.mode == "tty" and self._line_len:
            self._write("\r" + " " * self._line_len + "\r")
            self._line_len = 0

    def _print(self, text: str) -> None:
        if self.mode == "quiet":
            return
        self._clear()
        self._write(text + "\n")

    def _columns(self) -> int:
        """The width of the terminal written to (COLUMNS first): stdout may be a file
        while the status line goes to the terminal on stderr."""
        columns = os.environ.get("COLUMNS", "")
        if columns.isdigit() and int(columns) > 0:
            return int(columns)
        try:
            return os.get_terminal_size(self.out.fileno()).columns
        except (AttributeError, OSError, ValueError):  # not a terminal (or no fd)
            return 120

    def _status(self, tick: ProgressTick) -> None:
        active = [j for j in tick.jobs if j.state in (JobState.SENDING, JobState.COMMITTING)]
        files = sum(j.files_sent for j in tick.jobs)
        files_total = sum(j.files_total for j in tick.jobs)
        pct = 100 * tick.bytes_sent / tick.bytes_total if tick.bytes_total else 100
        text = (
            f"{pct:5.1f}%  {human_bytes(tick.bytes_sent)}/{human_bytes(tick.bytes_total)}  "
            f"{files}/{files_total} files  {human_rate(tick.rate)}  ETA {human_eta(tick.eta)}"
            f"  ({len(active)} active)"
        )
        if self.mode == "tty":
            # Within the terminal's width: a wrapped line would not be overwritten by the
            # next one's carriage return (COLUMNS first, as for every program).
            text = text[: max(20, self._columns() - 1)]
            pad = max(0, self._line_len - len(text))
            self._write("\r" + text + " " * pad)
            self._line_len = len(text)
        elif self.mode == "plain":
            now = time.monotonic()
            if now - self._last_plain >= self.plain_every:
                self._last_plain = now
                self._print("progress " + text)

    def handle(self, event: object) -> None:
        if isinstance(event, ProgressTick):
            self._status(event)
        elif isinstance(event, JobStateChanged):
            msg = f": {safe(event.message)}" if event.message else ""
            state = event.kind.word(event.state.value)
            self._print(f"{event.job_id} {safe(event.label)} {state}{msg}")
            if event.state.finished and self.mode != "quiet":
                self.reported[event.job_id] = event.message
        elif isinstance(event, SeriesStateChanged):
            if event.state is SeriesState.SENT or (
                event.state is SeriesState.FAILED and event.message
            ):
                num = event.series_number if event.series_number is not None else "?"
                extra = f": {safe(event.message)}" if event.message else ""
                self._print(f"{event.job_id}   series {num} {event.state.value}{extra}")
        elif isinstance(event, EngineMessage):
            self._print(f"{event.level}: {safe(event.text, lines=True)}")

    async def consume(self, stream: EventStream) -> None:
        async for event in stream:
            self.handle(event)
        self._clear()


async def run_until_done(
    engine: JobEngine,
    ids: list[str],
    reporter: Reporter,
    stream: EventStream,
) -> tuple[dict[str, JobState], bool]:
    """Wait for ``ids`` while rendering; SIGINT/SIGTERM stop cleanly (jobs resumable).

    Returns (states, interrupted).
    """
    loop = asyncio.get_running_loop()
    interrupted = asyncio.Event()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, interrupted.set)
            installed.append(sig)
    keep_running_on_hangup(reporter)
    consumer = asyncio.create_task(reporter.consume(stream))
    waiter = asyncio.create_task(engine.wait(ids))
    stopper = asyncio.create_task(interrupted.wait())
    try:
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
    was_interrupted = stopper.done() and not waiter.done()
    waiter.cancel()
    stopper.cancel()
    await engine.close()
    with contextlib.suppress(asyncio.CancelledError):
        await consumer
    states = {jid: engine.journal.job(jid).state for jid in ids}
    return states, was_interrupted


def keep_running_on_hangup(reporter: Reporter | None = None) -> None:
    """A dropped SSH connection sends SIGHUP: keep uploading in the background, silently.

    Installed as early as possible (before scanning) and left in place until exit.
    """
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError, AttributeError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, _on_hangup, reporter)


def _on_hangup(reporter: Reporter | None) -> None:
    if reporter is not None:
        reporter.detach()
    # Later prints (the summary, a traceback) must not fail on the dead terminal: point
    # the terminal's descriptors at /dev/null, like nohup. Files and pipes are kept.
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        with contextlib.suppress(OSError):
            if os.isatty(fd):
                os.dup2(devnull, fd)
    os.close(devnull)


def summary(journal: Journal, ids: Iterable[str]) -> dict[str, Any]:
    jobs = [job_dict(journal.job(i), journal.series(i)) for i in ids]
    return {
        "ok": all(j["state"] == JobState.VERIFIED.value for j in jobs),
        "jobs": jobs,
        "verified": sum(1 for j in jobs if j["state"] == JobState.VERIFIED.value),
        "failed": sum(1 for j in jobs if j["state"] == JobState.FAILED.value),
    }


def summary_line(job: dict[str, Any], reporter: Reporter | None = None) -> str:
    """One job of the final summary: its state and, unless it was just printed, why."""
    target = safe(f"{job['project']}/{job['subject']}/{job['session']}")
    # The JSON keeps the journal's state; a person reads a download as 'receiving'.
    state = JobKind(job.get("kind", JobKind.UPLOAD)).word(job["state"])
    line = f"{job['id']}  {state:<9} {target}"
    message = job["message"]
    if job["state"] == JobState.VERIFIED.value or not message:
        return line
    if reporter is not None and reporter.reported.get(job["id"]) == message:
        return line + "  (reason above)"
    return f"{line}  {safe(message)}"


def confirm(text: str) -> bool:
    """The commands' y/N prompt: yes only for an explicit 'y'/'yes' typed on a terminal
    (no terminal, end of input or anything else is no)."""
    if not sys.stdin.isatty():
        return False
    try:
        answer = input(f"{text} [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def reporter_mode(json_output: bool, stream: TextIO | None = None) -> str:
    if json_output:
        return "quiet"
    out = stream or sys.stderr
    return "tty" if out.isatty() else "plain"
