"""Rescan cache: what each file's header said, keyed by (path, size, mtime).

One SQLite row per folder holds the records of all its files (marshal), and a
scan reads the rows of a whole tree with one query, so a rescan costs no per-file
database work. Each row keeps the folder's (name, size, mtime_ns) list in listing
order ("stamps"): when a fresh listing equals it (one list comparison in C), the
whole folder is unchanged and its records are used without looking at single files.
Otherwise each file is matched by name, size and mtime, and only misses are read.
The cache is an optimisation only: any error disables it for the rest of the scan,
and deleting the file at any time is safe.
"""

from __future__ import annotations

import binascii
import contextlib
import marshal
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from xnat_tui.dicom.model import ProblemKind
from xnat_tui.private import create_private_file, open_private, private_dir, private_file

# sqlite3 (and the datetime it imports) is loaded when the database is first opened:
# a rescan answered by the tree memo never opens it, and the CLI starts faster.
if TYPE_CHECKING:
    import sqlite3

# Bump when the meaning of cached records changes (new checks, parser fixes).
PARSER_VERSION = 6
CACHE_FILE = "scan-cache.sqlite3"
# Files modified this recently may still be being written; don't trust their mtime.
RACY_SECONDS = 2.0
PRUNE_DAYS = 90
# Bytes of tree memos kept at most (about 140 bytes a file: ~1.9 million files).
MEMO_BUDGET = 256 * 1024 * 1024

# name -> (size, mtime_ns, kind, detail, context index, SOPInstanceUID, InstanceNumber)
Entry = tuple[int, int, str, str, int, str, str]
Stamp = tuple[str, int, int]  # (name, size, mtime_ns), as the walk lists a file
Data = tuple[str, str, int, str, str]  # (kind, detail, context index, SOP UID, InstanceNumber)
# Folders read ahead by one query; beyond this, folders are looked up one by one
# (bounds the memory of the read-ahead on trees of millions of files).
PREFETCH_LIMIT = 20_000


class DirRecords:
    """What one folder's files said: shared contexts plus one entry per file.

    Stored as parallel lists: ``stamps`` (name, size, mtime_ns) and what each file
    said. ``exact`` means the stamps are the folder's complete listing in listing
    order, so an equal listing proves that nothing in the folder changed. The common
    folder -- every file a usable DICOM instance of one context -- is stored as
    columns (``uniform`` context, ``sops``, integer ``insts``), which loads without a
    tuple per file; any other folder as ``data`` tuples. ``data`` and ``entries``
    (by name) are built on demand.
    """

    __slots__ = (
        "contexts",
        "stamps",
        "exact",
        "uniform",
        "sops",
        "insts",
        "_data",
        "_entries",
        "_keys",
    )

    def __init__(
        self,
        contexts: list[dict[str, str]] | None = None,
        entries: dict[str, Entry] | None = None,
        *,
        stamps: list[Stamp] | None = None,
        data: list[Data] | None = None,
        exact: bool = False,
        uniform: int = -1,
        sops: list[str] | None = None,
        insts: list[int] | None = None,
    ) -> None:
        self.contexts: list[dict[str, str]] = contexts if contexts is not None else []
        self.stamps: list[Stamp] = stamps if stamps is not None else []
        self.exact = exact
        self.uniform = uniform
        self.sops: list[str] = sops if sops is not None else []
        self.insts: list[int] = insts if insts is not None else []
        self._data = data if uniform < 0 else None
        if uniform < 0 and data is None:
            self._data = []
        self._entries = entries
        self._keys: dict[tuple[tuple[str, str], ...], int] | None = None

    @property
    def data(self) -> list[Data]:
        if self._data is None:
            ci = self.uniform
            self._data = [
                ("", "", ci, sop, str(inst))
                for sop, inst in zip(self.sops, self.insts, strict=True)
            ]
        return self._data

    @property
    def entries(self) -> dict[str, Entry]:
        if self._entries is None:
            self._entries = {
                st[0]: (st[1], st[2], *d) for st, d in zip(self.stamps, self.data, strict=True)
            }
        return self._entries

    def dump(self) -> bytes:
        data = self.data
        first = data[0][2] if data else -1
        insts: list[int] = []
        if first >= 0 and all(not d[0] and d[2] == first for d in data):
            try:
                insts = [int(d[4]) for d in data]
            except ValueError:
                first = -1
            else:
                # Only texts that survive the round trip ("7", not "007" or "+7").
                if any(str(n) != d[4] for n, d in zip(insts, data, strict=True)):
                    first = -1
        else:
            first = -1
        if first >= 0:
            return marshal.dumps(
                (self.contexts, self.stamps, self.exact, first, [d[3] for d in data], insts, None)
            )
        return marshal.dumps((self.contexts, self.stamps, self.exact, -1, None, None, data))

    @classmethod
    def load(cls, blob: bytes) -> DirRecords:
        contexts, stamps, exact, uniform, sops, insts, data = marshal.loads(blob)
        if len(stamps) != len(data if uniform < 0 else sops):
            raise ValueError("damaged cache row")
        return cls(
            contexts,
            stamps=stamps,
            exact=bool(exact),
            uniform=uniform,
            sops=sops,
            insts=insts,
            data=data,
        )

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
    raw = text.encode()
    # Two CRCs instead of a cryptographic hash: hashlib costs milliseconds to import,
    # and this only has to tell tag sets apart, not resist an attacker.
    return f"{binascii.crc32(raw):08x}{binascii.crc32(raw[::-1]):08x}"


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
        # Rows read ahead for the folders under the scanned roots: path -> (sig, blob).
        self._ahead: dict[bytes, tuple[str, bytes]] = {}
        self._last_flush = time.monotonic()
        self._wrote = False  # prune old rows only after a scan that wrote some
        self._racy_before = time.time_ns() - int(RACY_SECONDS * 1e9)

    @property
    def racy_before(self) -> int:
        """mtime_ns from which a file may still be being written (not cached)."""
        return self._racy_before

    def _conn(self) -> sqlite3.Connection | None:
        import sqlite3

        if self._broken:
            return None
        if self._db is None:
            try:
                # Private (0700/0600): the rows hold patient names and paths. SQLite
                # creates -wal and -shm with the database's mode.
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                create_private_file(self.path)
                for suffix in ("-wal", "-shm"):
                    private_file(Path(f"{self.path}{suffix}"))
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

    def keeps(self, kind: str, mtime_ns: int) -> bool:
        """A record of this kind for a file of this mtime would be stored (not transient,
        not modified too recently to be trusted)."""
        return kind not in _TRANSIENT and mtime_ns < self._racy_before

    def prefetch(self, roots: list[str]) -> None:
        """Read the rows of every folder under ``roots`` with one query per root."""
        import sqlite3

        db = self._conn()
        if db is None:
            return
        try:
            for root in roots:
                base = os.fsencode(root).rstrip(b"/")
                # Byte range of "base/...": "/" + 1 == "0".
                rows = db.execute(
                    "SELECT path, sig, data FROM folders WHERE path = ? "
                    "OR (path >= ? AND path < ?) LIMIT ?",
                    (base, base + b"/", base + b"0", PREFETCH_LIMIT - len(self._ahead)),
                ).fetchall()
                for path, sig, blob in rows:
                    self._ahead[path] = (sig, blob)
                if len(self._ahead) >= PREFETCH_LIMIT:
                    break
        except sqlite3.Error:
            self._broken = True
            self._ahead.clear()

    def lookup(self, folder: str) -> DirRecords:
        import sqlite3

        key = os.fsencode(folder)
        row = self._ahead.pop(key, None)
        if row is None:
            db = self._conn()
            if db is None:
                return DirRecords()
            try:
                row = db.execute("SELECT sig, data FROM folders WHERE path = ?", (key,)).fetchone()
            except sqlite3.Error:
                self._broken = True
                return DirRecords()
        if row is None or row[0] != self.sig:
            return DirRecords()
        try:
            return DirRecords.load(row[1])
        except (ValueError, EOFError, TypeError):
            return DirRecords()

    def store(
        self,
        folder: str,
        records: DirRecords,
        *,
        complete: bool,
        listing: list[Stamp] | None = None,
    ) -> None:
        """Remember a folder's records; ``complete=False`` merges with what is known.

        ``listing`` is the folder's complete listing when it came in one part: if every
        file of it is kept, the row is marked exact (see the module docstring).
        """
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
            merged = old.entries
            for name, e in entries.items():
                ctx = e[4]
                if ctx >= 0:
                    ctx = old.context_index(contexts[ctx])
                merged[name] = (*e[:4], ctx, e[5], e[6])
            contexts, entries = old.contexts, merged
            listing = None
        exact = (
            listing is not None
            and len(listing) == len(entries)
            and all(
                (x := entries.get(name)) is not None and x[0] == size and x[1] == mtime
                for name, size, mtime in listing
            )
        )
        if exact:
            assert listing is not None
            stamps = listing
        else:
            stamps = [(name, e[0], e[1]) for name, e in entries.items()]
        data = [entries[st[0]][2:] for st in stamps]
        # Not compressed: decompressing cost as much as the rest of a cached folder.
        self._pending[folder] = DirRecords(contexts, stamps=stamps, data=data, exact=exact).dump()
        if len(self._pending) >= 256 or time.monotonic() - self._last_flush > 2.0:
            self.flush()

    # Tree memos (memo.py) are files beside the database: a memo is read whole on
    # every rescan, and a 3.5 MB blob took SQLite 2-8 ms through its overflow pages,
    # against 0.2-0.8 ms for one read() of a file.
    def _tree_file(self, key: bytes) -> Path:
        name = f"{binascii.crc32(key):08x}{binascii.crc32(key[::-1]):08x}.memo"
        return self.path.with_name(self.path.name + ".trees") / name

    def load_tree(self, key: bytes) -> memoryview | None:
        """The memo of the last scan of these roots with these settings, if any.

        A memo file is: key length (4 bytes), key, CRC-32 of the memo (4 bytes),
        memo. The key tells two sets of roots sharing a file name apart; the CRC
        turns a damaged file into no memo instead of a wrong result (~1 ms for
        30,000 files).
        """
        path = self._tree_file(key)
        try:
            with open(path, "rb") as f:
                data = f.read()
                mtime = os.fstat(f.fileno()).st_mtime
        except OSError:
            return None
        n = int.from_bytes(data[:4], "little")
        if data[4 : 4 + n] != key or len(data) < 8 + n:
            return None
        blob = memoryview(data)[8 + n :]  # not copied: marshal reads any buffer
        if binascii.crc32(blob) != int.from_bytes(data[4 + n : 8 + n], "little"):
            return None
        if mtime < time.time() - 86400:
            # Used again: keep it from being pruned (at most one touch a day).
            with contextlib.suppress(OSError):
                os.utime(path)
        return blob

    def store_tree(self, key: bytes, blob: bytes | None) -> None:
        """Keep a memo for these roots (None forgets the old one: it is stale)."""
        if self._broken:
            return
        path = self._tree_file(key)
        self._wrote = True
        try:
            if blob is None:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                return
            private_dir(path.parent)
            # Unique per writer (two scans of the same roots may end together).
            tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            try:
                with os.fdopen(open_private(tmp), "wb") as f:
                    f.write(len(key).to_bytes(4, "little") + key)
                    f.write(binascii.crc32(blob).to_bytes(4, "little"))
                    f.write(blob)
                os.replace(tmp, path)  # readers see the old memo or the new, whole
            finally:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
        except OSError:
            pass  # a memo is an optimisation: the next scan takes the full path

    def _prune_trees(self, before: float) -> None:
        """Drop memos unused since ``before``, a dead writer's temporary files, and
        the least recently used memos beyond MEMO_BUDGET bytes: each set of scanned
        folders has its own memo, and ~/.cache often sits under a small quota."""
        folder = self.path.with_name(self.path.name + ".trees")
        kept: list[tuple[float, int, str]] = []
        stale_tmp = time.time() - 3600
        with contextlib.suppress(OSError), os.scandir(folder) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    st = entry.stat()
                    temporary = entry.name.endswith(".tmp")
                    if st.st_mtime < (stale_tmp if temporary else before):
                        os.unlink(entry.path)
                    elif not temporary:
                        kept.append((st.st_mtime, st.st_size, entry.path))
        total = sum(size for _, size, _ in kept)
        for _, size, path in sorted(kept)[:-1]:  # oldest first; the newest always stays
            if total <= MEMO_BUDGET:
                break
            with contextlib.suppress(OSError):
                os.unlink(path)
                total -= size

    def flush(self) -> None:
        if not self._pending:
            return  # without opening the database: a memo rescan never needs it
        import sqlite3

        db = self._conn()
        if db is None:
            self._pending.clear()
            return
        now = time.time()
        self._wrote = True
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
        # Folders and memos not rewritten for a long time are dropped (read again if
        # they are ever scanned again), so the cache cannot grow without bound.
        prune, self._wrote = self._wrote, False
        old = time.time() - PRUNE_DAYS * 86400
        if prune:
            self._prune_trees(old)
        if self._db is None:
            return  # never opened: a rescan answered by the memo
        import sqlite3

        if prune:
            with contextlib.suppress(sqlite3.Error), self._db:
                self._db.execute("DELETE FROM folders WHERE used < ?", (old,))
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
        self._db = None


def clear(path: Path | None = None) -> None:
    """Forget everything (``xnat-tui scan --no-cache`` does not need this; tests do)."""
    target = path or default_path()
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(str(target) + suffix).unlink()
    trees = Path(str(target) + ".trees")
    if trees.is_dir():
        import shutil

        shutil.rmtree(trees, ignore_errors=True)
