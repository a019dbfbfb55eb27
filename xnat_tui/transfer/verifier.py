"""After commit: compare what the server holds with what was sent, per scan.

Files are matched by (size, MD5) as a multiset — the import renames files
(``rename=true``), so names cannot be compared. When the server rewrites files
(a server-side anon script) or gives no digests, only counts (and sizes when
meaningful) are compared and the receipt says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from xnat_tui.private import FILE_MODE, private_dir, private_file
from xnat_tui.transfer.journal import JobRecord, SeriesRecord
from xnat_tui.transfer.server import RemoteFile, RemoteSession, ServerPort
from xnat_tui.transfer.types import SeriesState


@dataclass
class ScanCheck:
    series_uid: str
    scan_id: str
    description: str
    sent_files: int
    sent_bytes: int
    server_files: int
    server_bytes: int
    method: str  # md5 | size | count
    passed: bool
    detail: str = ""


@dataclass
class Receipt:
    job_id: str
    server: str
    username: str
    project: str
    subject: str
    session: str
    study_instance_uid: str
    location: str  # archive | prearchive
    uri: str
    verified: bool
    checked_at: float
    scans: list[ScanCheck] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""
    # Profile and SHA-256 of each script applied on this machine before sending.
    anonymization: dict[str, Any] = field(default_factory=dict)
    # How the weakest scan was checked: md5 (contents), size (the server gave no
    # digests, as the prearchive does) or count (the server rewrote the files).
    verified_by: str = "md5"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def how(self) -> str:
        """'verified by MD5' / 'verified by size' / 'verified by file count'."""
        return verified_how(self.verified_by)


_STRENGTH = {"md5": 0, "size": 1, "count": 2}
_HOW = {"md5": "by MD5", "size": "by size", "count": "by file count"}


def verified_how(method: str) -> str:
    """How a verification was done, as users read it ('verified by size')."""
    return f"verified {_HOW.get(method, 'by ' + method)}" if method else "verified"


def weakest(methods: list[str]) -> str:
    """The least thorough of the scans' methods (what the whole session can claim)."""
    return max(methods, key=lambda m: _STRENGTH.get(m, 3), default="md5")


def _scan_id(series: SeriesRecord) -> str:
    if series.number is not None:
        return str(series.number)
    return series.uid.rsplit(".", 1)[-1]


def _compare(
    series: SeriesRecord, remote: list[RemoteFile], use_digest: bool, exact: bool
) -> tuple[str, bool, str]:
    sent = series.manifest
    if use_digest and remote and all(r.digest for r in remote):
        want = Counter[tuple[int | None, str]]((m.size, m.md5.lower()) for m in sent)
        have = Counter[tuple[int | None, str]]((r.size, r.digest.lower()) for r in remote)
        missing = want - have
        if missing:
            return "md5", False, f"{sum(missing.values())} sent file(s) missing or different"
        extra = sum((have - want).values())
        if exact and extra:
            return "md5", False, f"{extra} unexpected extra file(s) on the server"
        return "md5", True, f"{extra} other file(s) already there" if extra else ""
    if use_digest and remote and all(r.size is not None for r in remote):
        want_s = Counter[int | None](m.size for m in sent)
        have_s = Counter[int | None](r.size for r in remote)
        missing_s = want_s - have_s
        if missing_s:
            return (
                "size",
                False,
                f"{sum(missing_s.values())} sent file(s) missing or of another size",
            )
        return "size", True, "server gave no MD5 digests; sizes compared"
    ok = len(remote) >= len(sent) if not exact else len(remote) == len(sent)
    detail = "" if ok else f"server has {len(remote)} file(s), {len(sent)} sent"
    reason = (
        "the server gave neither digests nor sizes"
        if use_digest
        else "file contents rewritten by the server"
    )
    return "count", ok, detail or f"{reason}; counts compared"


async def verify(
    server: ServerPort,
    job: JobRecord,
    series: list[SeriesRecord],
    remote: RemoteSession,
) -> Receipt:
    listing = await server.session_files(remote)
    receipt = Receipt(
        job_id=job.id,
        server=job.server,
        username=job.username,
        project=job.project,
        subject=job.subject,
        session=job.label,
        study_instance_uid=job.study_uid,
        location=remote.location,
        uri=remote.uri,
        verified=True,
        checked_at=time.time(),
    )
    exact = job.verdict == "new"
    claimed: set[str] = set()
    for s in series:
        if s.state is SeriesState.EMPTY:
            receipt.dropped.append(
                {
                    "series_instance_uid": s.uid,
                    "series_number": s.number,
                    "reason": "server kept nothing (import filter)",
                }
            )
            continue
        scan_id = _scan_id(s)
        files = listing.get(scan_id)
        if files is None:
            files = _find_by_content(s, listing, claimed)
            scan_id = next((k for k, v in listing.items() if v is files), scan_id)
        claimed.add(scan_id)
        files = files or []
        method, ok, detail = _compare(s, files, job.verify_digests, exact)
        if not files:
            ok, detail = False, "scan not found on the server"
        receipt.scans.append(
            ScanCheck(
                series_uid=s.uid,
                scan_id=scan_id,
                description=s.description,
                sent_files=len(s.manifest),
                sent_bytes=sum(m.size for m in s.manifest),
                server_files=len(files),
                server_bytes=sum(f.size or 0 for f in files),
                method=method,
                passed=ok,
                detail=detail,
            )
        )
        receipt.verified = receipt.verified and ok
    receipt.verified_by = weakest([c.method for c in receipt.scans])
    if not job.verify_digests:
        receipt.note = (
            "the project rewrites files on the server (anon script): digests not compared"
        )
    elif receipt.verified_by == "size":
        receipt.note = (
            "verified by size: the server gave no MD5 digests (the prearchive lists none), "
            "so file sizes were compared, not contents"
        )
    return receipt


def _find_by_content(
    s: SeriesRecord, listing: dict[str, list[RemoteFile]], claimed: set[str]
) -> list[RemoteFile] | None:
    digests = {m.md5.lower() for m in s.manifest}
    for scan_id, files in listing.items():
        if scan_id in claimed:
            continue
        if digests & {f.digest.lower() for f in files if f.digest}:
            return files
    return None


def write_receipt(receipt: Receipt, directory: Path) -> Path:
    """Atomically write ``<job>.json`` (0600) so a crash never leaves half a receipt."""
    private_dir(directory)
    target = directory / f"{receipt.job_id}.json"
    tmp = target.with_suffix(".json.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()  # a leftover of a crash may be 0644: never write through it
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(receipt.to_dict(), indent=2))
    os.replace(tmp, target)
    return target


def tighten_receipts(directory: Path) -> None:
    """Receipts name patients' sessions: make the folder 0700 and each receipt 0600.

    Receipts written before they were private are tightened when an engine opens the
    folder; the folder itself is only created when the first receipt is written.
    """
    if not directory.is_dir():
        return
    private_dir(directory)
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=False):
                private_file(Path(entry.path))


def default_receipts_dir() -> Path:
    from xnat_tui.config import state_dir

    return state_dir() / "receipts"
