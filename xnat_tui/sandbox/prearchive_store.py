"""The sandbox prearchive: rows in ``store.db`` plus files under ``<data_dir>/prearchive``.

Layout: ``prearchive/<project|Unassigned>/<timestamp>/<folder>/SCANS/<scan>/DICOM/<file>``
and, once built, the session document ``prearchive/<project>/<timestamp>/<folder>.xml``
(as XNAT keeps ``<folder>.xml`` beside the folder).

Rows mirror XNAT's ``DatabaseSession`` columns (xnat-api.md §6.1). ``project`` is
stored as ``""`` for Unassigned so (project, timestamp, folder) can be unique. Each
received instance is recorded in ``prearchive_files`` (scan, name, SOP UIDs, series
data, size, MD5) so listings, builds and archiving never re-read DICOM headers.
All methods are short SQLite calls made on the event loop.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from xnat_tui.sandbox.store import Store

UNASSIGNED = "Unassigned"

COLUMNS = [
    "project",
    "timestamp",
    "lastmod",
    "uploaded",
    "scan_date",
    "scan_time",
    "subject",
    "folderName",
    "name",
    "tag",
    "status",
    "url",
    "autoarchive",
    "prevent_anon",
    "prevent_auto_commit",
    "SOURCE",
    "VISIT",
    "PROTOCOL",
    "TIMEZONE",
]

STATUSES = (
    "READY",
    "RECEIVING",
    "RECEIVING_INTERRUPT",
    "BUILDING",
    "ARCHIVING",
    "MOVING",
    "DELETING",
    "SEPARATING",
    "CONFLICT",
    "ERROR",
    "QUEUED_ARCHIVING",
    "QUEUED_BUILDING",
    "QUEUED_DELETING",
    "QUEUED_MOVING",
    "QUEUED_SEPARATING",
    "_ARCHIVING",
    "_BUILDING",
    "_CONFLICT",
    "_DELETING",
    "_MOVING",
    "_RECEIVING",
    "_RECEIVING_INTERRUPT",
    "_SEPARATING",
)

# PrearchiveCode: the project's prearchive_code → the row's ``autoarchive``.
CODE_NAMES = {0: "Manual", 4: "AutoArchive", 5: "AutoArchiveOverwrite"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS prearchive (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project TEXT NOT NULL, timestamp TEXT NOT NULL, folder TEXT NOT NULL,
    name TEXT NOT NULL, subject TEXT NOT NULL DEFAULT '', tag TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL, lastmod REAL NOT NULL, uploaded REAL NOT NULL,
    scan_date TEXT NOT NULL DEFAULT '', scan_time TEXT NOT NULL DEFAULT '',
    autoarchive TEXT NOT NULL DEFAULT 'Manual',
    prevent_anon INTEGER NOT NULL DEFAULT 0, prevent_auto_commit INTEGER NOT NULL DEFAULT 0,
    source TEXT NOT NULL DEFAULT '', visit TEXT NOT NULL DEFAULT '',
    protocol TEXT NOT NULL DEFAULT '', timezone TEXT NOT NULL DEFAULT '',
    built INTEGER NOT NULL DEFAULT 0,
    UNIQUE (project, timestamp, folder));
CREATE TABLE IF NOT EXISTS prearchive_files (
    session_id INTEGER NOT NULL, scan TEXT NOT NULL, name TEXT NOT NULL,
    sop_instance_uid TEXT NOT NULL, sop_class_uid TEXT NOT NULL,
    series_uid TEXT NOT NULL DEFAULT '', series_number TEXT NOT NULL DEFAULT '',
    series_description TEXT NOT NULL DEFAULT '', modality TEXT NOT NULL DEFAULT '',
    patient_id TEXT NOT NULL DEFAULT '', patient_name TEXT NOT NULL DEFAULT '',
    size INTEGER NOT NULL, md5 TEXT NOT NULL,
    PRIMARY KEY (session_id, scan, name));
CREATE INDEX IF NOT EXISTS prearchive_files_sop ON prearchive_files (session_id, sop_instance_uid);
CREATE TABLE IF NOT EXISTS prearchive_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT, session_id INTEGER NOT NULL,
    date REAL NOT NULL, entry TEXT NOT NULL);
"""


def path_segment(value: str) -> str:
    """A label or timestamp made safe as one directory name (never leaves its parent)."""
    cleaned = value.replace("/", "_").replace("\\", "_").replace("\x00", "_")
    return "_" if cleaned in ("", ".", "..") else cleaned


def java_timestamp(t: float) -> str:
    """``java.sql.Timestamp.toString()``: ``2022-01-18 16:41:25.0`` / ``...28.996``."""
    dt = datetime.fromtimestamp(t)
    frac = f"{dt.microsecond // 1000:03d}".rstrip("0") or "0"
    return dt.strftime("%Y-%m-%d %H:%M:%S.") + frac


def make_timestamp(t: float | None = None) -> str:
    """``PrearcUtils.makeTimestamp``: ``yyyyMMdd_HHmmssSSS``."""
    dt = datetime.fromtimestamp(time.time() if t is None else t)
    return dt.strftime("%Y%m%d_%H%M%S") + f"{dt.microsecond // 1000:03d}"


@dataclass
class PrearcSession:
    id: int
    project: str  # "" = Unassigned
    timestamp: str
    folder: str
    name: str
    subject: str
    tag: str
    status: str
    lastmod: float
    uploaded: float
    scan_date: str
    scan_time: str
    autoarchive: str
    prevent_anon: bool
    prevent_auto_commit: bool
    source: str
    visit: str
    protocol: str
    timezone: str
    built: bool

    @property
    def project_label(self) -> str:
        return self.project or UNASSIGNED

    @property
    def url(self) -> str:
        return f"/prearchive/projects/{self.project_label}/{self.timestamp}/{self.folder}"

    def row(self) -> dict[str, str]:
        """One listing row, every value a string, in ``COLUMNS`` order."""
        return {
            "project": self.project_label,
            "timestamp": self.timestamp,
            "lastmod": java_timestamp(self.lastmod),
            "uploaded": java_timestamp(self.uploaded),
            "scan_date": self.scan_date,
            "scan_time": self.scan_time,
            "subject": self.subject,
            "folderName": self.folder,
            "name": self.name,
            "tag": self.tag,
            "status": self.status,
            "url": self.url,
            "autoarchive": self.autoarchive,
            "prevent_anon": "true" if self.prevent_anon else "false",
            "prevent_auto_commit": "true" if self.prevent_auto_commit else "false",
            "SOURCE": self.source,
            "VISIT": self.visit,
            "PROTOCOL": self.protocol,
            "TIMEZONE": self.timezone,
        }


def _session(row: sqlite3.Row) -> PrearcSession:
    return PrearcSession(
        id=int(row["id"]),
        project=str(row["project"]),
        timestamp=str(row["timestamp"]),
        folder=str(row["folder"]),
        name=str(row["name"]),
        subject=str(row["subject"]),
        tag=str(row["tag"]),
        status=str(row["status"]),
        lastmod=float(row["lastmod"]),
        uploaded=float(row["uploaded"]),
        scan_date=str(row["scan_date"]),
        scan_time=str(row["scan_time"]),
        autoarchive=str(row["autoarchive"]),
        prevent_anon=bool(row["prevent_anon"]),
        prevent_auto_commit=bool(row["prevent_auto_commit"]),
        source=str(row["source"]),
        visit=str(row["visit"]),
        protocol=str(row["protocol"]),
        timezone=str(row["timezone"]),
        built=bool(row["built"]),
    )


@dataclass
class PrearcFile:
    scan: str
    name: str
    sop_instance_uid: str
    sop_class_uid: str
    series_uid: str
    series_number: str
    series_description: str
    modality: str
    patient_id: str
    patient_name: str
    size: int
    md5: str


class PrearchiveStore:
    """Prearchive rows and files, sharing the sandbox's SQLite connection."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.root = store.data_dir / "prearchive"
        self.root.mkdir(parents=True, exist_ok=True)
        with store.lock:
            store.db.executescript(_SCHEMA)

    # ---- paths ----------------------------------------------------------------------

    def session_dir(self, s: PrearcSession) -> Path:
        return self.root / s.project_label / s.timestamp / s.folder

    def xml_path(self, s: PrearcSession) -> Path:
        return self.root / s.project_label / s.timestamp / f"{s.folder}.xml"

    def file_path(self, s: PrearcSession, f: PrearcFile) -> Path:
        return self.session_dir(s) / "SCANS" / f.scan / "DICOM" / f.name

    # ---- rows -----------------------------------------------------------------------

    def get(self, session_id: int) -> PrearcSession | None:
        row = self.store.query_one("SELECT * FROM prearchive WHERE id=?", session_id)
        return None if row is None else _session(row)

    def find(self, project: str, timestamp: str, folder: str) -> PrearcSession | None:
        """``project`` is an ID or ``Unassigned``."""
        key = "" if project == UNASSIGNED else project
        row = self.store.query_one(
            "SELECT * FROM prearchive WHERE project=? AND timestamp=? AND folder=?",
            key,
            timestamp,
            folder,
        )
        return None if row is None else _session(row)

    def find_receiving_target(self, project: str, tag: str, name: str) -> PrearcSession | None:
        """The row new instances of (project, StudyInstanceUID, label) join (§5.3)."""
        row = self.store.query_one(
            "SELECT * FROM prearchive WHERE project=? AND tag=? AND name=? ORDER BY id LIMIT 1",
            project,
            tag,
            name,
        )
        return None if row is None else _session(row)

    def sessions(
        self, projects: list[str] | None = None, tag: str | None = None
    ) -> list[PrearcSession]:
        """Rows of the given projects ("" = Unassigned), all when None."""
        sql = "SELECT * FROM prearchive WHERE 1=1"
        args: list[str] = []
        if projects is not None:
            if not projects:
                return []
            sql += f" AND project IN ({','.join('?' * len(projects))})"
            args += projects
        if tag is not None:
            sql += " AND tag=?"
            args.append(tag)
        rows = self.store.query_all(sql + " ORDER BY project, timestamp, folder", *args)
        return [_session(r) for r in rows]

    def folder_taken(self, project: str, timestamp: str, folder: str) -> bool:
        row = self.store.query_one(
            "SELECT 1 FROM prearchive WHERE project=? AND timestamp=? AND folder=?",
            project,
            timestamp,
            folder,
        )
        if row is not None:
            return True
        return (self.root / (project or UNASSIGNED) / timestamp / folder).exists()

    def free_folder(self, project: str, timestamp: str, folder: str) -> str:
        """``folder``, or ``folder_1``, ``folder_2``... when taken (PrearcDatabase)."""
        if not self.folder_taken(project, timestamp, folder):
            return folder
        n = 1
        while self.folder_taken(project, timestamp, f"{folder}_{n}"):
            n += 1
        return f"{folder}_{n}"

    def create(
        self,
        *,
        project: str,
        timestamp: str,
        folder: str,
        name: str,
        subject: str,
        tag: str,
        status: str = "RECEIVING",
        scan_date: str = "",
        scan_time: str = "",
        autoarchive: str = "Manual",
        prevent_anon: bool = False,
        prevent_auto_commit: bool = False,
        source: str = "",
        visit: str = "",
        protocol: str = "",
        timezone: str = "",
        now: float | None = None,
    ) -> PrearcSession:
        t = time.time() if now is None else now
        cur = self.store.execute(
            "INSERT INTO prearchive (project, timestamp, folder, name, subject, tag, status, "
            "lastmod, uploaded, scan_date, scan_time, autoarchive, prevent_anon, "
            "prevent_auto_commit, source, visit, protocol, timezone) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            project,
            timestamp,
            folder,
            name,
            subject,
            tag,
            status,
            t,
            t,
            scan_date,
            scan_time,
            autoarchive,
            int(prevent_anon),
            int(prevent_auto_commit),
            source,
            visit,
            protocol,
            timezone,
        )
        assert cur.lastrowid is not None
        s = self.get(int(cur.lastrowid))
        assert s is not None
        self.session_dir(s).mkdir(parents=True, exist_ok=True)
        return s

    def update(self, session_id: int, **fields: object) -> None:
        allowed = {
            "status",
            "subject",
            "name",
            "lastmod",
            "autoarchive",
            "source",
            "visit",
            "protocol",
            "timezone",
            "built",
            "project",
            "prevent_auto_commit",
        }
        sets = {k: v for k, v in fields.items() if k in allowed}
        if not sets:
            return
        assignments = ",".join(f"{k}=?" for k in sets)
        self.store.execute(
            f"UPDATE prearchive SET {assignments} WHERE id=?", *sets.values(), session_id
        )

    def set_status(self, session_id: int, status: str) -> None:
        self.update(session_id, status=status, lastmod=time.time())

    def touch(self, session_id: int) -> None:
        self.update(session_id, lastmod=time.time())

    def delete(self, s: PrearcSession) -> None:
        """Remove the row, its file records, logs and files on disk."""
        with self.store.transaction() as db:
            db.execute("DELETE FROM prearchive_files WHERE session_id=?", (s.id,))
            db.execute("DELETE FROM prearchive_log WHERE session_id=?", (s.id,))
            db.execute("DELETE FROM prearchive WHERE id=?", (s.id,))
        shutil.rmtree(self.session_dir(s), ignore_errors=True)
        self.xml_path(s).unlink(missing_ok=True)
        ts_dir = self.session_dir(s).parent
        try:
            ts_dir.rmdir()  # only when no other session shares the timestamp
        except OSError:
            pass

    def move(self, s: PrearcSession, project: str, autoarchive: str) -> PrearcSession:
        """Re-home a session into another project (same timestamp and folder)."""
        old_dir, old_xml = self.session_dir(s), self.xml_path(s)
        self.update(s.id, project=project, autoarchive=autoarchive, lastmod=time.time())
        moved = self.get(s.id)
        assert moved is not None
        new_dir = self.session_dir(moved)
        new_dir.parent.mkdir(parents=True, exist_ok=True)
        if old_dir.exists():
            shutil.move(str(old_dir), str(new_dir))
        if old_xml.exists():
            shutil.move(str(old_xml), str(self.xml_path(moved)))
        try:
            old_dir.parent.rmdir()
        except OSError:
            pass
        return moved

    # ---- files ----------------------------------------------------------------------

    def _files(self, where: str, *args: object) -> list[PrearcFile]:
        rows = self.store.query_all(
            f"SELECT * FROM prearchive_files WHERE {where} ORDER BY scan, name", *args
        )
        return [
            PrearcFile(
                scan=str(r["scan"]),
                name=str(r["name"]),
                sop_instance_uid=str(r["sop_instance_uid"]),
                sop_class_uid=str(r["sop_class_uid"]),
                series_uid=str(r["series_uid"]),
                series_number=str(r["series_number"]),
                series_description=str(r["series_description"]),
                modality=str(r["modality"]),
                patient_id=str(r["patient_id"]),
                patient_name=str(r["patient_name"]),
                size=int(r["size"]),
                md5=str(r["md5"]),
            )
            for r in rows
        ]

    def files(self, session_id: int) -> list[PrearcFile]:
        return self._files("session_id=?", session_id)

    def files_of_scan(self, session_id: int, scan: str) -> list[PrearcFile]:
        return self._files("session_id=? AND scan=?", session_id, scan)

    def file_named(self, session_id: int, scan: str, name: str) -> PrearcFile | None:
        found = self._files("session_id=? AND scan=? AND name=?", session_id, scan, name)
        return found[0] if found else None

    def find_instance(self, session_id: int, sop_instance_uid: str) -> PrearcFile | None:
        found = self._files("session_id=? AND sop_instance_uid=?", session_id, sop_instance_uid)
        return found[0] if found else None

    def add_file(self, session_id: int, f: PrearcFile) -> None:
        self.store.execute(
            "INSERT OR REPLACE INTO prearchive_files (session_id, scan, name, sop_instance_uid, "
            "sop_class_uid, series_uid, series_number, series_description, modality, "
            "patient_id, patient_name, size, md5) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            session_id,
            f.scan,
            f.name,
            f.sop_instance_uid,
            f.sop_class_uid,
            f.series_uid,
            f.series_number,
            f.series_description,
            f.modality,
            f.patient_id,
            f.patient_name,
            f.size,
            f.md5,
        )

    def remove_file(self, session_id: int, scan: str, name: str) -> None:
        self.store.execute(
            "DELETE FROM prearchive_files WHERE session_id=? AND scan=? AND name=?",
            session_id,
            scan,
            name,
        )

    # ---- logs -------------------------------------------------------------------------

    def log(self, session_id: int, entry: str) -> None:
        self.store.execute(
            "INSERT INTO prearchive_log (session_id, date, entry) VALUES (?,?,?)",
            session_id,
            time.time(),
            entry,
        )

    def logs(self, session_id: int) -> list[tuple[int, float, str]]:
        rows = self.store.query_all(
            "SELECT id, date, entry FROM prearchive_log WHERE session_id=? ORDER BY id",
            session_id,
        )
        return [(int(r["id"]), float(r["date"]), str(r["entry"])) for r in rows]


def prearchive_of(store: Store) -> PrearchiveStore:
    """One PrearchiveStore per Store (the schema is created once)."""
    cached = getattr(store, "_sandbox_prearchive", None)
    if isinstance(cached, PrearchiveStore):
        return cached
    pre = PrearchiveStore(store)
    store._sandbox_prearchive = pre  # type: ignore[attr-defined]
    return pre
