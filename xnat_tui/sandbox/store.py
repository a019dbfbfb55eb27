"""Persistent state of the sandbox: one SQLite file plus archived files on disk.

Layout under ``data_dir``::

    sandbox.db                       users, roles, tokens, projects, subjects,
                                     experiments, scans, resources, files, configs
                                     (WAL mode; other modules may add tables, e.g.
                                     the prearchive, through ``store.db``)
    archive/<P>/arc001/<LABEL>/SCANS/<scan>/<RESOURCE>/<file>   archived files

A restart re-opens the same database, so everything survives.

API (stable; add, don't rename):

* ``Store(data_dir)`` / ``Store.open(data_dir)``; ``store.db`` (sqlite3 connection,
  ``check_same_thread=False``, rows as ``sqlite3.Row``); ``store.lock`` (an RLock:
  hold it around multi-statement work from other threads); ``store.data_dir``,
  ``store.archive_root``; ``store.close()``.
* ``store.transaction()`` context manager (locks, commits or rolls back; nested use
  joins the outer transaction). ``query_one(sql, *args)``, ``query_all(...)``,
  ``execute(...)``: single locked statements, for tables other sandbox modules add
  (the prearchive).
* Users: ``add_user``, ``get_user``, ``check_password``, ``set_role``,
  ``roles_of`` (project → role).
* Alias tokens: ``issue_token``, ``get_token``, ``tokens_of``, ``invalidate_token``.
* Projects: ``create_project``, ``get_project``, ``resolve_project`` (ID or alias),
  ``list_projects``, ``set_prearchive_code``.
* Subjects: ``get_or_create_subject(project, label, user) -> (id, created)``,
  ``create_subject``, ``get_subject``, ``find_subject(project, id_or_label)``,
  ``find_subject_ci`` (case-insensitive label, as the archiver matches),
  ``list_subjects``.
* Experiments: ``create_experiment``, ``get_experiment``, ``find_experiment(project,
  id_or_label)``, ``list_experiments``, ``update_experiment``, ``experiment_dir``,
  ``delete_experiment`` (rows only; the caller removes files), ``delete_subject``.
* Scans: ``add_scan`` (insert or return existing), ``get_scan``, ``list_scans``.
* Resources: ``get_or_create_resource``, ``find_resource``, ``list_resources``.
* Files: ``add_file`` (insert or replace a catalog entry), ``list_files``,
  ``get_file``, ``file_path`` (absolute path on disk), ``md5_file``.
* Config service: ``put_config``, ``get_config``, ``list_configs``.
* Shares (``experiment_shares``, ``subject_shares``: item, project, label) are read
  and written by ``share_routes``; deleting an item deletes its shares.

Time stamps are XNAT-rendered strings (``2023-09-27 17:31:21.352``); accession IDs
are ``XNAT_S00001`` / ``XNAT_E00001``. Every method is a short SQLite call, cheap
enough to run on the event loop.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

SITE_ID = "XNAT"
ROLES = ("owner", "member", "collaborator")
TOKEN_LIFETIME_MS = 2 * 24 * 3600 * 1000  # pref aliasTokenTimeout "2 days"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    login TEXT PRIMARY KEY, salt TEXT NOT NULL, password_hash TEXT NOT NULL,
    admin INTEGER NOT NULL DEFAULT 0, enabled INTEGER NOT NULL DEFAULT 1,
    firstname TEXT NOT NULL DEFAULT '', lastname TEXT NOT NULL DEFAULT '',
    email TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS roles (
    project TEXT NOT NULL, login TEXT NOT NULL, role TEXT NOT NULL,
    PRIMARY KEY (project, login));
CREATE TABLE IF NOT EXISTS tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT, alias TEXT UNIQUE NOT NULL, secret TEXT NOT NULL,
    login TEXT NOT NULL, created INTEGER NOT NULL, expires INTEGER NOT NULL,
    single_use INTEGER NOT NULL DEFAULT 0, enabled INTEGER NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS projects (
    id TEXT PRIMARY KEY, secondary_id TEXT NOT NULL, name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '', pi_firstname TEXT NOT NULL DEFAULT '',
    pi_lastname TEXT NOT NULL DEFAULT '', prearchive_code INTEGER NOT NULL DEFAULT 4,
    accessibility TEXT NOT NULL DEFAULT 'private',
    insert_date TEXT NOT NULL, insert_user TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS project_aliases (alias TEXT PRIMARY KEY, project TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS subjects (
    id TEXT PRIMARY KEY, project TEXT NOT NULL, label TEXT NOT NULL,
    grp TEXT NOT NULL DEFAULT '', src TEXT NOT NULL DEFAULT '',
    gender TEXT NOT NULL DEFAULT '', handedness TEXT NOT NULL DEFAULT '',
    yob TEXT NOT NULL DEFAULT '', dob TEXT NOT NULL DEFAULT '', age TEXT NOT NULL DEFAULT '',
    insert_date TEXT NOT NULL, insert_user TEXT NOT NULL, last_modified TEXT NOT NULL,
    UNIQUE (project, label));
CREATE TABLE IF NOT EXISTS experiments (
    id TEXT PRIMARY KEY, project TEXT NOT NULL, subject_id TEXT NOT NULL, label TEXT NOT NULL,
    xsi_type TEXT NOT NULL, date TEXT NOT NULL DEFAULT '', time TEXT NOT NULL DEFAULT '',
    uid TEXT NOT NULL DEFAULT '', modality TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT '', visit_id TEXT NOT NULL DEFAULT '',
    session_type TEXT NOT NULL DEFAULT '', scanner TEXT NOT NULL DEFAULT '',
    operator TEXT NOT NULL DEFAULT '', dcm_accession TEXT NOT NULL DEFAULT '',
    dcm_patient_id TEXT NOT NULL DEFAULT '', dcm_patient_name TEXT NOT NULL DEFAULT '',
    insert_date TEXT NOT NULL, insert_user TEXT NOT NULL, last_modified TEXT NOT NULL,
    UNIQUE (project, label));
CREATE TABLE IF NOT EXISTS scans (
    pk INTEGER PRIMARY KEY AUTOINCREMENT, experiment_id TEXT NOT NULL, scan_id TEXT NOT NULL,
    type TEXT NOT NULL DEFAULT '', series_description TEXT NOT NULL DEFAULT '',
    xsi_type TEXT NOT NULL DEFAULT 'xnat:mrScanData', uid TEXT NOT NULL DEFAULT '',
    modality TEXT NOT NULL DEFAULT '', quality TEXT NOT NULL DEFAULT 'usable',
    note TEXT NOT NULL DEFAULT '', frames TEXT NOT NULL DEFAULT '',
    insert_date TEXT NOT NULL, UNIQUE (experiment_id, scan_id));
CREATE TABLE IF NOT EXISTS resources (
    id INTEGER PRIMARY KEY AUTOINCREMENT, experiment_id TEXT NOT NULL, scan_pk INTEGER,
    label TEXT NOT NULL, format TEXT NOT NULL DEFAULT '', content TEXT NOT NULL DEFAULT '',
    element_name TEXT NOT NULL DEFAULT 'xnat:resourceCatalog');
CREATE UNIQUE INDEX IF NOT EXISTS resources_owner
    ON resources (experiment_id, IFNULL(scan_pk, -1), label);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY AUTOINCREMENT, resource_id INTEGER NOT NULL, name TEXT NOT NULL,
    size INTEGER NOT NULL, digest TEXT NOT NULL, path TEXT NOT NULL,
    file_format TEXT NOT NULL DEFAULT '', file_content TEXT NOT NULL DEFAULT '',
    UNIQUE (resource_id, name));
CREATE TABLE IF NOT EXISTS configs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, tool TEXT NOT NULL, path TEXT NOT NULL,
    project TEXT NOT NULL DEFAULT '', user TEXT NOT NULL, contents TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'enabled', version INTEGER NOT NULL,
    create_date TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '',
    unversioned INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS configs_key ON configs (tool, path, project, version);
CREATE TABLE IF NOT EXISTS experiment_shares (
    experiment_id TEXT NOT NULL, project TEXT NOT NULL, label TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (experiment_id, project));
CREATE TABLE IF NOT EXISTS subject_shares (
    subject_id TEXT NOT NULL, project TEXT NOT NULL, label TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (subject_id, project));
"""


def xnat_timestamp(t: float | None = None) -> str:
    """``2023-09-27 17:31:21.352`` (java.sql.Timestamp rendering, local time)."""
    dt = datetime.fromtimestamp(time.time() if t is None else t)
    return dt.strftime("%Y-%m-%d %H:%M:%S.") + f"{dt.microsecond // 1000:03d}"


def now_ms() -> int:
    return int(time.time() * 1000)


def _hash(password: str, salt: str) -> str:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 1000).hex()


@dataclass(frozen=True)
class StoredToken:
    id: int
    alias: str
    secret: str
    login: str
    created: int
    expires: int
    single_use: bool
    enabled: bool

    @property
    def expired(self) -> bool:
        return now_ms() > self.expires

    def to_json(self) -> dict[str, Any]:
        """The JSON XNAT's Jackson serialisation of its ``AliasToken`` gives (§2.5)."""
        return {
            "alias": self.alias,
            "secret": self.secret,
            "singleUse": self.single_use,
            "estimatedExpirationTime": self.expires,
            "xdatUserId": self.login,
            "expired": self.expired,
            "id": self.id,
            "enabled": self.enabled,
            "created": self.created,
            "timestamp": self.created,
        }


class StoreError(Exception):
    """A store operation that violates a constraint (duplicate label, unknown parent)."""


class Store:
    """SQLite + files. See the module docstring for the API."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.archive_root = self.data_dir / "archive"
        self.archive_root.mkdir(exist_ok=True)
        self.lock = threading.RLock()
        self.db = sqlite3.connect(
            self.data_dir / "sandbox.db", check_same_thread=False, isolation_level=None
        )
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)

    @classmethod
    def open(cls, data_dir: Path) -> Store:
        return cls(data_dir)

    def close(self) -> None:
        with self.lock:
            self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            if self.db.in_transaction:
                # Nested use (same thread, the lock is re-entrant): the outer block commits.
                yield self.db
                return
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def query_one(self, sql: str, *args: Any) -> sqlite3.Row | None:
        """First row of one locked statement (tables other modules add, e.g. prearchive)."""
        with self.lock:
            row: sqlite3.Row | None = self.db.execute(sql, args).fetchone()
            return row

    def query_all(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        with self.lock:
            return list(self.db.execute(sql, args).fetchall())

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        with self.lock:
            return self.db.execute(sql, args)

    def _next_id(self, name: str) -> int:
        with self.transaction() as db:
            row = db.execute("SELECT value FROM counters WHERE name=?", (name,)).fetchone()
            value = (row["value"] if row else 0) + 1
            db.execute("INSERT OR REPLACE INTO counters (name, value) VALUES (?, ?)", (name, value))
            return int(value)

    def is_empty(self) -> bool:
        return self.query_one("SELECT 1 FROM users LIMIT 1") is None

    # ---- users and roles -------------------------------------------------------

    def add_user(
        self,
        login: str,
        password: str,
        *,
        admin: bool = False,
        firstname: str = "",
        lastname: str = "",
        email: str = "",
    ) -> None:
        salt = secrets.token_hex(8)
        self.execute(
            "INSERT OR REPLACE INTO users (login, salt, password_hash, admin, firstname, "
            "lastname, email) VALUES (?,?,?,?,?,?,?)",
            login,
            salt,
            _hash(password, salt),
            int(admin),
            firstname,
            lastname,
            email,
        )

    def get_user(self, login: str) -> sqlite3.Row | None:
        return self.query_one("SELECT * FROM users WHERE login=?", login)

    def user_id(self, login: str) -> int:
        """XNAT's numeric ``xdat_user_id`` (the row number of the user)."""
        row = self.query_one("SELECT rowid FROM users WHERE login=?", login)
        return 0 if row is None else int(row[0])

    def check_password(self, login: str, password: str) -> bool:
        row = self.get_user(login)
        if row is None or not row["enabled"]:
            return False
        return secrets.compare_digest(row["password_hash"], _hash(password, row["salt"]))

    def set_role(self, project: str, login: str, role: str | None) -> None:
        if role is None:
            self.execute("DELETE FROM roles WHERE project=? AND login=?", project, login)
            return
        if role not in ROLES:
            raise StoreError(f"unknown role {role}")
        self.execute(
            "INSERT OR REPLACE INTO roles (project, login, role) VALUES (?,?,?)",
            project,
            login,
            role,
        )

    def roles_of(self, login: str) -> dict[str, str]:
        rows = self.query_all("SELECT project, role FROM roles WHERE login=?", login)
        return {str(r["project"]): str(r["role"]) for r in rows}

    # ---- alias tokens ------------------------------------------------------------

    def issue_token(self, login: str, *, lifetime_ms: int = TOKEN_LIFETIME_MS) -> StoredToken:
        alias = str(uuid.uuid4())
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        secret = "".join(secrets.choice(alphabet) for _ in range(64))
        created = now_ms()
        self.execute(
            "INSERT INTO tokens (alias, secret, login, created, expires) VALUES (?,?,?,?,?)",
            alias,
            secret,
            login,
            created,
            created + lifetime_ms,
        )
        token = self.get_token(alias)
        assert token is not None
        return token

    def get_token(self, alias: str) -> StoredToken | None:
        row = self.query_one("SELECT * FROM tokens WHERE alias=?", alias)
        return None if row is None else _token(row)

    def tokens_of(self, login: str) -> list[StoredToken]:
        rows = self.query_all("SELECT * FROM tokens WHERE login=? AND enabled=1 ORDER BY id", login)
        return [_token(r) for r in rows]

    def invalidate_token(self, alias: str) -> None:
        self.execute("UPDATE tokens SET enabled=0 WHERE alias=?", alias)

    # ---- projects ------------------------------------------------------------------

    def create_project(
        self,
        project_id: str,
        *,
        user: str,
        secondary_id: str | None = None,
        name: str | None = None,
        description: str = "",
        pi_firstname: str = "",
        pi_lastname: str = "",
        prearchive_code: int = 4,
        aliases: tuple[str, ...] = (),
    ) -> None:
        """Create a project and make ``user`` its owner (StoreError if it exists)."""
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM projects WHERE id=?", (project_id,)).fetchone():
                raise StoreError("Project already exists.")
            db.execute(
                "INSERT INTO projects (id, secondary_id, name, description, pi_firstname, "
                "pi_lastname, prearchive_code, insert_date, insert_user) "
                "VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    project_id,
                    secondary_id or project_id,
                    name or project_id,
                    description,
                    pi_firstname,
                    pi_lastname,
                    prearchive_code,
                    xnat_timestamp(),
                    user,
                ),
            )
            for alias in aliases:
                db.execute(
                    "INSERT OR REPLACE INTO project_aliases (alias, project) VALUES (?,?)",
                    (alias, project_id),
                )
            db.execute(
                "INSERT OR REPLACE INTO roles (project, login, role) VALUES (?,?,?)",
                (project_id, user, "owner"),
            )

    def get_project(self, project_id: str) -> sqlite3.Row | None:
        return self.query_one("SELECT * FROM projects WHERE id=?", project_id)

    def resolve_project(self, id_or_alias: str) -> sqlite3.Row | None:
        """Project by ID, else by alias (case-sensitive, as XNAT's project cache)."""
        row = self.get_project(id_or_alias)
        if row is not None:
            return row
        alias = self.query_one("SELECT project FROM project_aliases WHERE alias=?", id_or_alias)
        return None if alias is None else self.get_project(alias["project"])

    def project_aliases(self, project_id: str) -> list[str]:
        rows = self.query_all(
            "SELECT alias FROM project_aliases WHERE project=? ORDER BY alias", project_id
        )
        return [str(r["alias"]) for r in rows]

    def list_projects(self) -> list[sqlite3.Row]:
        return self.query_all("SELECT * FROM projects ORDER BY id")

    def set_prearchive_code(self, project_id: str, code: int) -> None:
        self.execute("UPDATE projects SET prearchive_code=? WHERE id=?", code, project_id)

    # ---- subjects ----------------------------------------------------------------

    def create_subject(self, project: str, label: str, user: str, **fields: str) -> str:
        """Insert a subject; returns its accession ID (StoreError on a label clash)."""
        allowed = {"grp", "src", "gender", "handedness", "yob", "dob", "age"}
        extra = {k: v for k, v in fields.items() if k in allowed}
        with self.lock:
            if self.find_subject(project, label) is not None:
                raise StoreError("Specified label is already in use.")
            sid = f"{SITE_ID}_S{self._next_id('subject'):05d}"
            stamp = xnat_timestamp()
            cols = ["id", "project", "label", "insert_date", "insert_user", "last_modified"]
            vals: list[str] = [sid, project, label, stamp, user, stamp]
            cols += list(extra)
            vals += list(extra.values())
            self.execute(
                f"INSERT INTO subjects ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                *vals,
            )
            return sid

    def get_or_create_subject(self, project: str, label: str, user: str) -> tuple[str, bool]:
        """(accession ID, created?) — exact label match, as REST PUT does."""
        with self.lock:
            row = self.find_subject(project, label)
            if row is not None:
                return str(row["id"]), False
            return self.create_subject(project, label, user), True

    def update_subject(self, subject_id: str, **fields: str) -> None:
        allowed = {"grp", "src", "gender", "handedness", "yob", "dob", "age", "label"}
        sets = {k: v for k, v in fields.items() if k in allowed}
        if not sets:
            return
        sets["last_modified"] = xnat_timestamp()
        assignments = ",".join(f"{k}=?" for k in sets)
        self.execute(f"UPDATE subjects SET {assignments} WHERE id=?", *sets.values(), subject_id)

    def get_subject(self, subject_id: str) -> sqlite3.Row | None:
        return self.query_one("SELECT * FROM subjects WHERE id=?", subject_id)

    def find_subject(self, project: str, id_or_label: str) -> sqlite3.Row | None:
        """By project + label first, then by accession ID within the project."""
        row = self.query_one(
            "SELECT * FROM subjects WHERE project=? AND label=?", project, id_or_label
        )
        if row is None:
            row = self.query_one(
                "SELECT * FROM subjects WHERE project=? AND id=?", project, id_or_label
            )
        return row

    def find_subject_ci(self, project: str, label: str) -> sqlite3.Row | None:
        """Case-insensitive label match (the archiver's rule, XNAT-2865)."""
        return self.query_one(
            "SELECT * FROM subjects WHERE project=? AND lower(label)=lower(?) ORDER BY id",
            project,
            label,
        )

    def list_subjects(self, project: str | None = None) -> list[sqlite3.Row]:
        if project is None:
            return self.query_all("SELECT * FROM subjects ORDER BY id")
        return self.query_all("SELECT * FROM subjects WHERE project=? ORDER BY id", project)

    # ---- experiments -------------------------------------------------------------

    _EXPT_FIELDS = (
        "date",
        "time",
        "uid",
        "modality",
        "note",
        "visit_id",
        "session_type",
        "scanner",
        "operator",
        "dcm_accession",
        "dcm_patient_id",
        "dcm_patient_name",
    )

    def create_experiment(
        self,
        project: str,
        subject_id: str,
        label: str,
        xsi_type: str,
        user: str,
        **fields: str,
    ) -> str:
        """Insert an experiment; returns its accession ID. ``fields``: date (YYYY-MM-DD),
        time (HH:MM:SS), uid (StudyInstanceUID), modality, note, visit_id, session_type,
        scanner, operator, dcm_accession, dcm_patient_id, dcm_patient_name."""
        extra = {k: v for k, v in fields.items() if k in self._EXPT_FIELDS}
        with self.lock:
            if self.query_one(
                "SELECT 1 FROM experiments WHERE project=? AND label=?", project, label
            ):
                raise StoreError("Specified label is already in use.")
            eid = f"{SITE_ID}_E{self._next_id('experiment'):05d}"
            stamp = xnat_timestamp()
            cols = [
                "id",
                "project",
                "subject_id",
                "label",
                "xsi_type",
                "insert_date",
                "insert_user",
                "last_modified",
            ]
            vals: list[str] = [eid, project, subject_id, label, xsi_type, stamp, user, stamp]
            cols += list(extra)
            vals += list(extra.values())
            self.execute(
                f"INSERT INTO experiments ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                *vals,
            )
            return eid

    def update_experiment(self, experiment_id: str, **fields: str) -> None:
        allowed = set(self._EXPT_FIELDS) | {"label", "xsi_type", "subject_id"}
        sets = {k: v for k, v in fields.items() if k in allowed}
        if not sets:
            return
        sets["last_modified"] = xnat_timestamp()
        assignments = ",".join(f"{k}=?" for k in sets)
        self.execute(
            f"UPDATE experiments SET {assignments} WHERE id=?", *sets.values(), experiment_id
        )

    def get_experiment(self, experiment_id: str) -> sqlite3.Row | None:
        return self.query_one("SELECT * FROM experiments WHERE id=?", experiment_id)

    def find_experiment(self, project: str, id_or_label: str) -> sqlite3.Row | None:
        """By project + label (case-sensitive), then by accession ID within the project."""
        row = self.query_one(
            "SELECT * FROM experiments WHERE project=? AND label=?", project, id_or_label
        )
        if row is None:
            row = self.query_one(
                "SELECT * FROM experiments WHERE project=? AND id=?", project, id_or_label
            )
        return row

    def list_experiments(
        self, project: str | None = None, subject_id: str | None = None
    ) -> list[sqlite3.Row]:
        sql = "SELECT * FROM experiments WHERE 1=1"
        args: list[str] = []
        if project is not None:
            sql += " AND project=?"
            args.append(project)
        if subject_id is not None:
            sql += " AND subject_id=?"
            args.append(subject_id)
        return self.query_all(sql + " ORDER BY id", *args)

    def experiment_dir(self, project: str, label: str) -> Path:
        """Where an archived session's files live: ``archive/<P>/arc001/<LABEL>``.

        Labels are not character-checked by XNAT's REST API, so path separators and
        ``.``/``..`` are neutralised here: a label can never point outside the archive."""
        return self.archive_root / _path_part(project) / "arc001" / _path_part(label)

    def delete_subject(self, subject_id: str) -> None:
        """Remove a subject row (its experiments must be deleted first) and its shares."""
        with self.transaction() as db:
            db.execute("DELETE FROM subjects WHERE id=?", (subject_id,))
            db.execute("DELETE FROM subject_shares WHERE subject_id=?", (subject_id,))

    def delete_experiment(self, experiment_id: str) -> None:
        with self.transaction() as db:
            res = [
                r["id"]
                for r in db.execute(
                    "SELECT id FROM resources WHERE experiment_id=?", (experiment_id,)
                )
            ]
            for rid in res:
                db.execute("DELETE FROM files WHERE resource_id=?", (rid,))
            db.execute("DELETE FROM resources WHERE experiment_id=?", (experiment_id,))
            db.execute("DELETE FROM scans WHERE experiment_id=?", (experiment_id,))
            db.execute("DELETE FROM experiments WHERE id=?", (experiment_id,))
            # Its shares go with it (XNAT deletes the share rows with the item).
            db.execute("DELETE FROM experiment_shares WHERE experiment_id=?", (experiment_id,))

    # ---- scans -------------------------------------------------------------------

    def add_scan(
        self,
        experiment_id: str,
        scan_id: str,
        *,
        type: str = "",
        series_description: str = "",
        xsi_type: str = "xnat:mrScanData",
        uid: str = "",
        modality: str = "",
        quality: str = "usable",
        note: str = "",
        frames: str = "",
    ) -> int:
        """Insert a scan or return the existing one's ``xnat_imagescandata_id``."""
        with self.lock:
            row = self.get_scan(experiment_id, scan_id)
            if row is not None:
                return int(row["pk"])
            cur = self.execute(
                "INSERT INTO scans (experiment_id, scan_id, type, series_description, "
                "xsi_type, uid, modality, quality, note, frames, insert_date) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                experiment_id,
                scan_id,
                type,
                series_description,
                xsi_type,
                uid,
                modality,
                quality,
                note,
                frames,
                xnat_timestamp(),
            )
            assert cur.lastrowid is not None
            return int(cur.lastrowid)

    def update_scan(self, scan_pk: int, **fields: str) -> None:
        allowed = {"type", "series_description", "xsi_type", "uid", "modality", "quality"}
        allowed |= {"note", "frames"}
        sets = {k: v for k, v in fields.items() if k in allowed}
        if sets:
            assignments = ",".join(f"{k}=?" for k in sets)
            self.execute(f"UPDATE scans SET {assignments} WHERE pk=?", *sets.values(), scan_pk)

    def get_scan(self, experiment_id: str, scan_id: str) -> sqlite3.Row | None:
        return self.query_one(
            "SELECT * FROM scans WHERE experiment_id=? AND scan_id=?", experiment_id, scan_id
        )

    def list_scans(self, experiment_id: str) -> list[sqlite3.Row]:
        rows = self.query_all("SELECT * FROM scans WHERE experiment_id=?", experiment_id)
        return sorted(rows, key=lambda r: _natural(str(r["scan_id"])))

    # ---- resources and files ------------------------------------------------------

    def get_or_create_resource(
        self,
        experiment_id: str,
        scan_pk: int | None,
        label: str = "DICOM",
        *,
        format: str = "DICOM",
        content: str = "RAW",
    ) -> int:
        """``xnat_abstractresource_id`` of the (experiment, scan or None, label) resource."""
        with self.lock:
            row = self.query_one(
                "SELECT id FROM resources WHERE experiment_id=? AND IFNULL(scan_pk,-1)=? "
                "AND label=?",
                experiment_id,
                -1 if scan_pk is None else scan_pk,
                label,
            )
            if row is not None:
                return int(row["id"])
            cur = self.execute(
                "INSERT INTO resources (experiment_id, scan_pk, label, format, content) "
                "VALUES (?,?,?,?,?)",
                experiment_id,
                scan_pk,
                label,
                format,
                content,
            )
            assert cur.lastrowid is not None
            return int(cur.lastrowid)

    def find_resource(
        self, experiment_id: str, scan_pk: int | None, label_or_id: str
    ) -> sqlite3.Row | None:
        key = -1 if scan_pk is None else scan_pk
        row = self.query_one(
            "SELECT * FROM resources WHERE experiment_id=? AND IFNULL(scan_pk,-1)=? AND label=?",
            experiment_id,
            key,
            label_or_id,
        )
        if row is None and label_or_id.isdigit():
            row = self.query_one(
                "SELECT * FROM resources WHERE experiment_id=? AND IFNULL(scan_pk,-1)=? AND id=?",
                experiment_id,
                key,
                int(label_or_id),
            )
        return row

    def list_resources(self, experiment_id: str, scan_pk: int | None) -> list[sqlite3.Row]:
        return self.query_all(
            "SELECT * FROM resources WHERE experiment_id=? AND IFNULL(scan_pk,-1)=? ORDER BY id",
            experiment_id,
            -1 if scan_pk is None else scan_pk,
        )

    def resource_stats(self, resource_id: int) -> tuple[int, int]:
        row = self.query_one(
            "SELECT COUNT(*) AS n, IFNULL(SUM(size),0) AS s FROM files WHERE resource_id=?",
            resource_id,
        )
        assert row is not None
        return int(row["n"]), int(row["s"])

    def add_file(
        self,
        resource_id: int,
        name: str,
        path: Path,
        *,
        size: int | None = None,
        digest: str | None = None,
        file_format: str = "",
        file_content: str = "",
    ) -> int:
        """Record a file already written at ``path`` (absolute, under ``data_dir``).

        ``name`` is the path relative to the resource (the catalog entry). Size and
        MD5 are computed from disk when not given. Re-adding a name replaces it."""
        if size is None:
            size = path.stat().st_size
        if digest is None:
            digest = md5_file(path)
        rel = os.path.relpath(path, self.data_dir)
        cur = self.execute(
            "INSERT OR REPLACE INTO files (resource_id, name, size, digest, path, file_format, "
            "file_content) VALUES (?,?,?,?,?,?,?)",
            resource_id,
            name,
            size,
            digest,
            rel,
            file_format,
            file_content,
        )
        assert cur.lastrowid is not None
        return int(cur.lastrowid)

    def list_files(self, resource_id: int) -> list[sqlite3.Row]:
        return self.query_all("SELECT * FROM files WHERE resource_id=? ORDER BY name", resource_id)

    def get_file(self, resource_id: int, name: str) -> sqlite3.Row | None:
        return self.query_one(
            "SELECT * FROM files WHERE resource_id=? AND name=?", resource_id, name
        )

    def file_path(self, file_row: sqlite3.Row) -> Path:
        return self.data_dir / str(file_row["path"])

    # ---- config service ----------------------------------------------------------

    def put_config(
        self,
        tool: str,
        path: str,
        contents: str | None,
        *,
        user: str,
        project: str | None = None,
        status: str | None = None,
        reason: str = "",
    ) -> bool:
        """Store a new version; ``contents=None`` keeps the old contents (status change).

        Returns True when the entry is new (→ 201), False when updated (→ 200)."""
        scope = project or ""
        with self.lock:
            old = self.get_config(tool, path, project)
            if old is None and contents is None:
                contents = ""
            self.execute(
                "INSERT INTO configs (tool, path, project, user, contents, status, version, "
                "create_date, reason) VALUES (?,?,?,?,?,?,?,?,?)",
                tool,
                path,
                scope,
                user,
                contents if contents is not None else (old["contents"] if old else ""),
                status or (old["status"] if old else "enabled"),
                (int(old["version"]) + 1) if old else 1,
                xnat_timestamp(),
                reason,
            )
            return old is None

    def get_config(
        self, tool: str, path: str, project: str | None = None, version: int | None = None
    ) -> sqlite3.Row | None:
        sql = "SELECT * FROM configs WHERE tool=? AND path=? AND project=?"
        args: list[Any] = [tool, path, project or ""]
        if version is not None:
            sql += " AND version=?"
            args.append(version)
        return self.query_one(sql + " ORDER BY version DESC LIMIT 1", *args)

    def list_configs(
        self, tool: str | None = None, project: str | None = None
    ) -> list[sqlite3.Row]:
        """Latest version of each (tool, path) in a scope."""
        sql = (
            "SELECT c.* FROM configs c JOIN (SELECT tool, path, MAX(version) AS v FROM configs "
            "WHERE project=? GROUP BY tool, path) m ON c.tool=m.tool AND c.path=m.path "
            "AND c.version=m.v WHERE c.project=?"
        )
        args: list[Any] = [project or "", project or ""]
        if tool is not None:
            sql += " AND c.tool=?"
            args.append(tool)
        return self.query_all(sql + " ORDER BY c.tool, c.path", *args)

    def config_history(self, tool: str, path: str, project: str | None = None) -> list[sqlite3.Row]:
        return self.query_all(
            "SELECT * FROM configs WHERE tool=? AND path=? AND project=? ORDER BY version",
            tool,
            path,
            project or "",
        )


def _token(row: sqlite3.Row) -> StoredToken:
    return StoredToken(
        id=int(row["id"]),
        alias=str(row["alias"]),
        secret=str(row["secret"]),
        login=str(row["login"]),
        created=int(row["created"]),
        expires=int(row["expires"]),
        single_use=bool(row["single_use"]),
        enabled=bool(row["enabled"]),
    )


def _path_part(text: str) -> str:
    cleaned = "".join("_" if c in "/\\\0" else c for c in text)
    return "_" * max(1, len(cleaned)) if cleaned in ("", ".", "..") else cleaned


def _natural(text: str) -> tuple[int, int | str]:
    return (0, int(text)) if text.isdigit() else (1, text)


def md5_file(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
