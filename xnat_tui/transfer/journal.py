"""Crash-safe transfer journal (SQLite in WAL mode under the XDG state dir).

Every step is written *before* it starts and *after* it ends, each write its own
transaction, so a ``kill -9`` at any instant leaves a journal that says exactly which
series were acknowledged by the server and whether a commit may have happened.
The CLI and the TUI share the file; a lease per job (owner = host:pid:token,
renewed by the running engine) stops two processes from running the same job, and a
``request`` column lets one process ask the owner of a job to pause or cancel it.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xnat_tui.private import FILE_MODE, private_dir, private_file
from xnat_tui.transfer.kinds import JobKind
from xnat_tui.transfer.types import (
    AnonOptions,
    Compression,
    Destination,
    JobState,
    Overwrite,
    SeriesState,
    SourceFile,
    SourceSeries,
)

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS jobs(
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    server TEXT NOT NULL,
    username TEXT NOT NULL,
    project TEXT NOT NULL,
    subject TEXT NOT NULL,
    label TEXT NOT NULL,
    study_uid TEXT NOT NULL,
    destination TEXT NOT NULL,
    overwrite TEXT NOT NULL,
    anonymization TEXT NOT NULL DEFAULT 'none',
    compression TEXT NOT NULL DEFAULT 'stored',
    verify_digests INTEGER NOT NULL DEFAULT 1,
    new_subject INTEGER NOT NULL DEFAULT 0,
    verdict TEXT NOT NULL DEFAULT 'new',
    source_root TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    prearchive_uri TEXT NOT NULL DEFAULT '',
    commit_phase TEXT NOT NULL DEFAULT '',
    result_uri TEXT NOT NULL DEFAULT '',
    archived INTEGER,
    request TEXT NOT NULL DEFAULT '',
    owner TEXT NOT NULL DEFAULT '',
    lease_until REAL NOT NULL DEFAULT 0,
    receipt TEXT NOT NULL DEFAULT '',
    anon_params TEXT NOT NULL DEFAULT '',
    verified_by TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL DEFAULT 'upload',
    params TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS jobs_target ON jobs(server, project, study_uid);
CREATE TABLE IF NOT EXISTS series(
    job_id TEXT NOT NULL REFERENCES jobs(id),
    uid TEXT NOT NULL,
    position INTEGER NOT NULL,
    number INTEGER,
    description TEXT NOT NULL DEFAULT '',
    modality TEXT NOT NULL DEFAULT '',
    file_count INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT '',
    uri TEXT NOT NULL DEFAULT '',
    manifest TEXT NOT NULL DEFAULT '',
    PRIMARY KEY(job_id, uid)
);
CREATE TABLE IF NOT EXISTS files(
    job_id TEXT NOT NULL,
    series_uid TEXT NOT NULL,
    idx INTEGER NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime REAL NOT NULL,
    sop TEXT NOT NULL DEFAULT '',
    done INTEGER NOT NULL DEFAULT 0,
    digest TEXT NOT NULL DEFAULT '',
    PRIMARY KEY(job_id, series_uid, idx)
);
CREATE TABLE IF NOT EXISTS steps(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    series_uid TEXT NOT NULL DEFAULT '',
    step TEXT NOT NULL,
    phase TEXT NOT NULL,
    ts REAL NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS steps_job ON steps(job_id);
"""


def default_path() -> Path:
    from xnat_tui.config import state_dir

    return state_dir() / "journal.sqlite3"


@dataclass(frozen=True)
class ManifestEntry:
    """What was actually sent for one file: zip entry name, bytes, CRC32 and MD5."""

    name: str
    path: str
    size: int
    crc32: int
    md5: str

    def to_list(self) -> list[Any]:
        return [self.name, self.path, self.size, self.crc32, self.md5]

    @classmethod
    def from_list(cls, row: Sequence[Any]) -> ManifestEntry:
        return cls(str(row[0]), str(row[1]), int(row[2]), int(row[3]), str(row[4]))


@dataclass
class SeriesRecord:
    job_id: str
    uid: str
    position: int
    number: int | None
    description: str
    modality: str
    file_count: int
    bytes: int
    state: SeriesState
    attempts: int
    message: str
    uri: str
    manifest: list[ManifestEntry] = field(default_factory=list)


@dataclass
class JobRecord:
    id: str
    created: float
    updated: float
    server: str
    username: str
    project: str
    subject: str
    label: str
    study_uid: str
    destination: Destination
    overwrite: Overwrite
    anonymization: str
    compression: Compression
    verify_digests: bool
    new_subject: bool
    verdict: str
    source_root: str
    state: JobState
    message: str
    prearchive_uri: str
    commit_phase: str
    result_uri: str
    archived: bool | None
    request: str
    owner: str
    lease_until: float
    receipt: str
    # Basic Profile options and the user's script variables, journalled with the job so
    # a resumed or retried job anonymizes to identical bytes.
    anon_options: AnonOptions = AnonOptions()
    anon_variables: dict[str, str] = field(default_factory=dict)
    # How the receipt verified the job: md5 | size | count ('' before verification).
    verified_by: str = ""
    kind: JobKind = JobKind.UPLOAD
    # Workflow-specific settings (a DICOM destination, a download folder, a copy's
    # source), JSON in the journal.
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def display(self) -> str:
        return f"{self.project}/{self.subject}/{self.label}"


@dataclass
class StepRecord:
    id: int
    job_id: str
    series_uid: str
    step: str
    phase: str
    ts: float
    detail: str


@dataclass
class NewJob:
    """Everything the journal stores for a job before anything is sent."""

    server: str
    username: str
    project: str
    subject: str
    label: str
    study_uid: str
    destination: Destination
    overwrite: Overwrite
    series: list[SourceSeries]
    anonymization: str = "none"
    compression: Compression = Compression.STORED
    verify_digests: bool = True
    new_subject: bool = False
    verdict: str = "new"
    source_root: str = ""
    anon_options: AnonOptions = AnonOptions()
    anon_variables: dict[str, str] = field(default_factory=dict)
    kind: JobKind = JobKind.UPLOAD
    params: dict[str, Any] = field(default_factory=dict)


class JournalError(Exception):
    pass


_NETWORK_FS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "lustre", "gpfs", "ceph", "fuse.sshfs")


def on_network_fs(path: Path) -> bool:
    """True when ``path`` lives on a network file system (per /proc/mounts)."""
    try:
        with open("/proc/mounts", encoding="utf-8", errors="replace") as fh:
            mounts = [line.split()[1:3] for line in fh if len(line.split()) >= 3]
    except OSError:
        return False
    target = str(path.resolve())
    best, kind = "", ""
    for mount_point, fs_type in mounts:
        mp = mount_point.replace("\\040", " ")
        inside = target == mp or target.startswith(mp.rstrip("/") + "/")
        if inside and len(mp) > len(best):
            best, kind = mp, fs_type
    return kind in _NETWORK_FS


def _create_private(path: Path) -> None:
    """Create the database file 0600 before SQLite opens it (never briefly 0644)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    except OSError:
        return  # SQLite reports what is wrong with the path, in its words
    os.close(fd)


def make_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def owner_alive(owner: str) -> bool:
    """False when the owner ran on this host and its process is gone (kill -9, crash)."""
    try:
        host, pid_text, _ = owner.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != socket.gethostname():
        return True  # cannot tell; rely on the lease expiry
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _not_zombie(pid)


def _not_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class Journal:
    """The SQLite journal. One instance per process; use from one thread (the loop)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_path()
        # It holds labels, paths and study UIDs: readable by its user only. The state
        # folder is ours to tighten; a folder the user chose for --journal is created
        # private when missing but otherwise left as it is.
        if path is None or not self.path.parent.exists():
            private_dir(self.path.parent)
        _create_private(self.path)
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self._depth = 0  # transactions open, nested in exclusive()
        self._db.row_factory = sqlite3.Row
        # WAL needs shared memory between the processes, which network file systems (a
        # cluster's NFS home) cannot give; there the rollback journal is the safe choice.
        self.mode = "DELETE" if on_network_fs(self.path.parent) else "WAL"
        self._db.execute(f"PRAGMA journal_mode={self.mode}")
        # NORMAL in WAL mode is durable against process crashes (kill -9); only an OS
        # crash may lose the last transactions, never corrupt the file.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        with self._tx():
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    self._db.execute(stmt)
            columns = {r[1] for r in self._db.execute("PRAGMA table_info(jobs)")}
            # Columns a journal written by an older version lacks.
            for column, default in (
                ("anon_params", ""),
                ("verified_by", ""),
                ("kind", str(JobKind.UPLOAD)),
                ("params", ""),
            ):
                if column not in columns:
                    self._db.execute(
                        f"ALTER TABLE jobs ADD COLUMN {column} TEXT NOT NULL DEFAULT '{default}'"
                    )
            file_columns = {r[1] for r in self._db.execute("PRAGMA table_info(files)")}
            for column, decl in (
                ("done", "INTEGER NOT NULL DEFAULT 0"),
                ("digest", "TEXT NOT NULL DEFAULT ''"),
            ):
                if column not in file_columns:
                    self._db.execute(f"ALTER TABLE files ADD COLUMN {column} {decl}")
            self._db.execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES('schema', ?)", (str(SCHEMA_VERSION),)
            )
        # SQLite gives its -wal/-shm/-journal files the database's mode, but ones left by
        # an older version (0644) are tightened here along with the database itself.
        for suffix in ("", "-wal", "-shm", "-journal"):
            private_file(self.path.with_name(self.path.name + suffix))

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        if self._depth:  # within exclusive(): part of its transaction
            self._depth += 1
            try:
                yield self._db
            finally:
                self._depth -= 1
            return
        self._db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        finally:
            self._depth = 0
        self._db.execute("COMMIT")

    def exclusive(self) -> AbstractContextManager[sqlite3.Connection]:
        """One write transaction for every journal call made inside it: a check of what
        other processes hold and the jobs it allows are one step to them (they wait for
        it), never a check they can slip a job of their own past."""
        return self._tx()

    # ----------------------------------------------------------------- creating
    def create_jobs(self, jobs: Sequence[NewJob]) -> list[str]:
        """Journal a whole batch in one transaction: after a crash it is all there or absent."""
        ids = [secrets.token_hex(4) for _ in jobs]
        with self._tx() as db:
            for jid, job in zip(ids, jobs, strict=True):
                self._insert_job(db, jid, job)
        return ids

    def _insert_job(self, db: sqlite3.Connection, jid: str, job: NewJob) -> None:
        now = time.time()
        db.execute(
            "INSERT INTO jobs(id, created, updated, server, username, project, subject,"
            " label, study_uid, destination, overwrite, anonymization, compression,"
            " verify_digests, new_subject, verdict, source_root, state, anon_params, kind,"
            " params) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                jid,
                now,
                now,
                job.server,
                job.username,
                job.project,
                job.subject,
                job.label,
                job.study_uid,
                str(job.destination),
                str(job.overwrite),
                job.anonymization,
                str(job.compression),
                int(job.verify_digests),
                int(job.new_subject),
                job.verdict,
                job.source_root,
                str(JobState.QUEUED),
                _anon_params(job.anonymization, job.anon_options, job.anon_variables),
                str(job.kind),
                json.dumps(job.params, sort_keys=True) if job.params else "",
            ),
        )
        for pos, s in enumerate(job.series):
            db.execute(
                "INSERT INTO series(job_id, uid, position, number, description, modality,"
                " file_count, bytes, state) VALUES(?,?,?,?,?,?,?,?,?)",
                (
                    jid,
                    s.series_instance_uid,
                    pos,
                    s.series_number,
                    s.description,
                    s.modality,
                    s.file_count,
                    s.size,
                    str(SeriesState.PENDING),
                ),
            )
            db.executemany(
                "INSERT INTO files(job_id, series_uid, idx, path, size, mtime, sop)"
                " VALUES(?,?,?,?,?,?,?)",
                (
                    (
                        jid,
                        s.series_instance_uid,
                        i,
                        f.path_str,
                        f.size,
                        f.mtime,
                        f.sop_instance_uid,
                    )
                    for i, f in enumerate(s.files)
                ),
            )
        self._step(db, jid, "", "plan", "end", f"{len(job.series)} series")

    # ----------------------------------------------------------------- reading
    def job(self, job_id: str) -> JobRecord:
        row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise JournalError(f"no transfer job {job_id!r}")
        return _job(row)

    def resolve(self, prefix: str) -> JobRecord:
        """A job by id or unique id prefix (what users type).

        Matched literally: the id itself, else the ids that begin with exactly these
        characters. No character is a wildcard (``%`` and ``_`` were, through LIKE), and
        an empty prefix names no job rather than all of them.
        """
        exact = self._db.execute("SELECT * FROM jobs WHERE id = ?", (prefix,)).fetchone()
        if exact is not None:
            return _job(exact)
        rows = (
            self._db.execute(
                "SELECT * FROM jobs WHERE substr(id, 1, ?) = ? ORDER BY created",
                (len(prefix), prefix),
            ).fetchall()
            if prefix
            else []
        )
        if not rows:
            raise JournalError(f"no transfer job {prefix!r}")
        if len(rows) > 1:
            raise JournalError(f"{prefix!r} matches {len(rows)} jobs; type more of the id")
        return _job(rows[0])

    def jobs(
        self,
        *,
        states: Iterable[JobState] | None = None,
        server: str | None = None,
        username: str | None = None,
        kinds: Iterable[JobKind] | None = None,
    ) -> list[JobRecord]:
        sql = "SELECT * FROM jobs WHERE 1=1"
        args: list[Any] = []
        if kinds is not None:
            kd = [str(k) for k in kinds]
            sql += f" AND kind IN ({','.join('?' * len(kd))})"
            args += kd
        if states is not None:
            st = [str(s) for s in states]
            sql += f" AND state IN ({','.join('?' * len(st))})"
            args += st
        if server is not None:
            sql += " AND server = ?"
            args.append(server)
        if username is not None:
            sql += " AND username = ?"
            args.append(username)
        sql += " ORDER BY created, id"
        return [_job(r) for r in self._db.execute(sql, args).fetchall()]

    def series(self, job_id: str) -> list[SeriesRecord]:
        rows = self._db.execute(
            "SELECT * FROM series WHERE job_id = ? ORDER BY position", (job_id,)
        ).fetchall()
        return [_series(r) for r in rows]

    def files(self, job_id: str, series_uid: str) -> list[SourceFile]:
        rows = self._db.execute(
            "SELECT path, size, mtime, sop FROM files WHERE job_id = ? AND series_uid = ?"
            " ORDER BY idx",
            (job_id, series_uid),
        ).fetchall()
        # The path as text: a Path is built only where one is used.
        return [SourceFile(r["path"], r["size"], r["mtime"], r["sop"]) for r in rows]

    def paths(self, job_id: str, *, done: bool = False) -> list[str]:
        """Where the job's files are (or go), as text; ``done``: only those it finished."""
        sql = "SELECT path FROM files WHERE job_id = ?" + (" AND done = 1" if done else "")
        return [r["path"] for r in self._db.execute(sql, (job_id,))]

    def steps(self, job_id: str) -> list[StepRecord]:
        rows = self._db.execute(
            "SELECT * FROM steps WHERE job_id = ? ORDER BY id", (job_id,)
        ).fetchall()
        return [StepRecord(**dict(r)) for r in rows]

    def same_target(self, server: str, project: str, study_uid: str) -> list[JobRecord]:
        """Jobs (any state but cancelled) that send this study to this project.

        Downloads name their source project but create nothing there: not counted.
        """
        rows = self._db.execute(
            "SELECT * FROM jobs WHERE server = ? AND project = ? AND study_uid = ?"
            " AND state != ? AND kind != ? ORDER BY created",
            (server, project, study_uid, str(JobState.CANCELLED), str(JobKind.DOWNLOAD)),
        ).fetchall()
        return [_job(r) for r in rows]

    # ------------------------------------------------------------ per-file progress
    # Workflows that acknowledge file by file (a C-STORE instance, a downloaded and
    # verified file, a copied file) record it here, so a resume redoes only the rest.
    def files_done(
        self, job_id: str, done: Iterable[tuple[str, int]], digests: Sequence[str] = ()
    ) -> None:
        """Mark (series_uid, idx) files done; ``digests`` (same order) records their MD5."""
        items = list(done)
        marks = [d for d in digests] + [""] * (len(items) - len(digests))
        with self._tx() as db:
            db.executemany(
                "UPDATE files SET done = 1, digest = CASE WHEN ? = '' THEN digest ELSE ? END"
                " WHERE job_id = ? AND series_uid = ? AND idx = ?",
                ((m, m, job_id, uid, idx) for (uid, idx), m in zip(items, marks, strict=True)),
            )
            db.execute("UPDATE jobs SET updated = ? WHERE id = ?", (time.time(), job_id))

    def file_rows(self, job_id: str) -> list[tuple[str, int, str, int]]:
        """(series_uid, idx, path, size) of every file of a job in one query, paths as
        text: for engines that need no ``SourceFile`` per file (10,000 files: ~10 ms
        where ``files`` per series builds a ``Path`` each, ~100 ms)."""
        rows = self._db.execute(
            "SELECT series_uid, idx, path, size FROM files WHERE job_id = ?"
            " ORDER BY series_uid, idx",
            (job_id,),
        ).fetchall()
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def done_files(self, job_id: str) -> dict[tuple[str, int], str]:
        """The files marked done, with the digest recorded for each ('' if none)."""
        rows = self._db.execute(
            "SELECT series_uid, idx, digest FROM files WHERE job_id = ? AND done = 1", (job_id,)
        ).fetchall()
        return {(r["series_uid"], r["idx"]): r["digest"] for r in rows}

    def files_reset(self, job_id: str) -> None:
        """Forget per-file progress (a retry from scratch)."""
        with self._tx() as db:
            db.execute("UPDATE files SET done = 0, digest = '' WHERE job_id = ?", (job_id,))

    # ----------------------------------------------------------------- writing
    def _step(
        self,
        db: sqlite3.Connection,
        job_id: str,
        series_uid: str,
        step: str,
        phase: str,
        detail: str,
    ) -> None:
        db.execute(
            "INSERT INTO steps(job_id, series_uid, step, phase, ts, detail) VALUES(?,?,?,?,?,?)",
            (job_id, series_uid, step, phase, time.time(), detail),
        )

    def log(
        self, job_id: str, step: str, phase: str, detail: str = "", series_uid: str = ""
    ) -> None:
        with self._tx() as db:
            self._step(db, job_id, series_uid, step, phase, detail)

    def set_state(self, job_id: str, state: JobState, message: str | None = None) -> None:
        with self._tx() as db:
            if message is None:
                db.execute(
                    "UPDATE jobs SET state = ?, updated = ? WHERE id = ?",
                    (str(state), time.time(), job_id),
                )
            else:
                db.execute(
                    "UPDATE jobs SET state = ?, message = ?, updated = ? WHERE id = ?",
                    (str(state), message, time.time(), job_id),
                )
            self._step(db, job_id, "", "state", str(state), message or "")

    def series_started(self, job_id: str, uid: str) -> int:
        """Mark a series as being sent (before the first byte); returns the attempt number."""
        with self._tx() as db:
            db.execute(
                "UPDATE series SET state = ?, attempts = attempts + 1, message = ''"
                " WHERE job_id = ? AND uid = ?",
                (str(SeriesState.SENDING), job_id, uid),
            )
            row = db.execute(
                "SELECT attempts FROM series WHERE job_id = ? AND uid = ?", (job_id, uid)
            ).fetchone()
            attempt = int(row[0]) if row else 0
            self._step(db, job_id, uid, "send", "begin", f"attempt {attempt}")
        return attempt

    def series_sent(
        self, job_id: str, uid: str, uri: str, manifest: Sequence[ManifestEntry]
    ) -> None:
        """The server acknowledged the series: record its URI and what was sent, at once."""
        state = SeriesState.SENT if uri else SeriesState.EMPTY
        with self._tx() as db:
            db.execute(
                "UPDATE series SET state = ?, uri = ?, manifest = ?, message = ''"
                " WHERE job_id = ? AND uid = ?",
                (str(state), uri, json.dumps([m.to_list() for m in manifest]), job_id, uid),
            )
            if uri:
                db.execute(
                    "UPDATE jobs SET prearchive_uri = ?, updated = ?"
                    " WHERE id = ? AND prearchive_uri = ''",
                    (uri, time.time(), job_id),
                )
            self._step(db, job_id, uid, "send", "end", uri or "nothing kept by the server")

    def series_interrupted(
        self, job_id: str, uid: str, message: str, *, failed: bool = False
    ) -> None:
        """A send did not complete: back to pending (re-sent whole later) or failed."""
        state = SeriesState.FAILED if failed else SeriesState.PENDING
        with self._tx() as db:
            db.execute(
                "UPDATE series SET state = ?, message = ? WHERE job_id = ? AND uid = ?",
                (str(state), message, job_id, uid),
            )
            self._step(db, job_id, uid, "send", "fail" if failed else "interrupted", message)

    def commit_started(self, job_id: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET commit_phase = 'started', updated = ? WHERE id = ?",
                (time.time(), job_id),
            )
            self._step(db, job_id, "", "commit", "begin", "")

    def commit_done(self, job_id: str, *, archived: bool, uri: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET commit_phase = 'done', archived = ?, result_uri = ?,"
                " updated = ? WHERE id = ?",
                (int(archived), uri, time.time(), job_id),
            )
            self._step(db, job_id, "", "commit", "end", uri)

    def commit_reset(self, job_id: str, detail: str) -> None:
        """The server says the commit did not happen: it may be sent again."""
        with self._tx() as db:
            db.execute("UPDATE jobs SET commit_phase = '' WHERE id = ?", (job_id,))
            self._step(db, job_id, "", "commit", "not-done", detail)

    def set_receipt(self, job_id: str, path: str, verified_by: str = "") -> None:
        """The receipt's path and how it verified (md5 | size | count)."""
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET receipt = ?, verified_by = ? WHERE id = ?",
                (path, verified_by, job_id),
            )

    def reset_for_retry(self, job_id: str) -> None:
        """Failed series go back to pending; the job is queued again."""
        with self._tx() as db:
            db.execute(
                "UPDATE series SET state = ?, message = '' WHERE job_id = ? AND state IN (?, ?)",
                (
                    str(SeriesState.PENDING),
                    job_id,
                    str(SeriesState.FAILED),
                    str(SeriesState.SENDING),
                ),
            )
            db.execute(
                "UPDATE jobs SET state = ?, message = '', request = '', updated = ? WHERE id = ?",
                (str(JobState.QUEUED), time.time(), job_id),
            )
            self._step(db, job_id, "", "retry", "end", "")

    def drop_missing_files(
        self, job_id: str, exists: Callable[[str], bool] = os.path.exists
    ) -> list[str]:
        """Forget files that no longer exist in series not yet acknowledged.

        For ``transfers retry --skip-missing``: the user accepts sending the session
        without them. Returns the paths dropped (each is logged as a step). ``exists``
        decides (``transfer.opener.exists`` knows archive members; the journal does not).
        """
        dropped: list[str] = []
        with self._tx() as db:
            pending = db.execute(
                "SELECT uid FROM series WHERE job_id = ? AND state NOT IN (?, ?)",
                (job_id, str(SeriesState.SENT), str(SeriesState.EMPTY)),
            ).fetchall()
            for (uid,) in pending:
                rows = db.execute(
                    "SELECT idx, path FROM files WHERE job_id = ? AND series_uid = ?",
                    (job_id, uid),
                ).fetchall()
                gone = [r for r in rows if not exists(r["path"])]
                for r in gone:
                    db.execute(
                        "DELETE FROM files WHERE job_id = ? AND series_uid = ? AND idx = ?",
                        (job_id, uid, r["idx"]),
                    )
                    self._step(db, job_id, uid, "skip-file", "end", r["path"])
                    dropped.append(r["path"])
                if gone:
                    db.execute(
                        "UPDATE series SET file_count = (SELECT COUNT(*) FROM files"
                        " WHERE job_id = ? AND series_uid = ?), bytes = (SELECT COALESCE("
                        "SUM(size), 0) FROM files WHERE job_id = ? AND series_uid = ?)"
                        " WHERE job_id = ? AND uid = ?",
                        (job_id, uid, job_id, uid, job_id, uid),
                    )
        return dropped

    # ------------------------------------------------------- leases / requests
    def acquire(self, job_id: str, owner: str, ttl: float) -> bool:
        """Take the job for ``owner`` unless another live process holds it."""
        now = time.time()
        with self._tx() as db:
            row = db.execute(
                "SELECT owner, lease_until FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
            if row is None:
                return False
            current, until = row["owner"], row["lease_until"]
            if current and current != owner and until > now and owner_alive(current):
                return False
            db.execute(
                "UPDATE jobs SET owner = ?, lease_until = ? WHERE id = ?",
                (owner, now + ttl, job_id),
            )
        return True

    def renew(self, owner: str, ttl: float) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET lease_until = ? WHERE owner = ?", (time.time() + ttl, owner)
            )

    def release(self, job_id: str, owner: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET owner = '', lease_until = 0 WHERE id = ? AND owner = ?",
                (job_id, owner),
            )

    def holder(self, job_id: str) -> str | None:
        """The live process holding the job, if any."""
        job = self.job(job_id)
        if job.owner and job.lease_until > time.time() and owner_alive(job.owner):
            return job.owner
        return None

    def request(self, job_id: str, action: str) -> None:
        """Ask whichever process runs the job to ``pause``/``cancel``/``resume`` it."""
        with self._tx() as db:
            db.execute("UPDATE jobs SET request = ? WHERE id = ?", (action, job_id))
            self._step(db, job_id, "", "request", action, "")

    def take_requests(self, owner: str) -> list[tuple[str, str]]:
        with self._tx() as db:
            rows = db.execute(
                "SELECT id, request FROM jobs WHERE owner = ? AND request != ''", (owner,)
            ).fetchall()
            db.execute("UPDATE jobs SET request = '' WHERE owner = ? AND request != ''", (owner,))
        return [(r["id"], r["request"]) for r in rows]


def _job(row: sqlite3.Row) -> JobRecord:
    d = dict(row)
    return JobRecord(
        id=d["id"],
        created=d["created"],
        updated=d["updated"],
        server=d["server"],
        username=d["username"],
        project=d["project"],
        subject=d["subject"],
        label=d["label"],
        study_uid=d["study_uid"],
        destination=Destination(d["destination"]),
        overwrite=Overwrite(d["overwrite"]),
        anonymization=d["anonymization"],
        compression=Compression(d["compression"]),
        verify_digests=bool(d["verify_digests"]),
        new_subject=bool(d["new_subject"]),
        verdict=d["verdict"],
        source_root=d["source_root"],
        state=JobState(d["state"]),
        message=d["message"],
        prearchive_uri=d["prearchive_uri"],
        commit_phase=d["commit_phase"],
        result_uri=d["result_uri"],
        archived=None if d["archived"] is None else bool(d["archived"]),
        request=d["request"],
        owner=d["owner"],
        lease_until=d["lease_until"],
        receipt=d["receipt"],
        verified_by=d.get("verified_by") or "",
        kind=JobKind(d.get("kind") or JobKind.UPLOAD),
        params=json.loads(d["params"]) if d.get("params") else {},
        **_read_anon_params(d.get("anon_params") or ""),
    )


def _anon_params(profile: str, options: AnonOptions, variables: dict[str, str]) -> str:
    opts = options.for_profile(profile)
    if not opts.key() and not variables:
        return ""
    return json.dumps(
        {"options": opts.to_dict(), "variables": dict(sorted(variables.items()))},
        sort_keys=True,
    )


def _read_anon_params(text: str) -> dict[str, Any]:
    if not text:
        return {}
    data = json.loads(text)
    return {
        "anon_options": AnonOptions.from_dict(data.get("options") or {}),
        "anon_variables": {str(k): str(v) for k, v in (data.get("variables") or {}).items()},
    }


def _series(row: sqlite3.Row) -> SeriesRecord:
    d = dict(row)
    manifest = (
        [ManifestEntry.from_list(m) for m in json.loads(d["manifest"])] if d["manifest"] else []
    )
    return SeriesRecord(
        job_id=d["job_id"],
        uid=d["uid"],
        position=d["position"],
        number=d["number"],
        description=d["description"],
        modality=d["modality"],
        file_count=d["file_count"],
        bytes=d["bytes"],
        state=SeriesState(d["state"]),
        attempts=d["attempts"],
        message=d["message"],
        uri=d["uri"],
        manifest=manifest,
    )
