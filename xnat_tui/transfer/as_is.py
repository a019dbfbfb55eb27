"""``--as-is``: the archive file itself is the import body, as XNAT's Compressed Uploader
sends it (``import-handler=DICOM-zip``, ``Ignore-Unparsable=true``).

XNAT picks the archive's format from its *name*, with case-sensitive regexes
(``Format.java``, xnat-api-2.md §C.3), at the top and for every archive inside: a
``.tar.xz``, a ``.tar.bz2``, ``X.ZIP`` or a lone ``.gz`` is refused (400 "Unsupported
format ...") or, nested, read as one unreadable DICOM object and skipped, so its files
would silently be missing. :func:`refusal` says so before anything is sent; the streamed
mode (without ``--as-is``) reads all of these.

The body is the raw file (its Content-Type names the format: XNAT derives the in-body
name from it, ``application/x-gtar`` → ``.tar.gz``; ``application/x-gzip`` would be
``upload.gzip``, an UNKNOWN format). The DICOM members are read once more, through the
opener, for their digests: verification compares the server's files with them.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import zipfile
import zlib
from collections.abc import AsyncIterator, Mapping, Sequence

from xnat_tui.dicom import archives
from xnat_tui.transfer.journal import ManifestEntry
from xnat_tui.transfer.opener import open_in_order
from xnat_tui.transfer.server import SourceChanged
from xnat_tui.transfer.types import SourceFile, SourceSession

PARAM = "as_is"
"""The job's ``params`` key: the archive's path (an as-is job sends that file whole)."""

# Format.java's regexes, on the name only, case-sensitive (xnat-api-2.md §C.3).
_XNAT_FORMATS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\.z(ip|ar)$"), "application/zip"),
    (re.compile(r"\.[tx]ar$"), "application/x-tar"),
    (re.compile(r"\.t(ar\.)?gz$"), "application/x-gtar"),
)
_CHUNK = 1 << 20


def content_type(name: str) -> str | None:
    """The Content-Type under which XNAT reads ``name`` as the archive it is, or None
    when XNAT's case-sensitive check does not take the name."""
    for pattern, ctype in _XNAT_FORMATS:
        if pattern.search(name):
            return ctype
    return None


def _why_not(name: str) -> str:
    lower = name.lower()
    if content_type(lower) is not None:
        return (
            f"XNAT's importer compares extensions case-sensitively and does not "
            f"recognise {name!r} (it would answer 'Unsupported format UNKNOWN')"
        )
    if lower.endswith(".gz"):
        return "XNAT reads a lone gzip as no archive ('Unsupported format GZ')"
    kind = archives.archive_kind(name)
    if kind is not None:
        return (
            f"XNAT's importer does not read .{archives.FORMAT_NAMES[kind]} archives "
            "('Unsupported format UNKNOWN'); it takes .zip, .tar and .tar.gz/.tgz"
        )
    return "XNAT's importer does not read this as an archive"


def streamed_hint(path: str) -> str:
    return (
        f"upload it streamed instead (xnat-tui reads it in place): "
        f"xnat-tui upload {_quote(path)} ... without --as-is"
    )


def _quote(path: str) -> str:
    return f"'{path}'" if any(c in path for c in " \t'\"$`\\;&|<>()*?") else path


def refusal(archive: str, members: Sequence[str] = ()) -> str:
    """Why XNAT would not import ``archive`` sent as it is ('' when it would).

    ``members`` are the session's files inside it (``archive!member``): an archive
    nested on their way whose name XNAT does not take would have its files skipped.
    """
    name = os.path.basename(archive)
    if archives.is_member(archive):
        return f"{archive} is inside another archive: only a file on disk can be sent as it is"
    if not os.path.isfile(archive):
        return f"{archive} is not an archive file (--as-is sends one archive as it is)"
    if content_type(name) is None:
        return f"{archive}: {_why_not(name)}; {streamed_hint(archive)}"
    for member in members:
        parts = archives.split(member)
        if parts is None or parts[0] != archive:
            return f"{member} is not inside {archive}; {streamed_hint(archive)}"
        for level in parts[1][:-1]:
            inner = level.rsplit("/", 1)[-1]
            if content_type(inner) is None:
                return (
                    f"{archive}: the archive {level!r} inside it would not be opened by "
                    f"XNAT ({_why_not(inner)}), so its files would be skipped; "
                    f"{streamed_hint(archive)}"
                )
    if content_type(name) == "application/zip":
        problem = _descriptor_problem(archive)
        if problem:
            return f"{archive}: {problem}; {streamed_hint(archive)}"
    return ""


def _descriptor_problem(path: str) -> str:
    """XNAT reads a zip with Java's ZipInputStream, which cannot read a *stored* member
    whose sizes come after its data (a data descriptor) (xnat-api-2.md §C.3)."""
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.compress_type == zipfile.ZIP_STORED and info.flag_bits & 0x08:
                    return (
                        f"member {info.filename!r} is stored with a data descriptor, which "
                        "XNAT's zip reader cannot read"
                    )
    except (OSError, zipfile.BadZipFile) as exc:
        return f"cannot be read as a zip ({exc})"
    return ""


def member_manifests(
    files: Mapping[str, Sequence[SourceFile]],
) -> dict[str, list[ManifestEntry]]:
    """Per series: what each DICOM member holds (size, CRC-32, MD5), read through the
    opener (one pass per compressed archive), each checked against what the scan saw.
    Raises :class:`SourceChanged` when a member vanished or changed."""
    flat: list[tuple[str, int, SourceFile]] = [
        (uid, i, f) for uid, fs in files.items() for i, f in enumerate(fs)
    ]
    out: dict[str, list[ManifestEntry | None]] = {
        uid: [None] * len(fs) for uid, fs in files.items()
    }
    for j, f, kind, fh in open_in_order([f for _u, _i, f in flat]):
        uid, i, _f = flat[j]
        try:
            kind.check(f, True)
            md5 = hashlib.md5(usedforsecurity=False)
            crc = size = 0
            while block := fh.read(_CHUNK):
                md5.update(block)
                crc = zlib.crc32(block, crc)
                size += len(block)
            kind.finished(f, fh, size, crc, True)
        except OSError as exc:
            raise SourceChanged(str(f.path), f"cannot be read: {exc.strerror or exc}") from None
        except SourceChanged:
            raise
        except Exception as exc:  # noqa: BLE001 - a damaged member (CRC, zlib)
            raise SourceChanged(str(f.path), f"cannot be read from its archive: {exc}") from None
        finally:
            fh.close()
        name = str(f.path).rsplit(archives.SEP, 1)[-1].rsplit("/", 1)[-1]
        out[uid][i] = ManifestEntry(name, str(f.path), size, crc, md5.hexdigest())
    result: dict[str, list[ManifestEntry]] = {}
    for uid, entries in out.items():
        missing = [files[uid][i] for i, e in enumerate(entries) if e is None]
        if missing:
            raise SourceChanged(str(missing[0].path), "is no longer in its archive")
        result[uid] = [e for e in entries if e is not None]
    return result


class ArchiveBody:
    """The archive file as the request body, re-creatable (a re-login resends it), with
    live counters scaled to the session's DICOM bytes and files for progress."""

    def __init__(self, path: str, dicom_bytes: int, dicom_files: int) -> None:
        self.path = path
        self.size = os.stat(path).st_size
        self.content_length: int | None = self.size
        self.content_type = content_type(os.path.basename(path)) or "application/zip"
        self._dicom_bytes = dicom_bytes
        self._dicom_files = dicom_files
        self.sent = 0
        self._stopped = False

    @property
    def bytes_done(self) -> int:
        if self.size <= 0:
            return 0
        return min(self._dicom_bytes, self.sent * self._dicom_bytes // self.size)

    @property
    def files_done(self) -> int:
        if self.size <= 0:
            return 0
        return min(self._dicom_files, self.sent * self._dicom_files // self.size)

    def cancel(self) -> None:
        self._stopped = True

    async def chunks(self) -> AsyncIterator[bytes]:
        """The file's bytes, read off the event loop; raises SourceChanged when the file
        is not the size it was when the job started (changed under us)."""
        self.sent = 0
        try:
            fh = await asyncio.to_thread(open, self.path, "rb")
        except OSError as exc:
            raise SourceChanged(self.path, f"cannot be read: {exc.strerror or exc}") from None
        try:
            while not self._stopped:
                block: bytes = await asyncio.to_thread(fh.read, _CHUNK)
                if not block:
                    break
                self.sent += len(block)
                if self.sent > self.size:
                    raise SourceChanged(self.path, "grew while being sent")
                yield block
        finally:
            fh.close()
        if not self._stopped and self.sent != self.size:
            raise SourceChanged(self.path, "shrank while being sent")


def path_of(params: Mapping[str, object]) -> str:
    """The archive an as-is job sends ('' for a job that streams its files)."""
    value = params.get(PARAM, "")
    return value if isinstance(value, str) else ""


def name_problems(paths: Sequence[str]) -> list[str]:
    """What XNAT would refuse in the archives' names (before anything is read)."""
    problems: list[str] = []
    for p in paths:
        name = os.path.basename(p)
        if archives.archive_kind(name) is None and content_type(name) is None:
            problems.append(f"{p} is not an archive file (--as-is sends archives as they are)")
        elif why := refusal(p):
            problems.append(why)
    return problems


def _outer(path: str) -> str:
    return os.path.abspath(archives.outermost(path))


def pair_sessions(
    paths: Sequence[str], sessions: Sequence[SourceSession]
) -> tuple[dict[str, SourceSession], list[str]]:
    """Each archive named on the command line (by absolute path) with the one session
    it holds whole.

    ``--as-is`` sends one archive per session: an archive holding two sessions (XNAT
    would file both, under the one label given), a session spread over two archives or
    over an archive and a folder, or an archive XNAT would not read, is refused with the
    reason (and the streamed command to use instead). Returns ``({archive: session},
    problems)``; nothing is to be sent when ``problems`` is not empty.
    """
    problems = name_problems(paths)
    if problems:
        return {}, problems
    wanted = {os.path.abspath(p): p for p in paths}
    held: dict[str, list[SourceSession]] = {}
    for s in sessions:
        outers = {_outer(str(f.path)) for series in s.series for f in series.files}
        if len(outers) != 1 or next(iter(outers)) not in wanted:
            where = ", ".join(sorted(outers))
            problems.append(
                f"session {s.study_instance_uid} is spread over {where}: --as-is sends one "
                "archive holding one whole session; " + streamed_hint(" ".join(wanted.values()))
            )
            continue
        held.setdefault(next(iter(outers)), []).append(s)
    out: dict[str, SourceSession] = {}
    for full, given in wanted.items():
        found = held.get(full, [])
        if not found:
            problems.append(f"{given}: no DICOM session found in it")
        elif len(found) > 1:
            problems.append(
                f"{given} holds {len(found)} sessions (StudyInstanceUIDs "
                f"{', '.join(s.study_instance_uid for s in found)}): --as-is sends an archive "
                f"under one set of labels; {streamed_hint(given)}"
            )
        else:
            members = [_absolute_member(str(f.path)) for se in found[0].series for f in se.files]
            why = refusal(full, members)
            if why:
                problems.append(why.replace(full, given, 1))
            else:
                out[full] = found[0]
    return out, problems


def _absolute_member(path: str) -> str:
    parts = archives.split(path)
    if parts is None:
        return path
    return archives.SEP.join([os.path.abspath(parts[0]), *parts[1]])
