"""Tree memo: the whole result of the last scan of a folder tree, for an unchanged rescan.

The rescan cache (``cache.py``) answers each unchanged file, but the scan still has
to group 10^5 cached files into sessions and run every check again. When the tree
is exactly as it was -- every folder, every file's (name, size, mtime), in the same
places -- the result is exactly the last one, so this keeps that result.

How "exactly as it was" is proven, without trusting anything but the file system:
the walk records, for every folder it lists, the folder's (st_dev, st_ino), the
sorted names of its subfolders and the packed bytes of its (name, size, mtime_ns)
listing (``_fastlist.pack``). A rescan re-reads every recorded folder in one call
(``_fastlist.check_tree``: readdir and lstat in several threads with the GIL
released) and compares bytes for bytes. A memo is only kept for trees the walk
could settle without any judgment call: every entry a regular file with one link
or a real folder, no symlink, no unreadable folder, no junk folder, no file named
directly, and no file modified in the last seconds (the cache does not trust those
yet, see ``cache.RACY_SECONDS``). Then the walk is a function of exactly what is
compared, and each file's header a function of its (path, size, mtime), as the
cache already assumes.

The result is stored with each scan's files packed (marshal), and unpacked only
when a scan's files are first read: a rescan that shows sessions, counts and sizes
(the TUI's list, ``xnat-tui scan``) never builds 10^5 FileRef objects.
"""

from __future__ import annotations

import marshal
import os
from collections.abc import Sequence
from operator import attrgetter
from pathlib import Path
from typing import Any

from xnat_tui.dicom.model import (
    FileRef,
    PendingFiles,
    Problem,
    RoutingProposal,
    Scan,
    ScanProgress,
    Session,
    file_order,
)
from xnat_tui.dicom.processes import usable_cpus
from xnat_tui.dicom.routing import PatternLike
from xnat_tui.dicom.walk import FASTLIST as _fastlist
from xnat_tui.dicom.walk import pure_walk

# Bump when the packed form or the meaning of a memo changes.
MEMO_VERSION = 1
# Trees with more files than this keep no memo: its file is written at the end of
# every changed scan and read whole (about 140 bytes a file).
MEMO_LIMIT = 250_000
# The modules whose code decides a scan's result: a memo written by other code
# (an upgrade, a developer's edit) is not used.
_RESULT_MODULES = (
    "checks.py",
    "collect.py",
    "header.py",
    "memo.py",
    "model.py",
    "routing.py",
    "scan.py",
    "walk.py",
    "worker.py",
)


def available() -> bool:
    """The C extension is there (with the tree functions) and in use."""
    return _fastlist is not None and hasattr(_fastlist, "check_tree") and not pure_walk()


def check_threads() -> int:
    """Threads for re-reading a tree: lstat waits on the disk or a file server."""
    return max(2, min(16, 2 * usable_cpus()))


# (st_dev, st_ino, packed listing, sorted subfolder names) of one folder.
FolderStamp = tuple[int, int, bytes, tuple[str, ...]]


class TreeRecord:
    """What the walk saw in every folder, while the tree stays simple (see above)."""

    __slots__ = ("ok", "paths", "stamps", "files", "racy_before", "limit")

    def __init__(self, racy_before: int, limit: int = MEMO_LIMIT, enabled: bool = True) -> None:
        self.ok = enabled and available()
        self.paths: list[str] = []
        self.stamps: list[FolderStamp] = []
        self.files = 0
        self.racy_before = racy_before
        self.limit = limit

    def spoil(self) -> None:
        """Something the walk had to judge: this tree keeps no memo."""
        if self.ok:
            self.ok = False
            self.paths = []
            self.stamps = []

    def folder(
        self,
        path: str,
        key: tuple[int, int],  # (st_dev, st_ino)
        parts: Sequence[Sequence[tuple[str, int, int]]],
        subdirs: Sequence[str],  # their paths
    ) -> None:
        if not self.ok:
            return
        n = sum(map(len, parts))
        self.files += n
        if self.files > self.limit:
            self.spoil()
            return
        if n and max(max(f[2] for f in part) for part in parts if part) >= self.racy_before:
            self.spoil()
            return
        packed = b"".join([_fastlist.pack(part) for part in parts])
        names = sorted(os.path.basename(d) for d in subdirs)
        self.paths.append(path)
        self.stamps.append((key[0], key[1], packed, tuple(names)))


def code_stamp() -> list[tuple[str, int, int]]:
    here = os.path.dirname(__file__)
    out = []
    for name in _RESULT_MODULES:
        try:
            st = os.stat(os.path.join(here, name))
        except OSError:
            continue
        out.append((name, st.st_size, st.st_mtime_ns))
    return out


def memo_key(roots: Sequence[Path], sig: str, patterns: Sequence[PatternLike]) -> bytes:
    """Which scan a memo answers: the same roots, tag set and routing patterns."""
    parts = [os.fsencode(r) for r in roots]
    parts.append(sig.encode())
    parts.extend(f"{p.tag}\x1e{p.regex}".encode("utf-8", "surrogateescape") for p in patterns)
    return b"\0".join(parts)


# A folder of plain files only, as check_tree read it: (st_dev, st_ino, packed).
Leaf = tuple[int, int, bytes]


def check(paths: list[str], stamps: list[FolderStamp]) -> dict[str, Leaf] | None:
    """None if every recorded folder reads exactly as it did. Else the folders of
    plain files just read, by path, so the walk that follows need not list them
    again (it would take longer: one folder at a time)."""
    now = _fastlist.check_tree(paths, check_threads())
    same = len(now) == len(stamps)
    for seen, then in zip(now, stamps, strict=False):
        if (
            seen is None
            or seen[2] != then[2]
            or seen[0] != then[0]
            or seen[1] != then[1]
            or tuple(sorted(seen[3])) != then[3]
        ):
            same = False
            break
    if same:
        return None
    return {
        path: (seen[0], seen[1], seen[2])
        for path, seen in zip(paths, now, strict=True)
        if seen is not None and not seen[3]
    }


# --- the result, packed -------------------------------------------------------------


class PackedFiles:
    """A scan's files as stored in a memo: counted and sized, unpacked on first use.

    Quacks like ``PendingFiles`` (``len``, ``size``, ``insts``, ``first()``,
    ``build()``), so ``Scan`` and ``ScanBatch`` hold it among their pending chunks.
    """

    __slots__ = ("blob", "count", "size", "_parts", "_refs")

    def __init__(self, blob: bytes, count: int, size: int) -> None:
        self.blob = blob
        self.count = count
        self.size = size
        self._parts: tuple[list[PendingFiles], list[FileRef]] | None = None
        self._refs: list[FileRef] | None = None

    def __len__(self) -> int:
        return self.count

    def _unpack(self) -> tuple[list[PendingFiles], list[FileRef]]:
        if self._parts is None:
            chunks, columns = marshal.loads(self.blob)
            pending = [PendingFiles(*c) for c in chunks]
            refs = _refs(columns) if columns else []
            self._parts = (pending, refs)
        return self._parts

    @property
    def insts(self) -> list[int]:
        pending, refs = self._unpack()
        out = [i for c in pending for i in c.insts]
        out.extend(f.instance_number for f in refs if f.instance_number is not None)
        return out

    def first(self) -> tuple[int, str]:
        pending, refs = self._unpack()
        candidates = [c.first() for c in pending if len(c)]
        candidates += [file_order(f) for f in refs]
        return min(candidates)

    def build(self) -> list[FileRef]:
        if self._refs is None:
            pending, refs = self._unpack()
            built = [f for c in pending for f in c.build()]
            built.extend(refs)
            self._refs = built
        return self._refs


def _pack_files(scan: Scan) -> tuple[bytes, int, int]:
    """A scan's files without building the ones still pending."""
    chunks: list[tuple[Any, ...]] = []
    refs: list[FileRef] = list(scan._files)
    for chunk in scan._pending or ():
        if isinstance(chunk, PendingFiles) and chunk.refs is None:
            stamps, sops, insts = list(chunk.stamps), list(chunk.sops), list(chunk.insts)
            chunks.append((chunk.prefix, stamps, sops, insts, chunk.shared))
        else:
            refs.extend(chunk.build())
    columns = _columns(refs) if refs else None
    return marshal.dumps((chunks, columns)), scan.file_count, scan.size


# FileRef's fields after (path, size, mtime, SOPInstanceUID), in FileRef's order:
# those the files of one scan usually share.
_SHARED_FIELDS: tuple[str, ...] = FileRef.__slots__[4:]


def _columns(refs: list[FileRef]) -> list[Any]:
    """FileRef fields as columns. A column whose value every file shares (transfer
    syntax, series...) is stored once; folder texts are shared objects, which
    marshal writes once and then refers to."""
    same: dict[str, str] = {}
    one = same.setdefault
    folders: list[str] = []
    names: list[str] = []
    for path in [f.path_str for f in refs]:
        folder, sep, name = path.rpartition(os.sep)
        folders.append(one(folder + sep, folder + sep))
        names.append(name)
    columns: list[Any] = [folders, names]
    columns += [list(map(attrgetter(a), refs)) for a in FileRef.__slots__[1:4]]
    for attr in _SHARED_FIELDS:
        column = list(map(attrgetter(attr), refs))
        columns.append((column[0],) if column.count(column[0]) == len(column) else column)
    return columns


def _refs(columns: list[Any]) -> list[FileRef]:
    folders, names, *rest = columns
    n = len(names)
    paths = [a + b for a, b in zip(folders, names, strict=True)]
    full = [c * n if isinstance(c, tuple) else c for c in rest]
    return [FileRef(*row) for row in zip(paths, *full, strict=True)]


def _problem(p: Problem) -> tuple[str, str, str, str]:
    return (p.path, p.kind, p.detail, p.severity)


def pack_result(sessions: list[Session], problems: list[Problem], progress: ScanProgress) -> bytes:
    out_sessions = []
    for s in sessions:
        scans = []
        for key, sc in s.scans.items():
            blob, count, size = _pack_files(sc)
            scans.append(
                (
                    key,
                    sc.series_instance_uid,
                    sc.study_instance_uid,
                    sc.series_number,
                    sc.series_description,
                    sc.modality,
                    sc.sop_class_uid,
                    [_problem(p) for p in sc.problems],
                    set(sc.modalities),
                    dict(sc.fields),
                    blob,
                    count,
                    size,
                )
            )
        out_sessions.append(
            (
                s.study_instance_uid,
                s.patient_id,
                s.patient_name,
                s.study_date,
                s.study_time,
                s.study_description,
                s.accession_number,
                list(s.modalities),
                s.modality,
                None if s.root is None else str(s.root),
                [(r.project, r.subject, r.session, r.source) for r in s.routing],
                scans,
                [_problem(p) for p in s.problems],
                dict(s.fields),
                set(s.patient_ids),
                set(s.patient_names),
            )
        )
    counts = (progress.files_seen, progress.files_parsed, progress.files_dicom, progress.problems)
    return marshal.dumps((out_sessions, [_problem(p) for p in problems], counts))


def _unproblem(t: tuple[str, str, str, str]) -> Problem:
    return Problem(t[0], t[1], t[2], t[3])  # type: ignore[arg-type]


def unpack_result(blob: bytes) -> tuple[list[Session], list[Problem], tuple[int, int, int, int]]:
    out_sessions, problems, counts = marshal.loads(blob)
    sessions = []
    # Both tuples open with the constructor's first arguments in order (pack_result).
    for *head, root, routing, scans, s_problems, fields, patient_ids, patient_names in out_sessions:
        session = Session(*head)
        session.root = None if root is None else Path(root)
        session.routing = [RoutingProposal(*r) for r in routing]
        session.problems = [_unproblem(p) for p in s_problems]
        session.fields = fields
        session.patient_ids = patient_ids
        session.patient_names = patient_names
        for key, *scan_head, sc_problems, mods, sc_fields, files, count, size in scans:
            scan = Scan(*scan_head)
            scan.problems = [_unproblem(p) for p in sc_problems]
            scan.modalities = mods
            scan.fields = sc_fields
            if count:
                scan.add_pending(PackedFiles(files, count, size))
                scan.sort_files()
            session.scans[key] = scan
        sessions.append(session)
    seen, parsed, dicom, n_problems = counts
    return sessions, [_unproblem(p) for p in problems], (seen, parsed, dicom, n_problems)


def pack_memo(record: TreeRecord, result: bytes) -> bytes:
    return marshal.dumps((MEMO_VERSION, code_stamp(), record.paths, record.stamps, result))


def open_memo(blob: bytes | memoryview) -> tuple[list[str], list[FolderStamp], bytes] | None:
    """The recorded folders and the packed result, if this code wrote the memo."""
    try:
        version, stamp, paths, stamps, result = marshal.loads(blob)
    except (ValueError, EOFError, TypeError):
        return None
    if version != MEMO_VERSION or stamp != code_stamp():
        return None
    return paths, stamps, result
