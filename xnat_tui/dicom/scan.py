"""Scan folder trees for DICOM: walk, read headers in a process pool, group, check.

``scan()`` is a generator of ``ScanBatch`` events (new files, problems, touched
sessions, progress) ending with one ``ScanSummary``. It is cancellable at any time
(set ``cancel`` or close the generator) and then terminates its worker processes.
``scan_async()`` and ``ScanThread`` run it off the caller's thread for UIs.

Work split: the calling thread walks folders, answers unchanged files from the
rescan cache and groups results; worker processes (from a fork server, so nothing
is inherited from a threaded parent) read headers in chunks. Small scans never start
a pool.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections import deque
from collections.abc import (
    AsyncIterator,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xnat_tui.dicom import archives, memo
from xnat_tui.dicom.archives import archive_kind
from xnat_tui.dicom.cache import DirRecords, ScanCache, default_path, signature
from xnat_tui.dicom.header import DEFAULT_TAGS
from xnat_tui.dicom.model import (
    FileRef,
    PendingFiles,
    Problem,
    ProblemKind,
    ScanBatch,
    ScanEvent,
    ScanProgress,
    ScanSummary,
    Session,
)
from xnat_tui.dicom.routing import PatternLike, invalid_patterns, routing_keywords
from xnat_tui.dicom.walk import SKIP_DIRS, DirListing, walk
from xnat_tui.dicom.worker import (
    Chunk,
    Item,
    Record,
    Row,
    compact,
    examine,
    examine_chunk,
    init_worker,
)

# multiprocessing, concurrent.futures (which imports logging), the process pool and
# asyncio are imported where they are used: a rescan answered from the cache never
# starts a pool, and the CLI should not pay for them at start-up.
if TYPE_CHECKING:
    import asyncio
    import multiprocessing.context
    from concurrent.futures import Future

    from xnat_tui.dicom.collect import Collector

CHUNK = 128  # files per task: big enough to amortise IPC, small enough to cancel fast
INLINE_LIMIT = 400  # fewer files than this are read in-process (no pool start-up)
BATCH_INTERVAL = 0.2  # seconds between batches while work is going on
YIELD_EVERY = 0.002  # seconds of scanning between GIL releases (see _Scanner.yield_gil)


def default_workers() -> int:
    from xnat_tui.dicom.processes import usable_cpus

    return usable_cpus()


# Value representations the header reader can turn into text for a routing pattern.
_TEXT_VRS = set("AE AS CS DA DS DT IS LO LT PN SH ST TM UC UI UT".split())


def wanted_tags(patterns: Sequence[PatternLike]) -> tuple[dict[int, tuple[str, str]], list[str]]:
    """DEFAULT_TAGS plus the text tags the routing patterns read; and what can't be read."""
    want = dict(DEFAULT_TAGS)
    known = {kw for kw, _vr in want.values()}
    extra = sorted(routing_keywords(patterns) - known)
    unusable: list[str] = []
    if extra:
        from pydicom.datadict import dictionary_VR, tag_for_keyword

        for kw in extra:
            tag = tag_for_keyword(kw)
            if tag is None:
                unusable.append(f"routing pattern: {kw!r} is not a DICOM keyword")
            elif tag >> 16 in (0x0002, 0x7FE0) or dictionary_VR(tag) not in _TEXT_VRS:
                unusable.append(f"routing pattern: {kw} is not a text attribute of the dataset")
            else:
                want[tag] = (kw, dictionary_VR(tag))
    return want, unusable


def _mp_context() -> multiprocessing.context.BaseContext:
    from xnat_tui.dicom.processes import worker_context

    return worker_context()


class _Pool:
    """A ProcessPoolExecutor that can be killed, not just shut down."""

    def __init__(self, workers: int) -> None:
        from concurrent.futures import ProcessPoolExecutor

        self.executor = ProcessPoolExecutor(
            max_workers=workers, mp_context=_mp_context(), initializer=init_worker
        )

    def kill(self) -> None:
        ex = self.executor
        processes = list(getattr(ex, "_processes", {}).values())
        ex.shutdown(wait=False, cancel_futures=True)
        for p in processes:
            with contextlib.suppress(Exception):
                p.terminate()
        for p in processes:
            with contextlib.suppress(Exception):
                p.join(timeout=5)
                if p.is_alive():
                    p.kill()
                    p.join(timeout=5)

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


class _ArchState:
    """An archive on its way into the cache (one row for all its members)."""

    __slots__ = ("key", "records", "remaining", "walked")

    def __init__(self, key: str, records: DirRecords) -> None:
        self.key = key
        self.records = records
        self.remaining = 0  # members handed out or examined, not noted yet
        self.walked = False


class _DirState:
    """A folder on its way into the cache: what the cache knew, what we learn."""

    __slots__ = (
        "known",
        "records",
        "complete",
        "remaining",
        "listed",
        "changed",
        "listing",
        "same",
        "held",
    )

    def __init__(self, known: DirRecords, complete: bool) -> None:
        self.known = known
        # Shares the known contexts, so cache hits keep their context indices.
        self.records = DirRecords(known.contexts, {})
        self.complete = complete
        self.remaining = 0  # files sent to be examined, not back yet
        self.listed = False  # the last part of the listing has been seen
        self.changed = False  # some file had to be read again
        # The whole listing of a complete folder (for an exact cache row).
        self.listing: list[tuple[str, int, int]] | None = [] if complete else None
        # Every part so far equals the cached stamps at its position: the parts are
        # held back until the last one decides whether the folder is unchanged.
        self.same = complete and known.exact
        self.held: list[DirListing] = []


# Results that the rescan cache does not keep (read again next time), and unusable
# routing patterns: the memo key holds only the usable ones (two pattern lists that
# differ in an unusable one share a key), and those problems are reported afresh
# before the walk anyway. Such a scan keeps no tree memo.
_NOT_MEMO = {ProblemKind.UNREADABLE, ProblemKind.CONFIG}


def _take(queue: deque[Item], n: int) -> list[Item]:
    return [queue.popleft() for _ in range(min(n, len(queue)))]


class _Scanner:
    def __init__(
        self,
        paths: Sequence[Path],
        *,
        workers: int,
        cache: ScanCache | None,
        patterns: Sequence[PatternLike],
        want: Mapping[int, tuple[str, str]],
        cancel: threading.Event,
        batch_interval: float,
        chunk: int,
        inline_limit: int,
    ) -> None:
        self.paths = paths
        self.workers = workers
        self.cache = cache
        self.want = dict(want)
        self.cancel = cancel
        self.batch_interval = batch_interval
        self.chunk = chunk
        self.inline_limit = inline_limit
        self.patterns = list(patterns)
        self._collector: Collector | None = None
        # What the walk sees, for the tree memo (memo.py) of this set of roots.
        self.record: memo.TreeRecord | None = None
        self.memo_key = b""
        self.stale_memo = False
        self.prelisted: dict[str, memo.Leaf] | None = None  # read by a failed check
        if cache is not None and memo.available():
            self.record = memo.TreeRecord(cache.racy_before)
            self.memo_key = memo.memo_key(paths, cache.sig, patterns)
        self.t0 = time.monotonic()
        self.files_seen = self.files_parsed = self.files_dicom = 0
        self.files_cached = self.bytes_read = self.n_problems = 0
        self.walk_problems = 0  # problems of the walk itself (not of a file's header)
        self.walk_done = False
        self.new_files: list[FileRef] = []
        self.new_chunks: list[PendingFiles] = []  # cached files, built on demand
        self.new_problems: list[Problem] = []
        self.touched: dict[str, Session] = {}
        # Folders still being listed or examined, for the cache.
        self.dirs: dict[str, _DirState] = {}
        # Archives being read, for the cache: (their key, records, members not yet
        # examined, walk finished); None once something makes one uncacheable.
        self.arch: dict[str, _ArchState | None] = {}
        self._yielded = time.perf_counter()
        self.skipped_resources: set[str] = set()

    @property
    def collector(self) -> Collector:
        """Grouping and checks; not imported for a rescan answered by the tree memo."""
        if self._collector is None:
            from xnat_tui.dicom.collect import Collector

            self._collector = Collector(self.patterns)
        return self._collector

    def progress(self) -> ScanProgress:
        return ScanProgress(
            files_seen=self.files_seen,
            files_parsed=self.files_parsed,
            files_dicom=self.files_dicom,
            files_cached=self.files_cached,
            bytes_read=self.bytes_read,
            problems=self.n_problems,
            elapsed=time.monotonic() - self.t0,
            walk_done=self.walk_done,
        )

    def take_batch(self) -> ScanBatch:
        batch = ScanBatch(
            files=self.new_files,
            problems=self.new_problems,
            sessions=list(self.touched.values()),
            progress=self.progress(),
            chunks=self.new_chunks,
        )
        self.new_files, self.new_problems, self.touched = [], [], {}
        self.new_chunks = []
        return batch

    def problem(self, p: Problem) -> None:
        self.walk_problems += 1
        self.collector.problems.append(p)
        self.new_problems.append(p)
        self.n_problems += 1

    def add(self, contexts: list[dict[str, str]], rows: list[Row], cached: bool) -> None:
        self.files_parsed += len(rows)
        if cached:
            self.files_cached += len(rows)
        else:
            self.bytes_read += sum(r[8] for r in rows)
        refs, problems, sessions = self.collector.add_chunk(contexts, rows)
        self.files_dicom += len(refs)
        self.new_files.extend(refs)
        self.new_problems.extend(problems)
        self.n_problems += len(problems)
        for session in sessions:
            self.touched[session.study_instance_uid] = session

    def listing(self, d: DirListing) -> list[Item]:
        """Answer what the cache knows; return the files that must be read."""
        self.files_seen += len(d.files)
        prefix = os.path.join(d.path, "")
        if self.cache is None:
            return [(prefix + name, size, mtime) for name, size, mtime in d.files]
        state = self.dirs.get(d.path)
        if state is None:
            # First part of this folder: one cache read serves all its parts.
            known = self.cache.lookup(d.path)
            if d.last and d.complete and known.exact and known.stamps == d.files:
                # Every (name, size, mtime) is as cached: the whole folder is
                # answered at once, nothing to store.
                self._add_folder(d.path, known)
                return []
            state = self.dirs[d.path] = _DirState(known, d.complete)
        if state.listing is not None:
            state.listing.extend(d.files)
        if state.same:
            # A folder listed in parts (thousands of files): compare part by part.
            known = state.known
            start = len(state.listing or ()) - len(d.files)
            end = start + len(d.files)
            if known.stamps[start:end] == d.files and (not d.last or end == len(known.stamps)):
                if not d.last:
                    state.held.append(d)
                    return []
                del self.dirs[d.path]
                self._add_folder(d.path, known)
                return []
            state.same = False
            misses: list[Item] = []
            for part in state.held:
                misses.extend(self._match(part, state))
            state.held = []
            misses.extend(self._match(d, state))
            return misses
        return self._match(d, state)

    def _match(self, d: DirListing, state: _DirState) -> list[Item]:
        """File by file: cache hits are added, misses returned to be read."""
        prefix = os.path.join(d.path, "")
        known = state.known
        entries = known.entries
        hits = state.records.entries
        misses: list[Item] = []
        rows: list[Row] = []
        for name, size, mtime_ns in d.files:
            hit = entries.get(name)
            if hit is not None and hit[0] == size and hit[1] == mtime_ns:
                hits[name] = hit
                rows.append(
                    (prefix + name, size, mtime_ns, hit[2], hit[3], hit[4], hit[5], hit[6], 0)
                )
            else:
                misses.append((prefix + name, size, mtime_ns))
        if rows:
            self.add(known.contexts, rows, cached=True)
        state.remaining += len(misses)
        state.changed = state.changed or bool(misses)
        state.listed = d.last
        self._settle(d.path, state)
        return misses

    def _add_folder(self, folder: str, known: DirRecords) -> None:
        n = len(known.stamps)
        self.files_parsed += n
        self.files_cached += n
        if known.uniform >= 0:
            refs, chunks, problems, sessions = self.collector.add_folder(
                folder,
                known.contexts,
                known.stamps,
                uniform=known.uniform,
                sops=known.sops,
                insts=known.insts,
            )
        else:
            refs, chunks, problems, sessions = self.collector.add_folder(
                folder, known.contexts, known.stamps, known.data
            )
        self.files_dicom += len(refs) + sum(map(len, chunks))
        self.new_files.extend(refs)
        self.new_chunks.extend(chunks)
        self.new_problems.extend(problems)
        self.n_problems += len(problems)
        for session in sessions:
            self.touched[session.study_instance_uid] = session

    def _settle(self, folder: str, state: _DirState) -> None:
        """Write a folder to the cache once it is fully listed and examined."""
        if not state.listed or state.remaining > 0 or self.cache is None:
            return
        del self.dirs[folder]
        records = state.records
        if (
            state.changed
            or not state.complete
            or len(records.entries) != len(state.known.stamps)
            # Unchanged, but the row cannot prove it at a glance (listed in another
            # order, or written before it could be exact): rewrite it once.
            or (
                state.listing is not None
                and (not state.known.exact or state.listing != state.known.stamps)
            )
        ):
            self.cache.store(folder, records, complete=state.complete, listing=state.listing)

    def results(self, chunk: Chunk) -> None:
        contexts, rows = chunk
        self.add(contexts, rows, cached=False)
        if self.cache is None:
            return
        if self.arch:
            self._archive_rows(contexts, rows)
        for path, size, mtime_ns, kind, detail, ci, sop, inst, _n in rows:
            folder, name = os.path.split(path)
            state = self.dirs.get(folder)
            if state is None:
                continue
            records = state.records
            ctx = records.context_index(contexts[ci]) if ci >= 0 else -1
            records.entries[name] = (size, mtime_ns, kind, detail, ctx, sop, inst)
            state.remaining -= 1
            self._settle(folder, state)

    # ------------------------------------------------------------ archives
    def expand(
        self, walker: Iterable[Problem | DirListing], archive_roots: Sequence[tuple[str, str]]
    ) -> Generator[Problem | DirListing | list[Item], None, None]:
        """The walk, with every archive it lists read in place (archives.py): members
        reached by random access come out as items for the workers; members of
        compressed archives are examined here while the pass goes by."""
        for outer, prefix in archive_roots:
            try:
                st = os.stat(outer)
            except OSError as exc:
                self.problem(
                    Problem(
                        outer, ProblemKind.UNREADABLE, f"cannot access: {exc.strerror}", "error"
                    )
                )
                continue
            yield from self.archive(outer, st.st_mtime_ns, prefix)
        for event in walker:
            if not isinstance(event, DirListing):
                yield event
                continue
            resource = xnat_resource(event.path + "/")
            if resource is not None and event.files:
                self.files_seen += len(event.files)
                self.skip_resource(*resource)
                event.files = []
                if self.record is not None:
                    self.record.spoil()
            found = [f for f in event.files if archive_kind(f[0]) is not None]
            if found:
                if self.record is not None:
                    self.record.spoil()
                event.files = [f for f in event.files if archive_kind(f[0]) is None]
            yield event
            for name, _size, mtime_ns in found:
                yield from self.archive(os.path.join(event.path, name), mtime_ns, "")

    def skip_resource(self, folder: str, name: str) -> None:
        """Files of a non-DICOM resource of XNAT's session layout: one problem each."""
        if folder in self.skipped_resources:
            return
        self.skipped_resources.add(folder)
        detail = f"XNAT {name} resource (not DICOM): skipped, not uploaded"
        self.problem(Problem(folder, ProblemKind.JUNK, detail, "info"))

    def _archive_key(self, path: str) -> str | None:
        """The cache row of a whole archive: its path and (size, mtime, inode), so a
        changed or replaced archive never matches (a NUL never occurs in a path)."""
        if self.cache is None:
            return None
        try:
            st = os.stat(path)
        except OSError:
            return None
        return f"{path}\0archive {st.st_size}:{st.st_mtime_ns}:{st.st_ino}"

    def _archive_hit(self, path: str, key: str, prefix: str) -> bool:
        """Every member's record from the cache, without opening the archive."""
        assert self.cache is not None
        known = self.cache.lookup(key)
        if not known.exact or not known.stamps:
            return False
        start = archives.join(path, prefix) if prefix else ""
        base = path + archives.SEP
        rows: list[Row] = [
            (base + st[0], st[1], st[2], *d, 0)
            for st, d in zip(known.stamps, known.data, strict=True)
            if _under(base + st[0], start)
        ]
        self.files_seen += len(rows)
        if rows:
            self.add(known.contexts, rows, cached=True)
        return True

    def _archive_rows(self, contexts: list[dict[str, str]], rows: Sequence[Row]) -> None:
        """Examined members, noted for their archive's cache row."""
        for row in rows:
            outer = archives.outermost(row[0])
            if outer not in self.arch:
                continue
            state = self.arch[outer]
            if state is None:
                continue
            assert self.cache is not None
            if not self.cache.keeps(row[3], row[2]):
                self.arch[outer] = None
                continue
            ci = state.records.context_index(contexts[row[5]]) if row[5] >= 0 else -1
            name = row[0][len(outer) + 1 :]
            state.records.entries[name] = (row[1], row[2], row[3], row[4], ci, row[6], row[7])
            state.remaining -= 1
            self._archive_settle(outer)

    def _archive_settle(self, outer: str) -> None:
        state = self.arch.get(outer)
        if state is None or not state.walked or state.remaining > 0 or self.cache is None:
            return
        del self.arch[outer]
        entries = state.records.entries
        listing = [(name, e[0], e[1]) for name, e in entries.items()]
        if listing:
            self.cache.store(state.key, state.records, complete=True, listing=listing)

    def archive(self, path: str, mtime_ns: int, prefix: str) -> Iterator[list[Item]]:
        key = self._archive_key(path)
        if key is not None and self._archive_hit(path, key, prefix):
            return
        # Only a whole archive read without a problem is remembered.
        if key is not None and not prefix and path not in self.arch:
            self.arch[path] = _ArchState(key, DirRecords())
        else:
            self.arch.setdefault(path, None)
        problems_before = self.walk_problems
        yield from self._archive(path, mtime_ns, prefix)
        state = self.arch.get(path)
        if state is not None:
            if self.walk_problems != problems_before or self.cancel.is_set():
                self.arch[path] = None
            else:
                state.walked = True
                self._archive_settle(path)

    def _archive(self, path: str, mtime_ns: int, prefix: str) -> Iterator[list[Item]]:
        items: list[Item] = []
        held: list[Record] = []
        skipped: set[str] = set()
        start = archives.join(path, prefix) if prefix else ""
        for entry in archives.walk_archive(path):
            if self.cancel.is_set():
                return
            if isinstance(entry, Problem):
                if _under(entry.path, start) or _under(start, entry.path):
                    self.problem(entry)
                continue
            if not _under(entry.path, start):
                continue
            resource = xnat_resource(entry.path)
            if resource is not None:
                self.files_seen += 1
                self.skip_resource(*resource)
                continue
            junk = _junk_folder(entry.path)
            if junk is not None:
                if junk[0] not in skipped:
                    skipped.add(junk[0])
                    self.problem(Problem(junk[0], ProblemKind.JUNK, junk[1], "info"))
                continue
            self.files_seen += 1
            if entry.stream is None:
                items.append((entry.path, entry.size, mtime_ns))
                if len(items) >= self.chunk:
                    self._count_items(path, len(items))
                    yield items
                    items = []
                continue
            try:
                source = archives.hold(entry.stream, entry.size)
            except Exception as exc:  # noqa: BLE001 - a damaged stream: the archive says why
                self.problem(
                    Problem(
                        entry.path,
                        ProblemKind.CORRUPT,
                        f"cannot be read from its archive: {exc or type(exc).__name__}",
                        "error",
                    )
                )
                continue
            held.append(examine(entry.path, entry.size, mtime_ns, self.want, source))
            if len(held) >= 16:
                self._add_examined(path, held)
                held = []
                yield []
        if held:
            self._add_examined(path, held)
        if items:
            self._count_items(path, len(items))
            yield items

    def _add_examined(self, path: str, held: list[Record]) -> None:
        contexts, rows = compact(held)
        self.add(contexts, rows, cached=False)
        self._count_items(path, len(rows))
        self._archive_rows(contexts, rows)

    def _count_items(self, path: str, n: int) -> None:
        state = self.arch.get(path)
        if state is not None:
            state.remaining += n

    def yield_gil(self) -> None:
        """Release the GIL briefly if we have held it for a while.

        A waiting event loop (the TUI) then runs before the interpreter's 5 ms switch
        interval would force it. Not after every folder: each ``sleep(0)`` is a system
        call, and a cached rescan lists hundreds of folders in a few milliseconds.
        """
        now = time.perf_counter()
        if now - self._yielded >= YIELD_EVERY:
            time.sleep(0)
            self._yielded = time.perf_counter()

    def due(self, last: float) -> bool:
        return time.monotonic() - last >= self.batch_interval

    def reuse(self) -> list[ScanEvent] | None:
        """The last scan's result, if the tree is exactly as it was then."""
        cache = self.cache
        # Unusable routing patterns are reported afresh (the only problems known before
        # the walk); such scans keep no memo.
        if cache is None or self.record is None or self._collector is not None:
            return None
        blob = cache.load_tree(self.memo_key)
        if blob is None:
            return None
        opened = memo.open_memo(blob)
        if opened is None:
            self.stale_memo = True
            return None
        changed = memo.check(opened[0], opened[1])
        if changed is not None:
            self.stale_memo = True
            self.prelisted = changed
            return None
        try:
            sessions, problems, counts = memo.unpack_result(opened[2])
        except (ValueError, EOFError, TypeError):  # written by a broken build?
            self.stale_memo = True
            return None
        seen, parsed, dicom, n_problems = counts
        self.files_seen, self.files_parsed, self.files_dicom = seen, parsed, dicom
        self.files_cached, self.n_problems = parsed, n_problems
        self.walk_done = True
        chunks = [c for s in sessions for sc in s.scans.values() for c in sc._pending or ()]
        progress = self.progress()
        batch = ScanBatch(
            files=[], problems=list(problems), sessions=sessions, progress=progress, chunks=chunks
        )
        summary = ScanSummary(
            sessions=sessions,
            problems=problems,
            progress=progress,
            roots=list(self.paths),
            reused=True,
        )
        return [batch, summary]

    def remember(self, sessions: list[Session], cancelled: bool) -> None:
        """Keep this result as the tree memo, when the walk proved the tree simple."""
        record, cache = self.record, self.cache
        if record is None or cache is None:
            return
        if (
            cancelled
            or not record.ok
            or self.collector.read_errors
            or any(p.kind in _NOT_MEMO for p in self.collector.problems)
        ):
            if self.stale_memo:
                cache.store_tree(self.memo_key, None)
            return
        result = memo.pack_result(sessions, self.collector.problems, self.progress())
        cache.store_tree(self.memo_key, memo.pack_memo(record, result))

    def run(self) -> Generator[ScanEvent, None, None]:
        reused = self.reuse()
        if reused is not None:
            yield from reused
            return
        from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, wait

        disk_roots, archive_roots = _split_roots(self.paths)
        if archive_roots and self.record is not None:
            self.record.spoil()
        walker = self.expand(
            walk(disk_roots, self.cancel, self.record, self.prelisted), archive_roots
        )
        if self.cache is not None:
            self.cache.prefetch([str(p) for p in self.paths])
        pending: deque[Item] = deque()
        pending_since: float | None = None
        inflight: dict[Future[Chunk], list[Item]] = {}
        pool: _Pool | None = None
        last = time.monotonic()
        max_inflight = self.workers * 3
        try:
            while not self.cancel.is_set():
                # 1. Walk until there is enough to hand out or a batch is due.
                while not self.walk_done and len(pending) < self.chunk * max_inflight:
                    event = next(walker, None)
                    if event is None:
                        self.walk_done = True
                        break
                    if isinstance(event, Problem):
                        self.problem(event)
                        continue
                    if isinstance(event, list):
                        misses = event  # archive members, read by random access
                    else:
                        misses = self.listing(event)
                    if misses and pending_since is None:
                        pending_since = time.monotonic()
                    pending.extend(misses)
                    # Walking is Python code that keeps the GIL between directory
                    # reads; give a waiting event loop its turn now and then.
                    self.yield_gil()
                    if self.due(last) or (pool is not None and len(pending) >= self.chunk):
                        break
                    if self.cancel.is_set():
                        break
                if self.cancel.is_set():
                    break

                # 2. Read headers: in-process for small jobs, else in the pool.
                if pool is None and pending:
                    stale = pending_since is not None and time.monotonic() - pending_since > 0.5
                    if len(pending) >= self.inline_limit and self.workers > 1:
                        try:
                            pool = _Pool(self.workers)
                        except (OSError, ValueError):
                            # No worker processes here (sandboxed, odd stdio): read
                            # every header in-process instead of failing the scan.
                            self.workers = 1
                    elif (
                        self.walk_done
                        or stale
                        or len(pending) >= self.chunk * max_inflight
                        or (self.workers == 1 and len(pending) >= self.chunk)
                    ):
                        todo = _take(pending, self.chunk)
                        self.results(examine_chunk(todo, self.want))
                        pending_since = time.monotonic() if pending else None
                if pool is not None:
                    while pending and len(inflight) < max_inflight:
                        if len(pending) < self.chunk and not self.walk_done:
                            break
                        todo = _take(pending, self.chunk)
                        try:
                            fut = pool.executor.submit(examine_chunk, todo, self.want)
                        except (BrokenExecutor, OSError, ValueError):
                            # Workers start on first submit: one that cannot start
                            # leaves this share and the rest to the in-process path.
                            pending.extendleft(reversed(todo))
                            self.workers = 1
                            break
                        inflight[fut] = todo
                if inflight:
                    must_wait = len(inflight) >= max_inflight or self.walk_done
                    timeout = max(0.0, self.batch_interval - (time.monotonic() - last))
                    done, _ = wait(
                        list(inflight),
                        timeout=timeout if must_wait else 0,
                        return_when=FIRST_COMPLETED,
                    )
                    for fut in done:
                        todo = inflight.pop(fut)
                        try:
                            records = fut.result()
                        except BrokenExecutor:
                            # A worker died (killed, out of memory?): the pool is
                            # unusable, so finish its share and the rest in-process.
                            records = examine_chunk(todo, self.want)
                            self.workers = 1
                        self.results(records)
                        # Let a waiting event loop (the TUI) take the GIL between
                        # chunks instead of after a whole switch interval.
                        self.yield_gil()
                if pool is not None and self.workers == 1 and not inflight:
                    pool.kill()
                    pool = None

                finished = self.walk_done and not pending and not inflight
                if finished:
                    break
                if self.due(last):
                    last = time.monotonic()
                    yield self.take_batch()
        finally:
            if pool is not None:
                if self.cancel.is_set() or inflight:
                    pool.kill()
                else:
                    pool.close()
            walker.close()

        cancelled = self.cancel.is_set()
        if self.new_files or self.new_chunks or self.new_problems or self.touched:
            yield self.take_batch()
        sessions = self.collector.finish(self.cancel.is_set)
        if self.cache is not None:
            self.remember(sessions, cancelled or self.cancel.is_set())
            self.cache.close()
        yield ScanSummary(
            sessions=sessions,
            problems=list(self.collector.problems),
            progress=self.progress(),
            cancelled=cancelled,
            roots=list(self.paths),
        )


def scan(
    paths: Iterable[str | os.PathLike[str]],
    *,
    workers: int | None = None,
    use_cache: bool = True,
    cache_path: Path | None = None,
    routing_patterns: Sequence[PatternLike] = (),
    cancel: threading.Event | None = None,
    batch_interval: float = BATCH_INTERVAL,
    chunk: int = CHUNK,
    inline_limit: int = INLINE_LIMIT,
) -> Generator[ScanEvent, None, None]:
    """Scan files and folders; yield ``ScanBatch`` events, then one ``ScanSummary``.

    ``routing_patterns`` are the caller's (the config's ``Defaults.routing_patterns``
    for the CLI and the TUI; the scan never reads the config file): none by default.
    ``workers`` defaults to the CPUs available; the cache lives in ``config.cache_dir()``.
    Setting ``cancel`` (or closing the generator) stops the scan promptly, kills the
    worker processes and ends with a summary marked ``cancelled``.
    """
    roots = [Path(os.path.abspath(os.fspath(p))) for p in paths]
    patterns = list(routing_patterns)
    bad = invalid_patterns(patterns)
    patterns = [p for p in patterns if not invalid_patterns([p])]
    want, unreadable = wanted_tags(patterns)
    bad += unreadable
    cache = ScanCache(cache_path or default_path(), signature(want)) if use_cache else None
    scanner = _Scanner(
        roots,
        workers=workers or default_workers(),
        cache=cache,
        patterns=patterns,
        want=want,
        cancel=cancel or threading.Event(),
        batch_interval=batch_interval,
        chunk=chunk,
        inline_limit=inline_limit,
    )
    for message in bad:
        scanner.problem(Problem(path=_config_location(), kind=ProblemKind.CONFIG, detail=message))
    try:
        yield from scanner.run()
    finally:
        if cache is not None:
            cache.close()


def _split_roots(paths: Sequence[Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Roots on disk, and roots inside an archive as (archive file, member prefix)."""
    disk: list[Path] = []
    inside: list[tuple[str, str]] = []
    for p in paths:
        text = str(p)
        if archives.SEP in text and not os.path.exists(text):
            parts = archives.split(text.rstrip("/"))
            if parts is not None:
                inside.append((parts[0], archives.SEP.join(parts[1]).rstrip("/")))
                continue
            if text.endswith(archives.SEP) and archive_kind(text[:-1]) is not None:
                inside.append((text[:-1], ""))
                continue
        disk.append(p)
    return disk, inside


# XNAT's session layout, as its own download writes it (xnat-api-2.md §C.4):
# {session}/scans/{scan}/resources/{RESOURCE}/files/...
_XNAT_RESOURCE = re.compile(r"^(.*?/scans/[^/!]+/resources/([^/!]+))/files/")


def xnat_resource(path: str) -> tuple[str, str] | None:
    """(resource folder, name) of a file in a non-DICOM resource (NIFTI, SNAPSHOTS,
    ECAT...) of XNAT's layout; None for anything else (DICOM resources included)."""
    if "/resources/" not in path:
        return None
    m = _XNAT_RESOURCE.match(path)
    if m is None or m.group(2).upper() == "DICOM":
        return None
    return m.group(1), m.group(2)


def _under(path: str, start: str) -> bool:
    """``path`` is ``start`` or inside it (a folder or an archive inside the archive)."""
    return (
        not start
        or path == start
        or path.startswith(start + "/")
        or path.startswith(start + archives.SEP)
    )


def _junk_folder(path: str) -> tuple[str, str] | None:
    """A member under a folder operating systems leave behind (``__MACOSX/``): the
    folder's path and why it is skipped."""
    head, _sep, member = path.rpartition(archives.SEP)
    parts = member.split("/")
    for i, part in enumerate(parts[:-1]):
        if part in SKIP_DIRS:
            return archives.join(head, "/".join(parts[: i + 1])), f"{SKIP_DIRS[part]}: skipped"
    return None


def _config_location() -> str:
    from xnat_tui.config import config_path

    return str(config_path())


def scan_all(paths: Iterable[str | os.PathLike[str]], **kwargs: Any) -> ScanSummary:
    """Run a scan to the end and return its summary (for scripts and tests)."""
    summary: ScanSummary | None = None
    for event in scan(paths, **kwargs):
        if isinstance(event, ScanSummary):
            summary = event
    assert summary is not None
    return summary


async def scan_async(
    paths: Iterable[str | os.PathLike[str]], **kwargs: Any
) -> AsyncIterator[ScanEvent]:
    """``scan()`` for an event loop: each step runs in a thread, the loop stays free.

    The scan only advances while the consumer asks for the next event, so the live
    Session objects in a batch may be read safely until the next ``__anext__``.
    Breaking out of the loop or cancelling the task stops the scan and its workers.
    """
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from xnat_tui.priority import lower_this_thread

    cancel = threading.Event()
    gen = scan(paths, cancel=cancel, **kwargs)
    loop = asyncio.get_running_loop()
    # One thread of its own, at lower CPU priority than the loop it reports to.
    thread = ThreadPoolExecutor(1, thread_name_prefix="dicom-scan", initializer=lower_this_thread)
    step: asyncio.Future[ScanEvent | None] | None = None
    try:
        while True:
            step = loop.run_in_executor(thread, next, gen, None)
            event = await step
            step = None
            if event is None:
                return
            yield event
    finally:
        cancel.set()
        if step is not None:
            # The thread is still inside the generator; let it see the cancel flag.
            with contextlib.suppress(BaseException):
                await asyncio.shield(step)
        # If the step is somehow still running (cancelled twice), closing would fail
        # with "generator already executing"; the cancel flag has stopped the workers.
        with contextlib.suppress(ValueError):
            await loop.run_in_executor(thread, gen.close)
        thread.shutdown(wait=False)


class ScanThread:
    """Run a scan in a background thread, handing each event to ``on_event``.

    ``on_event`` runs in the scan thread while the scan waits for it to return, so a
    UI can pass it to its own thread synchronously (Textual's ``call_from_thread``)
    and read the live sessions safely.
    """

    def __init__(
        self,
        paths: Iterable[str | os.PathLike[str]],
        on_event: Callable[[ScanEvent], None],
        **kwargs: Any,
    ) -> None:
        self.cancel_event = threading.Event()
        self.summary: ScanSummary | None = None
        self.error: BaseException | None = None
        self._paths = list(paths)
        self._on_event = on_event
        self._kwargs = kwargs
        self._thread = threading.Thread(target=self._run, name="dicom-scan", daemon=True)

    def start(self) -> ScanThread:
        self._thread.start()
        return self

    def _run(self) -> None:
        from xnat_tui.priority import lower_this_thread

        lower_this_thread()
        try:
            for event in scan(self._paths, cancel=self.cancel_event, **self._kwargs):
                if isinstance(event, ScanSummary):
                    self.summary = event
                self._on_event(event)
        except BaseException as exc:  # noqa: BLE001 - reported to the owner, not lost
            self.error = exc

    def cancel(self) -> None:
        self.cancel_event.set()

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()
