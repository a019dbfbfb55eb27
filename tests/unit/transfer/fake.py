"""An in-memory server implementing the engine's ServerPort, with fault injection.

It unpacks every zip it receives with ``zipfile`` and refuses data descriptors on
stored entries (what XNAT's Java reader rejects), so packer bugs fail here too.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field

from xnat_tui.transfer.retry import Clock, MonotonicClock
from xnat_tui.transfer.server import (
    BodyFactory,
    CommitOutcome,
    ProjectInfo,
    RemoteFile,
    RemoteSession,
    TransferError,
)
from xnat_tui.transfer.types import SourceSeries


@dataclass
class FakeSession:
    project: str
    subject: str
    label: str
    study_uid: str
    uri: str
    status: str = "RECEIVING"
    location: str = "prearchive"
    scans: dict[str, dict[str, bytes]] = field(default_factory=dict)


class Dropped(ConnectionError):
    pass


class FakeServer:
    server_url = "http://fake"
    username = "alice"

    def __init__(self) -> None:
        self.projects: dict[str, ProjectInfo] = {"P": ProjectInfo("P")}
        self.subject_labels: dict[str, set[str]] = {"P": set()}
        self.sessions_: list[FakeSession] = []
        self.imports = 0
        self.commits = 0
        self.fail_imports: list[BaseException] = []  # raised (then popped) by import_series
        self.fail_commits: list[BaseException] = []
        self.drop_after_commit = 0  # commits that succeed but whose answer is lost
        self.import_delay = 0.0
        self.chunk_delay = 0.0
        self.chunks = 0  # body chunks received, over all imports
        # The delays above pass on this clock (share the engine's ManualClock in tests).
        self.clock: Clock = MonotonicClock()
        self.ts = 0

    # ------------------------------------------------------------ port
    async def project_info(self, project: str) -> ProjectInfo:
        if project not in self.projects:
            raise TransferError(f"project {project} not found or not visible", status=404)
        return self.projects[project]

    async def subjects(self, project: str) -> set[str]:
        return set(self.subject_labels.get(project, set()))

    async def sessions(self, project: str) -> list[RemoteSession]:
        return [
            RemoteSession(s.label, s.subject, s.study_uid, s.location, s.uri, s.status, s.project)
            for s in self.sessions_
            if s.project == project
        ]

    async def import_series(
        self,
        body: BodyFactory,
        *,
        project: str,
        subject: str,
        session: str,
        overwrite: str,
        extra: Mapping[str, str] | None = None,
    ) -> str:
        self.imports += 1
        buf = bytearray()
        fail = self.fail_imports.pop(0) if self.fail_imports else None
        async for chunk in body():
            buf += chunk
            self.chunks += 1
            if self.chunk_delay:
                await self.clock.sleep(self.chunk_delay)
            if fail is not None and len(buf) > 100:
                raise fail
        if fail is not None:
            raise fail
        if self.import_delay:
            await self.clock.sleep(self.import_delay)
        members = read_zip_strict(bytes(buf))
        info = self.projects[project]
        kept: dict[str, dict[str, bytes]] = {}
        study = ""
        for name, data in members.items():
            series_uid, number, desc, study_uid = parse_fake_dicom(data)
            if info.drop_reason(SourceSeries(series_uid, int(number), desc)):
                continue
            study = study_uid
            kept.setdefault(number, {})[name.rsplit("/", 1)[-1]] = data
        if not kept:
            return ""
        sess = next(
            (
                s
                for s in self.sessions_
                if s.project == project
                and s.label == session
                and s.study_uid == study
                and s.location == "prearchive"
            ),
            None,
        )
        if sess is None:
            self.ts += 1
            sess = FakeSession(
                project,
                subject,
                session,
                study,
                f"/data/prearchive/projects/{project}/2026_{self.ts:04d}/{session}",
            )
            self.sessions_.append(sess)
        for scan, files in kept.items():
            sess.scans.setdefault(scan, {}).update(files)
        return sess.uri

    async def commit(self, uri: str, *, auto_archive: bool | None) -> CommitOutcome:
        self.commits += 1
        if self.fail_commits:
            raise self.fail_commits.pop(0)
        sess = next(
            (s for s in self.sessions_ if s.uri == uri and s.location == "prearchive"), None
        )
        if sess is None:
            raise TransferError("session not found", status=404)
        archive = (
            auto_archive if auto_archive is not None else self.projects[sess.project].auto_archive
        )
        if archive:
            existing = next(
                (
                    s
                    for s in self.sessions_
                    if s.location == "archive"
                    and s.project == sess.project
                    and s.label == sess.label
                ),
                None,
            )
            if existing is not None:
                for scan, files in sess.scans.items():
                    existing.scans.setdefault(scan, {}).update(files)
                self.sessions_.remove(sess)
                sess = existing
            else:
                sess.location = "archive"
                sess.status = ""
                sess.uri = (
                    f"/data/archive/projects/{sess.project}/subjects/{sess.subject}"
                    f"/experiments/{sess.label}"
                )
            self.subject_labels.setdefault(sess.project, set()).add(sess.subject)
            outcome = CommitOutcome(True, sess.uri)
        else:
            sess.status = "READY"
            outcome = CommitOutcome(False, sess.uri)
        if self.drop_after_commit:
            self.drop_after_commit -= 1
            raise Dropped("connection dropped after commit")
        return outcome

    async def session_files(self, session: RemoteSession) -> dict[str, list[RemoteFile]]:
        sess = next((s for s in self.sessions_ if s.uri == session.uri), None)
        if sess is None:
            raise TransferError("not found", status=404)
        return {
            scan: [
                RemoteFile(n, len(d), digest=hashlib.md5(d).hexdigest()) for n, d in files.items()
            ]
            for scan, files in sess.scans.items()
        }

    # ---------------------------------------------------------- helpers
    def find(self, label: str) -> list[FakeSession]:
        return [s for s in self.sessions_ if s.label == label]


def read_zip_strict(data: bytes) -> dict[str, bytes]:
    """Unzip, refusing stored entries with data descriptors (XNAT cannot read them)."""
    zf = zipfile.ZipFile(io.BytesIO(data))
    out: dict[str, bytes] = {}
    for info in zf.infolist():
        if info.compress_type == zipfile.ZIP_STORED and info.flag_bits & 0x08:
            raise TransferError(f"{info.filename}: stored entry with data descriptor", status=400)
        if info.filename in out:
            raise TransferError(f"duplicate entry {info.filename}", status=400)
        out[info.filename] = zf.read(info)
    # Local header of the first entry must carry the real CRC (no descriptor).
    if data[:4] == b"PK\x03\x04":
        (flags,) = struct.unpack("<H", data[6:8])
        assert not (flags & 0x08 and data[8:10] == b"\x00\x00")
    return out


def make_fake_dicom(
    study: str, series: str, number: str, desc: str, i: int, size: int = 2000
) -> bytes:
    head = f"FAKEDICOM|{study}|{series}|{number}|{desc}|{i}|".encode()
    return head + bytes((i * 7 + k) % 251 for k in range(max(0, size - len(head))))


def parse_fake_dicom(data: bytes) -> tuple[str, str, str, str]:
    parts = data.split(b"|", 6)
    return parts[2].decode(), parts[3].decode(), parts[4].decode(), parts[1].decode()
