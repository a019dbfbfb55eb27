"""Rescan cache: what each file's header said, keyed by (path, size, mtime).

One SQLite row per folder holds the records of all its files (marshal + zlib), so a
rescan costs one indexed read per folder instead of one per file, and a folder whose
files were all unchanged is answered without opening a single file. The cache is an
optimisation only: any error disables it for the rest of the scan, and deleting the
file at any time is safe.
"""

from __future__ import annotations

import contextlib
import hashlib
import marshal
import os
import sqlite3
import time
import zlib
from collections.abc import Mapping
from pathlib import Path

from xnat_tui.dicom.model import ProblemKind

# Bump when the meaning of cached records changes (new checks, parser fixes).
PARSER_VERSION = 4
CACHE_FILE = "scan-cache.sqlite3"
# Files modified this recently may still be being written; don't trust their mtime.
RACY_SECONDS = 2.0
PRUNE_DAYS = 90

# name -> (size, mtime_ns, kind, detail, context index, SOPInstanceUID, InstanceNumber)
Entry = tuple[int, int, str, str, int, str, str]


class DirRecords:
    """What one folder's files said: shared contexts plus one entry per file."""

    __slots__ = ("contexts", "entries", "_keys")

    def __init__(
        self,
        contexts: list[dict[str, str]] | None = None,
        entries: dict[str, Entry] | None = None,
    ) -> None:
        self.contexts: list[dict[str, str]] = contexts if contexts is not None else []
        self.entries: dict[str, Entry] = entries if entries is not None else {}
        self._keys: dict[tuple[tuple[str, str], ...], int] | None = None

    def context_index(self, ctx: dict[str, str]) -> int:
        if self._keys is None:
            self._keys = {tuple(c.items()): i for i, c in enumerate(self.contexts)}
        key = tuple(ctx.items())
        i = self._keys.get(key)
        if i is None:
            i = self._keys[key] = len(self.contexts)
            self.contexts.append(ctx)
        return i


_TRANSIENT = {ProblemKind.UNREADABLE}


def signature(tags: Mapping[int, tuple[str, str]]) -> str:
    """Cached records are only valid for the same parser version and tag set."""
    text = f"{PARSER_VERSION}:" + ",".join(f"{t:08x}" for t in sorted(tags))
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def default_path() -> Path:
    from xnat_tui.config import cache_dir

    return cache_dir() / CACHE_FILE


class ScanCache:
    def __init__(self, path: Path, sig: str) -> None:
        self.path = path
        self.sig = sig
        self._db: sqlite3.Connection | None = None
        self._broken = False
        self._pending: dict[str, bytes] = {}
        self._last_flush = time.monotonic()
        self._racy_before = time.time_ns() - int(RACY_SECONDS * 1e9)

    def _conn(self) -> sqlite3.Connection | None:
        if self._broken:
            return None
        if self._db is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # The scan thread may change between steps (asyncio.to_thread); access
                # is still serial, so sharing the connection is safe.
                db = sqlite3.connect(self.path, timeout=2.0, check_same_thread=False)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                # Paths are stored as bytes: file names need not be valid UTF-8.
                db.execute(
                    "CREATE TABLE IF NOT EXISTS folders ("
                    "path BLOB PRIMARY KEY, sig TEXT NOT NULL, data BLOB NOT NULL, "
                    "used REAL NOT NULL)"
                )
                self._db = db
            except (sqlite3.Error, OSError):
                self._broken = True
                return None
        return self._db

    def lookup(self, folder: str) -> DirRecords:
        db = self._conn()
        if db is None:
            return DirRecords()
        try:
            row = db.execute(
                "SELECT sig, data FROM folders WHERE path = ?", (os.fsencode(folder),)
            ).fetchone()
        except sqlite3.Error:
            self._broken = True
            return DirRecords()
        if row is None or row[0] != self.sig:
            return DirRecords()
        try:
            contexts, entries = marshal.loads(zlib.decompress(row[1]))
        except (ValueError, EOFError, TypeError, zlib.error):
            return DirRecords()
        return DirRecords(contexts, entries)

    def store(self, folder: str, records: DirRecords, *, complete: bool) -> None:
        """Remember a folder's records; ``complete=False`` merges with what is known."""
        if self._broken:
            return
        entries = {
            name: e
            for name, e in records.entries.items()
            if e[2] not in _TRANSIENT and e[1] < self._racy_before
        }
        contexts = records.contexts
        if not complete:
            old = self.lookup(folder)
            for name, e in entries.items():
                ctx = e[4]
                if ctx >= 0:
                    ctx = old.context_index(contexts[ctx])
                old.entries[name] = (*e[:4], ctx, e[5], e[6])
            contexts, entries = old.contexts, old.entries
        blob = marshal.dumps((contexts, entries))
        self._pending[folder] = zlib.compress(blob, 1)
        if len(self._pending) >= 256 or time.monotonic() - self._last_flush > 2.0:
            self.flush()

    def flush(self) -> None:
        db = self._conn()
        if db is None or not self._pending:
            self._pending.clear()
            return
        now = time.time()
        try:
            with db:
                db.executemany(
                    "INSERT OR REPLACE INTO folders (path, sig, data, used) VALUES (?, ?, ?, ?)",
                    [(os.fsencode(p), self.sig, blob, now) for p, blob in self._pending.items()],
                )
        except sqlite3.Error:
            self._broken = True
        self._pending.clear()
        self._last_flush = time.monotonic()

    def close(self) -> None:
        self.flush()
        if self._db is not None:
            # Folders not rewritten for a long time are dropped (re-read once if
            # they are ever scanned again), so the cache cannot grow without bound.
            with contextlib.suppress(sqlite3.Error), self._db:
                self._db.execute(
                    "DELETE FROM folders WHERE used < ?", (time.time() - PRUNE_DAYS * 86400,)
                )
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None


def clear(path: Path | None = None) -> None:
    """Forget everything (``xnat-tui scan --no-cache`` does not need this; tests do)."""
    target = path or default_path()
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(str(target) + suffix).unlink()
