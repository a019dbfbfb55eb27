"""The download engine: server files → local disk, file by file, verified, resumable.

One job per session. Each file of the session's listing is fetched on its own (up to
``concurrency`` files at once across every job), written to ``NAME.part``, checked
(size, MD5 against the listing's ``digest``, never an HTML/error page), fsynced and
renamed to ``NAME`` — so a file under its final name is always complete and verified.
Each finished file is journalled at once (``Journal.files_done`` with its MD5); a
resume after ``kill -9`` skips those and continues a ``.part`` with ``Range`` when the
server honours it (206), else starts that file again.

Life cycle: QUEUED → SENDING (downloading) → VERIFYING (count and sizes on disk) →
VERIFIED | FAILED; PAUSED and CANCELLED come from the user. Events are the upload
engine's (``JobStateChanged``, ``JobProgress`` with ``kind=download``, ``ProgressTick``,
``EngineMessage``), so the Transfers panel and the CLI reporter show both alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import io
import mmap
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from xnat_tui.transfer.events import (
    EventHub,
    JobProgress,
    JobStateChanged,
)
from xnat_tui.transfer.journal import JobRecord, Journal, NewJob, make_owner
from xnat_tui.transfer.kinds import JobKind
from xnat_tui.transfer.lifecycle import JobLifecycle, add_sample, rate_of
from xnat_tui.transfer.retry import Clock, MonotonicClock, RetryPolicy
from xnat_tui.transfer.server import is_retriable
from xnat_tui.transfer.types import (
    Destination,
    JobState,
    Overwrite,
    SeriesState,
    SourceFile,
    SourceSeries,
)
from xnat_tui.xnat import download_ops, md5
from xnat_tui.xnat.client import XnatClient
from xnat_tui.xnat.errors import (
    AuthenticationError,
    ConnectionFailed,
    NotFound,
    SessionExpired,
    XnatError,
)

PART = ".part"
BATCH = 1 << 20  # bytes hashed and written per hop to a worker thread (aiohttp path)
BUFFER = 1 << 20  # each of a worker thread's two receive buffers: bytes written at once, at most
STEP = 256 << 10  # bytes received per read, at most
RUN = 128 << 10  # bytes queued for the MD5 batch at once, at least (about every read)
ALIGN = 4096  # what O_DIRECT asks of a write's address, length and offset
NAME_MAX = 255  # bytes in one file name (ext4, XFS, Btrfs, ZFS, NTFS)
MARK_BATCH = 64  # verified files marked in the journal per transaction, at most
CHAIN = 4  # first tries handed to a worker thread at once, while many files are left
STOP_GRACE = 2.0  # seconds a pause or cancel waits for worker threads to leave their files
_TABLE = """
CREATE TABLE IF NOT EXISTS download_files(
    job_id TEXT NOT NULL,
    series_uid TEXT NOT NULL,
    idx INTEGER NOT NULL,
    uri TEXT NOT NULL,
    expected_md5 TEXT NOT NULL DEFAULT '',
    size_unknown INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY(job_id, series_uid, idx)
)
"""


# ---------------------------------------------------------------- the local disk


class FileSystem(Protocol):
    """Where downloaded bytes go; a test injects one that fills up (ENOSPC)."""

    def open_part(self, path: Path, *, append: bool) -> BinaryIO: ...
    def sync(self, handle: BinaryIO) -> None: ...
    def finish(self, handle: BinaryIO, part: Path, final: Path) -> None: ...
    def promote(self, part: Path, final: Path) -> None: ...
    def size(self, path: Path) -> int | None: ...
    def names(self, folder: Path) -> set[str]: ...
    def remove(self, path: Path) -> None: ...
    def md5(self, path: Path) -> str: ...
    def sync_dirs(self, folders: Iterable[Path]) -> None: ...


class _PartFile(io.FileIO):
    """A new ``.part`` written with O_DIRECT where the file system takes it.

    Every file is fsynced before its rename, so the page cache gains nothing from the
    bytes but costs a copy of each into fresh page-cache pages (measured: ~2.5 s of
    kernel time per GB, most of the client's system time; a direct write is a DMA from
    the receive buffer, ~0.3 s per GB).
    Direct writes need an aligned address, length and offset: the engine writes whole
    aligned buffers; the first write that is not (a file's tail, a partial write, a
    buffer that is not page-aligned: EINVAL) switches the file to ordinary writes.
    """

    direct = False

    def write(self, data: bytes | memoryview) -> int:  # type: ignore[override]
        if self.direct:
            cut = len(data) - len(data) % ALIGN
            if cut:
                try:
                    return super().write(memoryview(data)[:cut]) or 0
                except OSError as exc:
                    if exc.errno != errno.EINVAL:
                        raise
            self._buffered()
        return super().write(data) or 0

    def _buffered(self) -> None:
        import fcntl  # not on Windows, which has no O_DIRECT: never called there

        fd = self.fileno()
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_DIRECT)
        self.direct = False


def _open_part(path: Path, append: bool) -> BinaryIO:
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    flags |= os.O_APPEND if append else os.O_TRUNC
    direct = getattr(os, "O_DIRECT", 0) if not append else 0
    if direct:
        try:
            handle = _PartFile(os.open(path, flags | direct, 0o666), "wb")
        except OSError as exc:
            if exc.errno != errno.EINVAL:  # no O_DIRECT on this file system
                raise
        else:
            handle.direct = True
            return handle
    return _PartFile(os.open(path, flags, 0o666), "ab" if append else "wb")


class LocalFileSystem:
    def __init__(self) -> None:
        self._made: set[str] = set()

    def open_part(self, path: Path, *, append: bool) -> BinaryIO:
        folder = os.path.dirname(path)  # text: a Path.parent per file cost more
        if folder not in self._made:
            os.makedirs(folder, exist_ok=True)
            self._made.add(folder)
        # Unbuffered (the engine writes whole buffers), which also spares the isatty
        # ioctl, fstat and seek of a buffered file (each a hand-off of the GIL between
        # the download threads).
        return _open_part(path, append)

    def sync(self, handle: BinaryIO) -> None:
        """The .part's bytes on disk, before :meth:`finish` renames it."""
        handle.flush()
        # fdatasync: the data and the size, not the timestamps (enough to read it back).
        getattr(os, "fdatasync", os.fsync)(handle.fileno())

    def finish(self, handle: BinaryIO, part: Path, final: Path) -> None:
        """Close and rename a synced .part: the final name only ever holds a whole,
        verified file."""
        handle.close()
        os.replace(part, final)

    def promote(self, part: Path, final: Path) -> None:
        """A whole .part found verified (after a crash) under its final name, synced
        first: the final name only ever holds bytes that are on disk."""
        fd = os.open(part, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            getattr(os, "fdatasync", os.fsync)(fd)
        finally:
            os.close(fd)
        os.replace(part, final)

    def sync_dirs(self, folders: Iterable[Path]) -> None:
        """fsync folders once their renames are done, so the names survive a power cut
        (once per folder at the end, not once per file)."""
        for folder in folders:
            with contextlib.suppress(OSError):
                fd = os.open(folder, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)

    def size(self, path: Path) -> int | None:
        try:
            return path.stat().st_size
        except FileNotFoundError:
            return None

    def names(self, folder: Path) -> set[str]:
        """What the folder holds (nothing, when it does not exist yet)."""
        try:
            with os.scandir(folder) as entries:
                return {e.name for e in entries}
        except (FileNotFoundError, NotADirectoryError):
            return set()

    def remove(self, path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    def md5(self, path: Path) -> str:
        digest = hashlib.md5(usedforsecurity=False)
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        return digest.hexdigest()


# ---------------------------------------------------------------- plans and runs


@dataclass(frozen=True)
class PlannedFile:
    """One file to fetch: where from (``uri``), where to (``local``), what to expect."""

    scan_id: str
    resource: str
    uri: str
    local: Path
    size: int | None
    digest: str = ""


@dataclass(frozen=True)
class PlannedScan:
    scan_id: str
    resource: str
    type: str = ""
    files: tuple[PlannedFile, ...] = ()

    @property
    def uid(self) -> str:
        return f"{self.scan_id}/{self.resource}"


@dataclass(frozen=True)
class PlannedDownload:
    """One session's download, as journalled before the first byte."""

    project: str
    subject: str
    session_id: str
    label: str
    out: Path
    scans: tuple[PlannedScan, ...]
    uid: str = ""
    params: dict[str, str] = field(default_factory=dict)

    @property
    def files(self) -> list[PlannedFile]:
        return [f for s in self.scans for f in s.files]

    @property
    def bytes(self) -> int:
        return sum(f.size or 0 for f in self.files)


@dataclass(slots=True)
class _DownloadFile:
    uid: str
    idx: int
    uri: str
    local: Path
    size: int | None
    digest: str
    done: bool = False
    attempts: int = 0
    not_before: float = 0.0
    failed: str = ""
    how: str = ""  # md5 | size, once done
    relist: bool = False  # failed on its listed size or MD5: the listing may be stale
    # A file of other content was at its path when it began, not ours to replace: only
    # the same bytes may take its place (checked once this one is fetched).
    guarded: bool = False
    pos: int = 0  # index in the run's file list


@dataclass
class _DownloadRun:
    job_id: str
    label: str
    out: Path
    state: JobState
    message: str
    files: list[_DownloadFile]
    session_id: str = ""
    paused: bool = False
    # Files before this index are done, failed or running (a retry moves it back), so
    # picking the next file is not a walk over thousands of finished ones.
    cursor: int = 0
    tasks: dict[tuple[str, int], asyncio.Task[None]] = field(default_factory=dict)
    moving: dict[tuple[str, int], int] = field(default_factory=dict)
    # Verified files not yet marked in the journal: written in batches (a tick, the end
    # of the job). Losing them to a crash costs nothing: the file under its final name
    # is complete, and a resume finds it by its MD5 (or size) without fetching it.
    marks: list[tuple[tuple[str, int], str]] = field(default_factory=list)
    scans_marked: set[str] = field(default_factory=set)
    # What each folder held when the job first looked (one listing per folder instead
    # of two stats per file: in a new folder, every one of them a miss).
    listed: dict[str, set[str]] = field(default_factory=dict)
    fatal: str = ""
    finalizing: bool = False
    cancelled_why: str = ""  # why it was cancelled (its message says it again with a count)
    # A file already where one of this job's goes, with other content than the server's,
    # is replaced only where a download of this session put it into this folder: one it
    # verified (these paths, within the folder), or one whose bytes are what it listed
    # (there before a crash lost its mark: these MD5s, by path). Else it is the user's,
    # or another session's.
    replaceable: set[str] = field(default_factory=set)
    listed_before: dict[str, set[str]] = field(default_factory=dict)
    samples: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=40))
    # Counts kept as files are marked (mark_done / mark_undone), so a progress tick and a
    # journal flush cost the number of scans, not of files: walking every file there
    # made a 100,000-file job spend ~10 ms of the event loop at each of its ~1,600
    # flushes (quadratic in the job's size).
    done_count: int = 0
    done_bytes: int = 0
    bytes_total: int = 0
    scan_left: dict[str, int] = field(default_factory=dict)  # files not yet done, per scan
    scan_uri: dict[str, str] = field(default_factory=dict)  # a scan's resource URI
    scans_complete: list[str] = field(default_factory=list)  # complete since the last flush
    # The outcomes of the chains of files worker threads are on, as each file ends.
    chains: list[list[tuple[_DownloadFile, tuple[str, str] | Exception]]] = field(
        default_factory=list
    )

    def __post_init__(self) -> None:
        for f in self.files:
            self.bytes_total += f.size or 0
            self.scan_uri.setdefault(f.uid, f.uri.rsplit("/", 1)[0])
            left = self.scan_left.setdefault(f.uid, 0)
            if f.done:
                self.done_count += 1
                self.done_bytes += f.size or 0
            else:
                self.scan_left[f.uid] = left + 1
        self.scans_complete = [uid for uid, left in self.scan_left.items() if not left]

    def mark_done(self, f: _DownloadFile, how: str) -> None:
        if f.done:
            return
        f.done, f.how = True, how
        self.done_count += 1
        self.done_bytes += f.size or 0
        self.scan_left[f.uid] -= 1
        if not self.scan_left[f.uid]:
            self.scans_complete.append(f.uid)

    def mark_undone(self, f: _DownloadFile) -> None:
        if not f.done:
            return
        f.done = False
        self.done_count -= 1
        self.done_bytes -= f.size or 0
        self.scan_left[f.uid] += 1

    def progress(self) -> tuple[int, int]:
        return self.done_bytes + sum(self.moving.values()), self.done_count

    def scans_done(self) -> tuple[int, int]:
        return sum(1 for left in self.scan_left.values() if not left), len(self.scan_left)


class DownloadBusy(XnatError):
    """Nothing was queued: the files asked for would be written where another job writes
    them, or wrote another session's."""


class FileInTheWay(XnatError):
    """A file with other content is where a download would save one, and no download of
    that session put it there: it is the user's (or came from elsewhere), never replaced."""


class _Resolved:
    """Folders compared as the file system sees them (the same one through a link is the
    same), each resolved once per request; files as paths within their job's folder."""

    def __init__(self) -> None:
        self._seen: dict[str, str] = {}

    def __call__(self, folder: object) -> str:
        text = _text(folder)
        real = self._seen.get(text)
        if real is None:
            real = self._seen[text] = os.path.realpath(text)
        return real

    @staticmethod
    def within(folder: object, path: object) -> str:
        top, text = _text(folder).rstrip(os.sep), _text(path)
        # Text, not os.path.relpath: that resolves both paths again for each of
        # thousands of files.
        if text.startswith(top + os.sep):
            return text[len(top) + 1 :]
        return os.path.relpath(text, top or os.sep)


def _text(path: object) -> str:
    """A path (or a journal's text for one) as text."""
    return os.fspath(path) if isinstance(path, os.PathLike) else str(path)


def _disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


class DownloadEngine(JobLifecycle[_DownloadRun]):
    """Runs download jobs for one server connection (see the module docstring)."""

    kinds = (JobKind.DOWNLOAD,)
    retry_states = (JobState.FAILED, JobState.CANCELLED)

    def __init__(
        self,
        client: XnatClient,
        journal: Journal,
        *,
        server_url: str,
        username: str,
        concurrency: int = 8,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        fs: FileSystem | None = None,
        progress_interval: float = 0.25,
        lease_ttl: float = 30.0,
        threaded: bool = True,
    ) -> None:
        self.client = client
        self.journal = journal
        self.server_url = server_url
        self.username = username
        self.concurrency = max(1, concurrency)
        self.retry_policy = retry or RetryPolicy()
        self.clock: Clock = clock or MonotonicClock()
        self.fs: FileSystem = fs or LocalFileSystem()
        self.progress_interval = progress_interval
        self.lease_ttl = lease_ttl
        self.owner = make_owner()
        # Files move in worker threads (blocking connections) unless a proxy is in the
        # way; then on the event loop through the client's aiohttp session.
        self.fetcher = (
            download_ops.ThreadedFetcher(client)
            if threaded and download_ops.ThreadedFetcher.usable(client)
            else None
        )
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="download")
        # Files handed to the pool at once: with threads, twice its workers, so a worker
        # that finishes a file starts the next one queued at once instead of waiting for
        # the event loop to hand it one (with 8 busy threads contending for the GIL, that
        # hop left the workers idle half the time). Still ``concurrency`` on the wire:
        # one connection per worker thread.
        self._slots = self.concurrency * 2 if self.fetcher is not None else self.concurrency
        self._local = threading.local()
        # Files whose MD5s share the vector lanes (md5.py): the worker threads'.
        self._md5_streams = self.concurrency if md5.lanes_usable() else 1
        self._listing = threading.Lock()
        self._hub = EventHub()
        self._runs: dict[str, _DownloadRun] = {}
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._checks: set[asyncio.Task[None]] = set()  # verifications under way
        self._recounts: set[asyncio.Task[None]] = set()  # cancels counting late files
        self._closed = False
        self._in_flight = 0
        # Files a worker thread is still on: a paused or cancelled try's thread runs on
        # to its next read, and may still write its .part; no new try of the file starts
        # before it is gone (set from the threads; one add or discard is atomic).
        self._writing: set[tuple[str, int]] = set()
        self._wanted_written = False  # the scheduler passed a file over for that reason
        # Unfinished jobs a new request replaced (cancelled): their id → the new job's.
        self.replaced: dict[str, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        with self.journal._tx() as db:  # our own table beside the shared ones
            db.execute(_TABLE)
            # The files table holds a size for every file; a listing without one is
            # marked here (journals from before the mark read as sized, as they were).
            if "size_unknown" not in {
                r[1] for r in db.execute("PRAGMA table_info(download_files)")
            }:
                db.execute(
                    "ALTER TABLE download_files ADD COLUMN size_unknown INTEGER NOT NULL DEFAULT 0"
                )

    # ================================================================= public
    async def start(self, *, resume: bool = True) -> list[str]:
        self._loop = asyncio.get_running_loop()
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._dispatch_loop(), name="download-dispatch"),
                asyncio.create_task(self._tick_loop(), name="download-ticker"),
            ]
        if not resume:
            return []
        resumed: list[str] = []
        for job in self._journal_jobs(s for s in JobState if not s.finished):
            if job.id not in self._runs and self._adopt(job.id):
                if job.state is not JobState.PAUSED:
                    resumed.append(job.id)
        if resumed:
            self._message("info", f"resuming {len(resumed)} unfinished download(s)")
        return resumed

    async def submit(self, plans: Sequence[PlannedDownload]) -> list[str]:
        """Journal every session's file list (before anything is fetched) and queue it.

        Against the unfinished jobs of the same session into the same folder: the same
        files (paths, URIs, digests) are not queued twice, that job goes on (resumed if
        paused) and its id is returned; a request sharing some of their paths but not
        their content (a file changed on the server, another layout's name) replaces
        that job, which is cancelled and says by which; other files (another scan) make
        a job of their own beside it.
        """
        ids: list[str | None] = []
        fresh: list[PlannedDownload] = []
        replaced: list[tuple[int, _DownloadRun]] = []
        to_resume: list[str] = []
        # The check of what other processes hold and the new jobs' leases are one step
        # to them: two identical commands started together cannot both pass it.
        real = _Resolved()
        adopted: list[str] = []
        try:
            with self.journal.exclusive():
                # Refused before anything is taken on: a refusal leaves no job running.
                self._refuse_overlaps(plans, real)
                adopted = self._adopt_unfinished(plans, real)
                for plan in plans:
                    wanted = {
                        (real.within(plan.out, f.local), f.uri, f.digest)
                        for s in plan.scans
                        for f in s.files
                    }
                    paths = {w[0] for w in wanted}
                    same: str | None = None
                    overlapping: list[_DownloadRun] = []
                    for run in self._runs.values():
                        if run.state.finished or run.session_id != plan.session_id:
                            continue
                        if real(run.out) != real(plan.out):  # the same folder through a link too
                            continue
                        have = {(real.within(run.out, f.local), f.uri, f.digest) for f in run.files}
                        if have == wanted:
                            same = run.job_id
                            break
                        if paths & {h[0] for h in have}:
                            overlapping.append(run)
                    if same is not None:
                        if self._runs[same].paused:
                            to_resume.append(same)
                        ids.append(same)
                        continue
                    replaced += [(len(fresh), run) for run in overlapping]
                    ids.append(None)
                    fresh.append(plan)
                made = self._journal_new(fresh)
        except BaseException:
            for jid in adopted:  # their leases went with the transaction
                self._runs.pop(jid, None)
            raise
        for jid in to_resume:
            self.resume(jid)
        await self._take_on(made, fresh)
        for index, run in replaced:
            if not run.state.finished:
                self.replaced[run.job_id] = made[index]
                self._cancel_run(
                    run,
                    f"replaced by {made[index]}, a new request for this "
                    "session into the same folder",
                )
        it = iter(made)
        return [jid if jid is not None else next(it) for jid in ids]

    def _adopt_unfinished(self, plans: Sequence[PlannedDownload], real: _Resolved) -> list[str]:
        """Takes on the unfinished jobs of the sessions asked for, into the same folders,
        that no live process holds (a run killed, or one that never came back): the
        request then goes on with them, as with its own. Other unfinished jobs are left
        to 'xnat-tui transfers resume' (or the TUI)."""
        asked = {(p.session_id, real(p.out)): p for p in plans}
        adopted: list[str] = []
        for job in self._journal_jobs(s for s in JobState if not s.finished):
            if job.id in self._runs:
                continue
            out = str(job.params.get("out", ""))
            plan = asked.get((str(job.params.get("session_id", "")), real(out)))
            if plan is None:
                continue
            # Only one on the files asked for (the request goes on with it, or replaces
            # it): another scan's job is left for 'transfers resume', not run unwaited.
            mine = {real.within(plan.out, f.local) for f in plan.files}
            if any(real.within(out, p) in mine for p in self.journal.paths(job.id)):
                if self._adopt(job.id):  # refused while another live process holds it
                    adopted.append(job.id)
        return adopted

    def _refuse_overlaps(self, plans: Sequence[PlannedDownload], real: _Resolved) -> None:
        """Nothing is queued that would write where another job writes or wrote: two jobs
        on one ``.part`` truncate and rename it under each other, and a session's files
        saved over another's (one label in two projects, into one folder) would mix two
        patients' data with both jobs verified. Refused, naming the job and what to do:

        * the same session held by another live process (paused there too): wait for it,
          resume it there, or cancel it;
        * another session's job still running here or elsewhere, on the same paths;
        * another session's files already saved there (a job done, failed or stopped).

        The same session's own jobs in this process are the caller's to continue or
        replace. Where another download's listing gave a file the same MD5 it is the same
        file (the same session through another URL of the server, a session shared into
        two projects), not in the way; where either listing gives none, the file itself
        is compared once fetched (see :meth:`_place`)."""
        # Each plan's files once (within its folder), not once per journalled job.
        mine_of = {id(p): {real.within(p.out, f.local): f.digest for f in p.files} for p in plans}
        for job in self.journal.jobs(kinds=[JobKind.DOWNLOAD]):
            folder = real(job.params.get("out", ""))
            asked = [p for p in plans if real(p.out) == folder]
            if not asked:
                continue
            same_server = job.server == self.server_url
            run = self._runs.get(job.id)
            held = None if job.state.finished or run is not None else self.journal.holder(job.id)
            theirs = self._listed_digests(job, real)
            for plan in asked:
                mine = mine_of[id(plan)]
                overlap = mine.keys() & theirs.keys()
                if not overlap:
                    continue
                same = same_server and str(job.params.get("session_id", "")) == plan.session_id
                name = f"{plan.project}/{plan.label}"
                cancel = f"'xnat-tui transfers cancel {job.id}', then ask again"
                if same:
                    if held is None or held == self.owner:
                        continue
                    if job.state is JobState.PAUSED:
                        doing, hint = "is paused", f"resume it there, or {cancel}"
                    else:
                        doing = "is already being downloaded"
                        hint = f"wait for it, or {cancel}"
                    raise DownloadBusy(
                        f"{name} {doing} into {plan.out} in another xnat-tui (job {job.id})",
                        hint=hint,
                    )
                another = f"another download ({job.display}, job {job.id})"
                if (run is not None and not run.state.finished) or held is not None:
                    raise DownloadBusy(
                        f"{name} would be saved where the files of {another} are being "
                        f"downloaded, in {plan.out}",
                        hint="download it into another folder (--out), or wait for that job",
                    )
                saved = [
                    p
                    for p in sorted(overlap)
                    if mine[p]
                    and theirs[p]
                    and mine[p] != theirs[p]
                    and os.path.lexists(os.path.join(folder, p))
                ]
                if saved:
                    raise DownloadBusy(
                        f"{name} would replace {len(saved)} file(s) saved in {plan.out} for "
                        f"{another}, e.g. {saved[0]}",
                        hint="download it into another folder (--out), or move those away",
                    )

    def _journal_new(self, plans: Sequence[PlannedDownload]) -> list[str]:
        """Journals a job per plan with its file list, leased to this process."""
        if not plans:
            return []
        ids = self.journal.create_jobs([self._new_job(p) for p in plans])
        with self.journal.exclusive() as db:
            for job_id, plan in zip(ids, plans, strict=True):
                db.executemany(
                    "INSERT OR REPLACE INTO download_files(job_id, series_uid, idx, uri,"
                    " expected_md5, size_unknown) VALUES(?,?,?,?,?,?)",
                    (
                        (job_id, scan.uid, i, f.uri, f.digest, f.size is None)
                        for scan in plan.scans
                        for i, f in enumerate(scan.files)
                    ),
                )
                self.journal.acquire(job_id, self.owner, self.lease_ttl)
        return ids

    async def _take_on(self, ids: Sequence[str], plans: Sequence[PlannedDownload]) -> None:
        """Runs the jobs :meth:`_journal_new` made of ``plans``."""
        if not ids:
            return
        for job_id, plan in zip(ids, plans, strict=True):
            if self._adopt(job_id, plan):
                run = self._runs[job_id]
                self._emit_state(run, JobState.QUEUED, None, "queued")
        await self.start(resume=False)
        self._wake.set()

    def _new_job(self, plan: PlannedDownload) -> NewJob:
        series = [
            SourceSeries(
                series_instance_uid=scan.uid,
                series_number=int(scan.scan_id) if scan.scan_id.isdigit() else None,
                description=scan.type,
                files=[SourceFile(f.local, f.size or 0, 0.0, f.uri) for f in scan.files],
            )
            for scan in plan.scans
        ]
        params = {"out": str(plan.out), "session_id": plan.session_id, **plan.params}
        return NewJob(
            server=self.server_url,
            username=self.username,
            project=plan.project,
            subject=plan.subject,
            label=plan.label,
            study_uid=plan.uid or plan.session_id,
            destination=Destination.PROJECT,
            overwrite=Overwrite.NONE,
            series=series,
            kind=JobKind.DOWNLOAD,
            params=params,
        )

    def snapshot(self) -> list[JobProgress]:
        return [self._progress(r) for r in self._runs.values()]

    def _pause_run(self, run: _DownloadRun) -> None:
        run.paused = True
        for task in list(run.tasks.values()):
            task.cancel()
        self._set_state(run, JobState.PAUSED, "paused")

    def _journal_jobs(self, states: Iterable[JobState]) -> list[JobRecord]:
        return self.journal.jobs(
            states=list(states), server=self.server_url, username=self.username, kinds=self.kinds
        )

    def resume(self, job_id: str | None = None) -> list[str]:
        if job_id is None:
            candidates = [r.job_id for r in self._runs.values() if r.paused] + [
                j.id for j in self._journal_jobs([JobState.PAUSED])
            ]
        else:
            candidates = [job_id]
        ids: list[str] = []
        for jid in dict.fromkeys(candidates):
            run = self._runs.get(jid)
            if run is None:
                if self.journal.holder(jid):
                    self.journal.request(jid, "resume")
                    ids.append(jid)
                    continue
                if not self._adopt(jid):
                    continue
                run = self._runs[jid]
            if run.state is not JobState.PAUSED:
                continue
            run.paused = False
            self._set_state(run, JobState.QUEUED, "resumed")
            ids.append(jid)
        self._wake.set()
        return ids

    def _cancel_run(self, run: _DownloadRun, why: str = "cancelled by the user") -> None:
        stopping = list(run.tasks.values())
        for task in stopping:
            task.cancel()
        for outcomes in list(run.chains):
            self._settle_finished(run, outcomes)
        run.cancelled_why = why
        # With threads still on files, the count is said once they have left them.
        under_way = f"{why}; the files under way are finishing" if stopping else _cancelled(run)
        self._set_state(run, JobState.CANCELLED, under_way)
        if not stopping:
            self._release(run)
            return
        recount = asyncio.get_running_loop().create_task(self._recount(run, stopping))
        self._recounts.add(recount)
        recount.add_done_callback(self._recounts.discard)

    async def _recount(self, run: _DownloadRun, stopping: list[asyncio.Task[None]]) -> None:
        """The cancel's count said again once its worker threads have left their files
        (each task waits a moment for its thread): the files they finished meanwhile
        (the one being written, the one waiting for its MD5) are complete too."""
        await asyncio.wait(stopping)
        self._flush(run)
        if self._runs.get(run.job_id) is not run:
            return  # retried here meanwhile: the job is its new run's
        if run.state is JobState.CANCELLED:
            self._set_state(run, JobState.CANCELLED, _cancelled(run))
        self._release(run)  # held until now: another process must not retry it meanwhile

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        tasks = [t for r in self._runs.values() for t in r.tasks.values()]
        tasks += [*self._checks, *self._tasks]
        for t in tasks:
            t.cancel()
        # Threads stop at their next chunk (their tasks were cancelled above), or at once
        # where a stalled server keeps them in a read: the tasks wait for them a moment,
        # and cancels say again what they finished (not cancelled: they end with them).
        if self.fetcher is not None:
            self.fetcher.abort()
        await asyncio.gather(*tasks, *self._recounts, return_exceptions=True)
        for run in self._runs.values():
            with contextlib.suppress(Exception):
                self._flush(run)
            self._release(run)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._hub.close()

    # ============================================================== internals
    def _run_state(self, run: _DownloadRun) -> JobState:
        return run.state

    def _adopt(self, jid: str, plan: PlannedDownload | None = None) -> bool:
        """Takes a journalled job on: from ``plan`` where the job was just made of it
        (nothing to read back), else from the journal (a resume)."""
        if not self.journal.acquire(jid, self.owner, self.lease_ttl):
            return False
        job = self.journal.job(jid)
        if job.kind is not JobKind.DOWNLOAD or job.state.finished:
            self.journal.release(jid, self.owner)
            return False
        if plan is not None:
            files = [
                _DownloadFile(scan.uid, i, f.uri, f.local, f.size, f.digest)
                for scan in plan.scans
                for i, f in enumerate(scan.files)
            ]
        else:
            files = self._journalled_files(jid)
        for pos, item in enumerate(files):
            item.pos = pos
        run = _DownloadRun(
            job_id=jid,
            label=job.display,
            out=Path(str(job.params.get("out", "."))),
            state=job.state,
            message=job.message,
            files=files,
            session_id=str(job.params.get("session_id", "")),
        )
        run.paused = job.state is JobState.PAUSED
        self._saved_before(run)
        run.scans_marked = {s.uid for s in self.journal.series(jid) if s.state is SeriesState.SENT}
        self._runs[jid] = run
        self._wake.set()
        return True

    def _listed_digests(self, job: JobRecord, real: _Resolved) -> dict[str, str]:
        """A journalled download's files, as paths within its folder, and the MD5 its
        listing gave each ('' for none)."""
        out = job.params.get("out", "")
        return {
            real.within(out, r[0]): str(r[1] or "")
            for r in self.journal._db.execute(
                "SELECT f.path, d.expected_md5 FROM files f LEFT JOIN download_files d"
                " ON d.job_id = f.job_id AND d.series_uid = f.series_uid AND d.idx = f.idx"
                " WHERE f.job_id = ?",
                (job.id,),
            )
        }

    def _saved_before(self, run: _DownloadRun) -> None:
        """Where earlier downloads of this session verified files into this job's folder
        (a rerun may replace those with the server's)."""
        folder = os.path.realpath(run.out)
        for job in self.journal.jobs(kinds=[JobKind.DOWNLOAD], server=self.server_url):
            if job.id == run.job_id or str(job.params.get("session_id", "")) != run.session_id:
                continue
            theirs = str(job.params.get("out", ""))
            if os.path.realpath(theirs) != folder:
                continue  # its files are elsewhere: none of them is in this job's way
            run.replaceable.update(
                _Resolved.within(theirs, p) for p in self.journal.paths(job.id, done=True)
            )
            for path, digest in self._listed_digests(job, _Resolved()).items():
                if digest:
                    run.listed_before.setdefault(path, set()).add(digest)

    def _journalled_files(self, jid: str) -> list[_DownloadFile]:
        done = self.journal.done_files(jid)
        expected = {
            (r[0], int(r[1])): (str(r[2]), str(r[3]), bool(r[4]))
            for r in self.journal._db.execute(
                "SELECT series_uid, idx, uri, expected_md5, size_unknown FROM download_files"
                " WHERE job_id = ?",
                (jid,),
            )
        }
        files: list[_DownloadFile] = []
        for s in self.journal.series(jid):
            for idx, f in enumerate(self.journal.files(jid, s.uid)):
                uri, digest, unsized = expected.get((s.uid, idx), (f.sop_instance_uid, "", False))
                key = (s.uid, idx)
                files.append(
                    _DownloadFile(
                        s.uid,
                        idx,
                        uri,
                        Path(f.path_str),
                        None if unsized else f.size,
                        digest,
                        done=key in done,
                        how=("md5" if digest else "size") if key in done else "",
                    )
                )
        return files

    def _release(self, run: _DownloadRun) -> None:
        self._release_lease(run.job_id)

    # ---------------------------------------------------------------- events
    def _emit_state(
        self, run: _DownloadRun, state: JobState, previous: JobState | None, message: str
    ) -> None:
        sent, files = run.progress()
        self._hub.publish(
            JobStateChanged(
                run.job_id,
                run.label,
                state,
                previous,
                message,
                bytes_total=run.bytes_total,
                files_total=len(run.files),
                kind=JobKind.DOWNLOAD,
                bytes_sent=sent,
                files_sent=files,
            )
        )
        self._changed.set()

    def _set_state(self, run: _DownloadRun, state: JobState, message: str = "") -> None:
        previous = run.state
        if previous is state and message == run.message:
            return
        self.journal.set_state(run.job_id, state, message)
        run.state, run.message = state, message
        self._emit_state(run, state, previous, message)

    def _progress(self, run: _DownloadRun) -> JobProgress:
        sent, files = run.progress()
        rate = rate_of(run.samples)
        total = run.bytes_total
        scans_done, scans = run.scans_done()
        return JobProgress(
            job_id=run.job_id,
            label=run.label,
            state=run.state,
            bytes_sent=sent,
            bytes_total=total,
            files_sent=files,
            files_total=len(run.files),
            series_done=scans_done,
            series_total=scans,
            rate=rate,
            eta=(total - sent) / rate if rate > 0 and run.state is JobState.SENDING else None,
            message=run.message,
            kind=JobKind.DOWNLOAD,
        )

    async def _tick_loop(self) -> None:
        last_renew = last_poll = self.clock.now()
        while not self._closed:
            await self.clock.sleep(self.progress_interval)
            now = self.clock.now()
            moving = [r for r in self._runs.values() if r.state is JobState.SENDING]
            for run in moving:
                add_sample(run.samples, now, run.progress()[0])
            for run in self._runs.values():
                self._flush(run)
            if moving:
                self._publish_tick(
                    tuple(self._progress(r) for r in self._runs.values() if not r.state.finished)
                )
            last_poll, last_renew = self._housekeeping(now, last_poll, last_renew)

    # ------------------------------------------------------------- scheduling
    def _next(self) -> tuple[_DownloadRun, _DownloadFile] | float | None:
        soonest: float | None = None
        now = self.clock.now()
        for run in self._runs.values():
            if run.paused or not run.state.active or run.fatal or run.finalizing:
                continue
            while run.cursor < len(run.files) and _settled(run, run.files[run.cursor]):
                run.cursor += 1
            for pos in range(run.cursor, len(run.files)):
                f = run.files[pos]
                if _settled(run, f) or self._still_written(f):
                    continue
                if f.not_before > now:
                    wait = f.not_before - now
                    soonest = wait if soonest is None else min(soonest, wait)
                    continue
                return run, f
        return soonest

    async def _dispatch_loop(self) -> None:
        while not self._closed:
            self._wake.clear()
            timeout: float | None = None
            while self._in_flight < self._slots:
                work = self._next()
                if isinstance(work, tuple):
                    self._launch(work[0], self._chain(*work))
                    continue
                timeout = work
                break
            for run in list(self._runs.values()):
                self._maybe_finish(run)
            await self.clock.wait(self._wake, timeout if timeout else 1.0)

    def _chain(self, run: _DownloadRun, f: _DownloadFile) -> list[_DownloadFile]:
        """``f``, and with worker threads the first tries after it while many files are
        left: several files per hop between the event loop and a worker (each hop costs
        the loop a task, a future and a wake-up, and hands the interpreter lock around).
        Retries go alone, and so do the last files, which then spread over every
        worker."""
        chain = [f]
        if self.fetcher is None or f.attempts or len(run.files) - run.cursor < self._slots * CHAIN:
            return chain
        now = self.clock.now()
        for pos in range(f.pos + 1, min(len(run.files), f.pos + 4 * CHAIN)):
            g = run.files[pos]
            if (
                not _settled(run, g)
                and not g.attempts
                and g.not_before <= now
                and not self._still_written(g)
            ):
                chain.append(g)
                if len(chain) == CHAIN:
                    break
        return chain

    def _launch(self, run: _DownloadRun, files: list[_DownloadFile]) -> None:
        if run.state is JobState.QUEUED:
            self._set_state(run, JobState.SENDING, "")
        self._in_flight += 1
        first = files[0]
        work = self._fetch(run, first) if len(files) == 1 else self._fetch_chain(run, files)
        task = asyncio.create_task(work, name=f"download-{run.job_id}-{first.idx}")
        for f in files:
            run.tasks[(f.uid, f.idx)] = task

        def done(_: asyncio.Task[None]) -> None:
            self._in_flight -= 1
            for f in files:
                key = (f.uid, f.idx)
                run.tasks.pop(key, None)
                if not f.done and not f.failed:
                    # To be tried again (or not started): back within the scheduler's
                    # reach. Here, not when the failure is noted: until now the file
                    # counted as running.
                    run.cursor = min(run.cursor, f.pos)
                run.moving.pop(key, None)
            self._wake.set()

        task.add_done_callback(done)

    def _maybe_finish(self, run: _DownloadRun) -> None:
        if not run.tasks:
            self._flush(run)
        if run.state.finished or run.paused or run.tasks or run.finalizing:
            return
        if run.fatal:
            self._set_state(run, JobState.FAILED, run.fatal)
            self._release(run)
            return
        if not run.state.active:
            return
        # No task runs: everything before the cursor is done or failed, so a cursor
        # short of the end means files still to fetch (no walk over all of them).
        while run.cursor < len(run.files) and _settled(run, run.files[run.cursor]):
            run.cursor += 1
        if run.cursor < len(run.files):
            return
        failed = [f for f in run.files if f.failed]
        if failed:
            # One line per reason: the file's own name (in "Cannot download NAME: ...")
            # would make every file's reason its own.
            reasons: dict[str, list[_DownloadFile]] = {}
            for f in failed:
                reasons.setdefault(f.failed.replace(f.local.name, "…"), []).append(f)
            detail = "; ".join(
                f"{len(group)} file(s) ({', '.join(f.local.name for f in group[:3])}"
                f"{', …' if len(group) > 3 else ''}): {why}"
                if len(group) > 1
                else _named(group[0])  # one file: its reason as it was, with its name
                for why, group in reasons.items()
            )
            if any(f.relist for f in failed):
                # A retry checks against this job's listing, which is what went stale.
                then = (
                    "run the same download again: it lists the files anew ('xnat-tui "
                    f"transfers retry {run.job_id}' would check them against this job's list)"
                )
            else:
                then = f"'xnat-tui transfers retry {run.job_id}' fetches only the rest"
            self._set_state(
                run,
                JobState.FAILED,
                f"{len(failed)} of {len(run.files)} file(s) failed ({detail}). Nothing "
                f"incomplete carries a final name; {then}",
            )
            self._release(run)
            return
        self._begin_verify(run)

    def _begin_verify(self, run: _DownloadRun) -> None:
        run.finalizing = True
        self._set_state(run, JobState.VERIFYING, "")
        task = asyncio.create_task(self._verify(run), name=f"download-verify-{run.job_id}")
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)

    async def _verify(self, run: _DownloadRun) -> None:
        """Count and size of every file on disk, after the last one is in. In a thread:
        a stat per file and an fsync per folder held the event loop (the TUI) for a
        second or more on a large download."""
        try:
            problems, wrong = await asyncio.to_thread(self._check_on_disk, run)
        except asyncio.CancelledError:
            run.finalizing = False
            raise
        except OSError as exc:
            problems, wrong = [f"cannot check the files in {run.out}: {exc}"], []
        run.finalizing = False
        if run.state is not JobState.VERIFYING:
            return  # paused or cancelled while the files were checked
        if problems:
            self._set_state(
                run,
                JobState.FAILED,
                f"verification failed: {'; '.join(problems[:5])}"
                + (f" and {len(problems) - 5} more" if len(problems) > 5 else ""),
            )
            for f in wrong:
                run.mark_undone(f)
            self.journal.files_reset(run.job_id)
        else:
            by_md5 = sum(1 for f in run.files if f.how == "md5")
            by_size = len(run.files) - by_md5
            how = f"{by_md5} by MD5" + (f", {by_size} by size only" if by_size else "")
            self._set_state(
                run,
                JobState.VERIFIED,
                f"{len(run.files)} file(s) verified ({how}) in {run.out}",
            )
        self._release(run)
        self._wake.set()

    def _check_on_disk(self, run: _DownloadRun) -> tuple[list[str], list[_DownloadFile]]:
        self.fs.sync_dirs({f.local.parent for f in run.files})
        problems: list[str] = []
        wrong: list[_DownloadFile] = []
        for f in run.files:
            size = self.fs.size(f.local)
            if size is None:
                problems.append(f"{f.local} is missing")
            elif f.size is not None and size != f.size:
                problems.append(f"{f.local} has {size} bytes, {f.size} listed")
            else:
                continue
            wrong.append(f)
        return problems, wrong

    # ----------------------------------------------------------------- one file
    async def _fetch(self, run: _DownloadRun, f: _DownloadFile) -> None:
        f.attempts += 1
        try:
            outcome: tuple[str, str] | Exception = await self._fetch_once(run, f)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            outcome = exc
        self._settle(run, f, outcome)

    async def _fetch_chain(self, run: _DownloadRun, files: list[_DownloadFile]) -> None:
        """First tries of several files, one after another in one worker thread, each
        checked, written, synced and renamed on its own (:meth:`_transfer_chain`). The
        first failure ends the chain: the files after it go back to the scheduler, not
        started (a 401 renews the session and tries that file again, as alone)."""
        assert self.fetcher is not None
        stop = threading.Event()
        headers, generation = self.fetcher.prepare()
        outcomes: list[tuple[_DownloadFile, tuple[str, str] | Exception]] = []
        run.chains.append(outcomes)
        thread = asyncio.get_running_loop().run_in_executor(
            self._pool, self._transfer_chain, run, files, headers, generation, stop, outcomes
        )
        try:
            await asyncio.shield(thread)
        except asyncio.CancelledError:
            await _let_go(thread, stop)  # it starts no other file
            self._settle_finished(run, outcomes)
            raise
        finally:
            run.chains.remove(outcomes)
        # What ended is settled before a renewal is awaited: a cancel meanwhile must not
        # leave a file the thread finished uncounted.
        renew = [(f, o) for f, o in outcomes if isinstance(o, download_ops.NeedLogin)]
        for f, outcome in outcomes:
            if not isinstance(outcome, download_ops.NeedLogin):
                self._settle(run, f, outcome)
        for f, need in renew:
            try:
                await self.client._relogin(need.generation)
                again: tuple[str, str] | Exception = await self._fetch_threaded(
                    run, f, renewed=True
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                again = exc
            self._settle(run, f, again)

    def _transfer_chain(
        self,
        run: _DownloadRun,
        files: list[_DownloadFile],
        headers: dict[str, str],
        generation: int,
        stop: threading.Event,
        outcomes: list[tuple[_DownloadFile, tuple[str, str] | Exception]],
    ) -> None:
        """Each file's outcome is added to ``outcomes`` as it ends (the loop reads those
        that ended when it is cancelled meanwhile).

        A file's MD5 is settled, and the file checked and renamed, once the next file
        has arrived (into the thread's other buffer): by then the other threads have
        queued their bytes too, and the batch runs its lanes full. Settled at each
        file's end, a file's last bytes were hashed with about half the lanes idle,
        and the thread sat waiting instead of asking for its next file.
        """
        buffers = self._buffers()
        held: _Received | None = None  # arrived and synced, its MD5 not yet settled
        try:
            for f in files:
                if stop.is_set():
                    break
                f.attempts += 1
                key = (f.uid, f.idx)
                self._writing.add(key)
                try:
                    got = self._receive(run, f, headers, generation, stop, buffers[0])
                except asyncio.CancelledError:
                    self._left(key)
                    break
                except Exception as exc:
                    self._left(key)
                    if held is not None:  # settled first: a 401's renewal waits on the loop
                        outcomes.append(self._complete_held(held))
                        held = None
                    outcomes.append((f, exc))
                    break
                if isinstance(got, tuple):  # it was there already
                    self._left(key)
                    outcomes.append((f, got))
                    continue
                previous, held = held, got
                buffers.reverse()  # the next file into the other buffer
                if previous is not None:
                    outcomes.append(self._complete_held(previous))
                    if isinstance(outcomes[-1][1], Exception):
                        break
        finally:
            if held is not None:  # the last file, or the one after a failure or a pause
                outcomes.append(self._complete_held(held))

    def _complete_held(self, held: _Received) -> tuple[_DownloadFile, tuple[str, str] | Exception]:
        """A held file checked and renamed, and left by this thread: its outcome."""
        try:
            return held.f, self._complete(held)
        except Exception as exc:
            return held.f, exc
        finally:
            self._left((held.f.uid, held.f.idx))

    def _settle_finished(
        self, run: _DownloadRun, outcomes: list[tuple[_DownloadFile, tuple[str, str] | Exception]]
    ) -> None:
        """The files of a chain being stopped that its thread finished, counted and marked
        (not yet settled: a cancel's "N of M complete" says what is there)."""
        for f, outcome in list(outcomes):
            if not isinstance(outcome, Exception) and not f.done:
                self._settle(run, f, outcome)

    def _settle(
        self, run: _DownloadRun, f: _DownloadFile, outcome: tuple[str, str] | Exception
    ) -> None:
        """A try's end, on the loop: the file verified (marked in batches), or failed."""
        if isinstance(outcome, Exception):
            self._file_failed(run, f, outcome)
            return
        how, md5 = outcome
        run.mark_done(f, how)
        run.marks.append(((f.uid, f.idx), md5))
        if len(run.marks) >= MARK_BATCH:
            self._flush(run)

    def _start_point(
        self, run: _DownloadRun, f: _DownloadFile, part: Path
    ) -> tuple[str, str] | int:
        """(how, md5) when the file is already there and verified (a rerun into the same
        folder), else the offset to resume its .part from (0: from the start)."""
        if f.attempts == 1 and not self._was_there(run, f.local):
            return 0  # neither it nor its .part was there, and nothing else writes them
        have = self.fs.size(f.local)
        # Kept only when its MD5 is the listing's: without a digest, a file of the same
        # size with other bytes (an older version, a local edit) could not be told apart,
        # so it is fetched again.
        if have is not None and f.digest and (f.size is None or have == f.size):
            md5 = self.fs.md5(f.local)
            if md5 == f.digest:
                return "md5", md5
        f.guarded = have is not None and not self._ours(run, f)
        if f.guarded and f.digest:
            raise FileInTheWay(_in_the_way(f))
        offset = self.fs.size(part) or 0
        if offset and f.digest and offset == f.size:
            # Whole: the process ended between its fsync and its rename (a file waits as
            # .part for its MD5 until the thread's next file is in). Its MD5 tells.
            md5 = self.fs.md5(part)
            if md5 == f.digest:
                self.fs.promote(part, f.local)
                return "md5", md5
        # A .part is continued only where the MD5 will check the whole: without a digest
        # nothing tells a part of an older version of the file from this one's.
        if offset and (not f.digest or (f.size is not None and offset >= f.size)):
            self.fs.remove(part)
            offset = 0
        return offset

    def _ours(self, run: _DownloadRun, f: _DownloadFile) -> bool:
        """Whether the file at ``f``'s path came from a download of this session (in a
        worker thread)."""
        where = _Resolved.within(run.out, f.local)
        if where in run.replaceable:
            return True
        earlier = run.listed_before.get(where)
        return earlier is not None and self.fs.md5(f.local) in earlier

    def _was_there(self, run: _DownloadRun, local: Path) -> bool:
        """Whether ``local`` or its .part was in its folder when the job first looked."""
        folder, name = os.path.split(local)  # text: Path.parent and its hash cost more
        names = run.listed.get(folder)
        if names is None:
            with self._listing:  # worker threads: one lists, the others wait for it
                names = run.listed.get(folder)
                if names is None:
                    names = run.listed[folder] = self.fs.names(Path(folder))
        return name in names or part_name(name) in names

    async def _fetch_once(self, run: _DownloadRun, f: _DownloadFile) -> tuple[str, str]:
        if self.fetcher is not None:
            return await self._fetch_threaded(run, f)
        final, part = f.local, part_of(f.local)
        name = final.name
        check = download_ops.Verifier(name, size=f.size, digest=f.digest)
        start = await asyncio.to_thread(self._start_point, run, f, part)
        if not isinstance(start, int):
            return start
        offset = start
        try:
            return await self._fetch_body(run, f, check, offset)
        except download_ops.PartTooLong:
            await asyncio.to_thread(self.fs.remove, part)  # the next try starts it again
            raise

    async def _fetch_body(
        self, run: _DownloadRun, f: _DownloadFile, check: download_ops.Verifier, offset: int
    ) -> tuple[str, str]:
        part, name = part_of(f.local), f.local.name
        async with download_ops.open_file(self.client, f.uri, offset=offset, what=name) as reply:
            check.content_type = reply.content_type
            if reply.start and offset:
                await asyncio.to_thread(_feed_file, check, part)
            key = (f.uid, f.idx)
            opened: list[BinaryIO] = []
            append = bool(reply.start)

            def store(chunks: list[bytes]) -> None:
                # In a worker thread: MD5, open and write release the GIL, so they run
                # beside the network loop. Checked before written: an error page is
                # refused before any .part exists. Marked as written to meanwhile: a
                # cancelled try's call runs on to its end.
                self._writing.add(key)
                try:
                    for chunk in chunks:
                        check.feed(chunk)
                        if not opened:
                            opened.append(self.fs.open_part(part, append=append))
                        _write_all(opened[0], chunk)
                    if not opened:
                        opened.append(self.fs.open_part(part, append=append))
                finally:
                    self._writing.discard(key)
                    self._wake_from_thread()

            def close() -> None:
                if opened:
                    with contextlib.suppress(OSError):  # a full disk fails the close too
                        opened[0].close()

            try:
                run.moving[key] = reply.start
                batch: list[bytes] = []
                pending = 0
                async for chunk in reply.chunks():
                    batch.append(chunk)
                    pending += len(chunk)
                    run.moving[key] += len(chunk)
                    if pending >= BATCH:
                        await asyncio.to_thread(store, batch)
                        batch, pending = [], 0
                if batch or not opened:
                    await asyncio.to_thread(store, batch)
                md5 = check.finish()
            except download_ops.IntegrityError:
                close()
                self.fs.remove(part)  # wrong bytes are never resumed from
                raise
            except BaseException:
                close()  # a cut body stays .part, resumable with Range
                raise
            await asyncio.to_thread(self._commit, f, opened[0], part, md5)
        return check.how, md5

    async def _fetch_threaded(
        self, run: _DownloadRun, f: _DownloadFile, *, renewed: bool = False
    ) -> tuple[str, str]:
        """The whole file in a worker thread; a 401 renews the session here, on the loop
        (once: ``renewed`` when that was done already)."""
        assert self.fetcher is not None
        stop = threading.Event()
        for attempt in (1,) if renewed else (0, 1):
            headers, generation = self.fetcher.prepare()
            try:
                # Its own threads, one per file at once: blocking network reads must
                # never starve the default executor (others' file I/O runs there).
                thread = asyncio.get_running_loop().run_in_executor(
                    self._pool, self._transfer_marked, run, f, headers, generation, stop
                )
                try:
                    return await asyncio.shield(thread)
                except asyncio.CancelledError:
                    await _let_go(thread, stop)  # the .part stays
                    if thread.done() and not thread.cancelled() and not thread.exception():
                        self._settle(run, f, thread.result())
                    raise
            except download_ops.NeedLogin as need:
                if attempt == 1:
                    raise SessionExpired(
                        f"Cannot download {f.local.name}: the server refuses the renewed session",
                        retriable=True,
                        status=401,
                    ) from None
                await self.client._relogin(need.generation)
        raise AssertionError("unreachable")  # pragma: no cover

    def _transfer_marked(
        self,
        run: _DownloadRun,
        f: _DownloadFile,
        headers: dict[str, str],
        generation: int,
        stop: threading.Event,
    ) -> tuple[str, str]:
        """One file received, checked and renamed (blocking, in a worker thread), marked
        as written to until this thread leaves it (then the scheduler is woken: a new
        try may start)."""
        key = (f.uid, f.idx)
        self._writing.add(key)
        try:
            got = self._receive(run, f, headers, generation, stop, self._buffers()[0])
            return got if isinstance(got, tuple) else self._complete(got)
        finally:
            self._left(key)

    def _left(self, key: tuple[str, int]) -> None:
        """This thread is done with a file: the scheduler may start a new try of it."""
        self._writing.discard(key)
        self._wake_from_thread()

    def _still_written(self, f: _DownloadFile) -> bool:
        """Whether a worker thread is still on ``f`` (on the loop). The flag is set before
        the second look: a thread leaving between the two sees it, and wakes the loop."""
        key = (f.uid, f.idx)
        if key not in self._writing:
            return False
        self._wanted_written = True
        return key in self._writing

    def _wake_from_thread(self) -> None:
        """Wakes the scheduler if it passed a file over for a thread still on it (only
        then: a wake per file would cost the loop a hop per file)."""
        if self._wanted_written and self._loop is not None:
            self._wanted_written = False
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing waits
                self._loop.call_soon_threadsafe(self._wake.set)

    def _buffers(self) -> list[memoryview]:
        """This worker thread's two receive buffers (one file's bytes wait in one for
        their MD5 while the next file arrives in the other), made once: a fresh 1 MiB
        per file costs the kernel a page fault for every 4 KiB of it. Mapped, so
        page-aligned, as a direct write needs."""
        views: list[memoryview] | None = getattr(self._local, "buffers", None)
        if views is None:
            views = [memoryview(mmap.mmap(-1, BUFFER)) for _ in range(2)]
            self._local.buffers = views
        return views

    def _receive(
        self,
        run: _DownloadRun,
        f: _DownloadFile,
        headers: dict[str, str],
        generation: int,
        stop: threading.Event,
        view: memoryview,
    ) -> tuple[str, str] | _Received:
        """GET, check, write, fsync: one file through ``view``, blocking (in a worker
        thread). Its last bytes' MD5 may still be queued when it returns: ``view`` stays
        as it is until :meth:`_complete` (which checks and renames the file) is done.
        (how, md5) where the file was there already."""
        assert self.fetcher is not None
        if stop.is_set():  # paused or cancelled while queued for a worker
            raise asyncio.CancelledError
        part = part_of(f.local)
        check = download_ops.Verifier(
            f.local.name, size=f.size, digest=f.digest, streams=self._md5_streams
        )
        start = self._start_point(run, f, part)
        if not isinstance(start, int):
            return start
        offset = start
        try:
            reply = self.fetcher.get(f.uri, headers, generation, offset=offset, what=f.local.name)
        except download_ops.PartTooLong:
            self.fs.remove(part)  # the next try starts the file again
            raise
        check.content_type = reply.content_type
        key = (f.uid, f.idx)
        handle: BinaryIO | None = None
        complete = False
        try:
            if reply.start and offset:
                _feed_file(check, part)
            run.moving[key] = reply.start
            # Received in steps, and written when the buffer is full (whole aligned
            # buffers: direct writes).
            filled = 0  # received and checked, not yet written
            queued = 0  # of those, handed to the MD5 batch: whole 64-byte blocks
            try:
                while True:
                    if stop.is_set():
                        raise asyncio.CancelledError
                    n = reply.readinto(view[filled : filled + STEP])
                    if not n:
                        break
                    # Checked before anything is written: no .part for an error page.
                    check.feed(view[filled : filled + n], hash=False)
                    filled += n
                    run.moving[key] += n
                    # The MD5 waits in the batch other threads' bytes join, in runs of
                    # whole blocks (a cut one would cost a run of its own).
                    if filled - queued >= RUN or filled == len(view):
                        whole = filled - filled % 64
                        check.hash_later(view[queued:whole])
                        queued = whole
                    if filled == len(view):
                        if handle is None:
                            handle = self.fs.open_part(part, append=bool(reply.start))
                        _write_all(handle, view)
                        check.settle()  # hashed before the buffer is filled again
                        filled = queued = 0
            except (ConnectionFailed, asyncio.CancelledError):
                # A cut or a pause keeps what arrived: a resume asks for the rest (Range).
                if filled:
                    with contextlib.suppress(OSError):
                        if handle is None:
                            handle = self.fs.open_part(part, append=bool(reply.start))
                        _write_all(handle, view[:filled])
                raise
            complete = True
            check.hash_later(view[queued:filled])
            if handle is None:
                handle = self.fs.open_part(part, append=bool(reply.start))
            _write_all(handle, view[:filled])
            # Synced before the digest is settled: while this thread waits on the disk,
            # the other threads queue their bytes, and its last run is hashed beside
            # theirs.
            self.fs.sync(handle)
        except BaseException as exc:
            if handle is not None:
                with contextlib.suppress(OSError):  # a full disk fails the close too
                    handle.close()  # a cut body stays .part, resumable with Range
            check.settle()  # no MD5 left queued on this thread's buffer
            if not complete:
                self.fetcher.drop()  # the rest of the body is unread: no reuse
            if isinstance(exc, download_ops.IntegrityError):
                self.fs.remove(part)  # wrong bytes are never resumed from
            raise
        return _Received(f, check, handle, part)

    def _complete(self, got: _Received) -> tuple[str, str]:
        """A received file's MD5 settled and checked, and the file under its name."""
        try:
            md5 = got.check.finish()
        except BaseException as exc:
            got.check.settle()  # no MD5 left queued on the buffer (a short body fails first)
            with contextlib.suppress(OSError):
                got.handle.close()
            if isinstance(exc, download_ops.IntegrityError):
                self.fs.remove(got.part)  # wrong bytes are never resumed from
            raise
        self._place(got.f, got.handle, got.part, md5)
        return got.check.how, md5

    def _commit(self, f: _DownloadFile, handle: BinaryIO, part: Path, md5: str) -> None:
        self.fs.sync(handle)
        self._place(f, handle, part, md5)

    def _place(self, f: _DownloadFile, handle: BinaryIO, part: Path, md5: str) -> None:
        """The verified .part under its name (in a worker thread). Where a file that is
        not ours to replace is there (no MD5 listed to tell it by), only the same bytes
        may: the same, it stays as it is; other, it stays too and the file fails."""
        if not f.guarded:
            self.fs.finish(handle, part, f.local)
            return
        with contextlib.suppress(OSError):
            handle.close()
        self.fs.remove(part)
        if self.fs.md5(f.local) != md5:
            raise FileInTheWay(_in_the_way(f))

    def _flush(self, run: _DownloadRun) -> None:
        if run.marks:
            marks, run.marks = run.marks, []
            self.journal.files_done(run.job_id, [k for k, _ in marks], [m for _, m in marks])
            # A scan resource whose files are all in counts as done in the series table,
            # which 'transfers list/show' and the receipt read.
            complete, run.scans_complete = run.scans_complete, []
            for uid in complete:
                if not run.scan_left[uid] and uid not in run.scans_marked:
                    self.journal.series_sent(run.job_id, uid, run.scan_uri[uid], [])
                    run.scans_marked.add(uid)

    def _file_failed(self, run: _DownloadRun, f: _DownloadFile, exc: BaseException) -> None:
        text = str(exc) or type(exc).__name__
        if _disk_full(exc):
            run.fatal = (
                f"the local disk is full writing {run.out} ({text}); complete files are "
                f"kept and the rest stay *.part. Free space, then 'xnat-tui transfers retry "
                f"{run.job_id}'"
            )
            for task in list(run.tasks.values()):
                task.cancel()
            self._wake.set()
            return
        if isinstance(exc, OSError):
            run.fatal = f"cannot write {f.local}: {text}"
            self._wake.set()
            return
        if isinstance(exc, AuthenticationError) and not is_retriable(exc):
            # A failed renewal says so itself; then what to do, as for a full disk.
            why = text if isinstance(exc, SessionExpired) else f"logging in again failed: {text}"
            run.fatal = f"{why}. Log in again, then 'xnat-tui transfers retry {run.job_id}'"
            for task in list(run.tasks.values()):
                task.cancel()
            self._wake.set()
            return
        if isinstance(exc, NotFound):
            f.failed = f"no longer on the server ({text})"
            return
        if is_retriable(exc) and f.attempts < self.retry_policy.attempts:
            delay = self.retry_policy.delay(f.attempts)
            f.not_before = self.clock.now() + delay
            self._message(
                "warning",
                f"{run.label} {f.local.name}: {text}; retry {f.attempts}/"
                f"{self.retry_policy.attempts - 1} in {delay:.1f}s",
                run.job_id,
            )
            return
        f.failed = text if not is_retriable(exc) else f"{text} (gave up after {f.attempts} tries)"
        f.relist = isinstance(exc, download_ops.NotAsListed)
        self._message("error", f"{run.label} {f.local.name}: {f.failed}", run.job_id)


def _cancelled(run: _DownloadRun) -> str:
    return (
        f"{run.cancelled_why}; {run.done_count} of {len(run.files)} file(s) complete in "
        f"{run.out} (a file begun and not finished is left as *.part)"
    )


async def _let_go(thread: asyncio.Future[Any], stop: threading.Event) -> None:
    """A pause or cancel of a worker thread's files: it stops at its next chunk. What it
    finishes by then (the file it was writing, the one waiting for its MD5) is counted
    by the caller; a thread stuck on a silent server is not waited for.

    The engine closing meanwhile (a command ends once its jobs are cancelled) does not
    cut this short: it shuts the connections, so the thread is out at once, and its
    files are still counted before the caller's cancellation goes on.
    """
    stop.set()
    deadline = time.monotonic() + STOP_GRACE
    while not thread.done() and (left := deadline - time.monotonic()) > 0:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({thread}, timeout=left)


def _in_the_way(f: _DownloadFile) -> str:
    return (
        f"{f.local.name} is already in {f.local.parent} with other content than the server's, "
        "and no download of this session saved it there: it is not replaced (move it away, "
        "or download into another folder with --out)"
    )


def _named(f: _DownloadFile) -> str:
    return f.failed if f.local.name in f.failed else f"{f.local.name}: {f.failed}"


@dataclass(slots=True)
class _Received:
    """A file arrived, written and synced as its .part; its MD5 may still be queued
    (on a worker thread's buffer, which waits until :meth:`DownloadEngine._complete`)."""

    f: _DownloadFile
    check: download_ops.Verifier
    handle: BinaryIO
    part: Path


def part_of(local: Path) -> Path:
    """Where a file is written until it is whole and verified."""
    return local.with_name(part_name(local.name))


def part_name(name: str) -> str:
    """``NAME.part``, or where that would pass the file system's 255 bytes (a name the
    server gave at the limit), a shorter name that is still NAME's alone: its start and
    a hash of it."""
    part = name + PART
    if len(os.fsencode(part)) <= NAME_MAX:
        return part
    tag = "~" + hashlib.md5(os.fsencode(name), usedforsecurity=False).hexdigest()[:16] + PART
    keep = name
    while len(os.fsencode(keep + tag)) > NAME_MAX:
        keep = keep[:-1]
    return keep + tag


def _settled(run: _DownloadRun, f: _DownloadFile) -> bool:
    return f.done or bool(f.failed) or (f.uid, f.idx) in run.tasks


def _write_all(handle: BinaryIO, data: bytes | memoryview) -> None:
    """An unbuffered write may take part of the data (a signal; a disk filling up, whose
    next write then raises ENOSPC): write the rest."""
    while data:
        data = data[handle.write(data) :]


def _feed_file(check: download_ops.Verifier, path: Path) -> None:
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            check.feed(chunk)
