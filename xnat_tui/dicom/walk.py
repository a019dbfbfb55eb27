"""Walk folder trees: each folder listed once, no symlink loops.

Folders are identified by (device, inode), so a symlink back to an ancestor, two
symlinks to one folder, or overlapping roots (``scan a a/b``) never visit a folder
twice. Files reached through a symlink or carrying several hard links are also
de-duplicated by inode; plain files are not tracked (that would cost memory per file
on trees of a million files).

Folders are listed by the small C extension ``_fastlist`` when it was compiled at
install time. Rescanning an unchanged tree is mostly this walk, and in Python every
file costs a DirEntry, a stat_result and a tuple (~3.5 us; stat in threads was
measured slower, the GIL serialises them). ``_fastlist.list_dir`` does readdir and
lstat with the GIL released and hands back finished (name, size, mtime_ns) tuples:
30,000 files in ~68 ms instead of ~110 ms, of which ~60 ms is the kernel's own
readdir + lstat (measured in plain C; two C threads were slower still). It only
settles folders holding nothing but regular files with one link (the leaf folders
that make up the bulk of a DICOM tree); any other folder is listed again by the
os.scandir code below, which stays the single source of policy and the whole walk
when the extension is missing or ``XNAT_TUI_PURE_WALK=1``. Both give the same events
in the same order.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG
from typing import TYPE_CHECKING, Any

from xnat_tui.dicom.model import Problem, ProblemKind

if TYPE_CHECKING:
    from xnat_tui.dicom.memo import Leaf, TreeRecord

_ListDir = Callable[[str], tuple[list[tuple[str, int, int]], list[str]]]


def _load_extension() -> Any:
    try:
        from xnat_tui.dicom import _fastlist
    except ImportError:  # not compiled (no C compiler at install time): pure Python
        return None
    return _fastlist


# The compiled _fastlist module (also used by memo.py), or None.
FASTLIST: Any = _load_extension()
_c_list_dir: _ListDir | None = None if FASTLIST is None else FASTLIST.list_dir


def pure_walk() -> bool:
    """``XNAT_TUI_PURE_WALK=1``: leave the C extension aside (read per call, so tests
    can compare both walks in one process)."""
    return os.environ.get("XNAT_TUI_PURE_WALK", "") not in ("", "0")


# Folders that operating systems and archivers leave behind; never DICOM.
SKIP_DIRS = {
    "__MACOSX": "macOS archive metadata folder",
    ".Trashes": "macOS trash folder",
    ".Spotlight-V100": "macOS search index",
    ".fseventsd": "macOS file-system event log",
    ".TemporaryItems": "macOS temporary items",
    "$RECYCLE.BIN": "Windows recycle bin",
    "System Volume Information": "Windows system folder",
    ".git": "git repository metadata",
    ".svn": "Subversion metadata",
    ".hg": "Mercurial metadata",
}


@dataclass(slots=True)
class DirListing:
    """The regular files of one folder: (name, size, mtime_ns).

    ``complete`` is False when only some files of the folder were named on the
    command line (then the cache must not forget the folder's other files).
    """

    path: str
    files: list[tuple[str, int, int]] = field(default_factory=list)
    complete: bool = True
    # A huge folder comes in several parts (progress keeps moving while it is
    # listed); ``last`` marks the final part of a folder.
    last: bool = True


# Files per DirListing part: a folder of 10^5 files is not listed in silence.
PART = 2000

_IFREG = stat.S_IFREG >> 12
# List folders through a descriptor (see ``_list``) where the platform can.
_BY_FD = os.scandir in os.supports_fd and hasattr(os, "O_DIRECTORY")
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)


WalkEvent = DirListing | Problem


def _problem(path: str, kind: str, detail: str, severity: str = "error") -> Problem:
    return Problem(path=path, kind=kind, detail=detail, severity=severity)  # type: ignore[arg-type]


def walk(
    roots: Sequence[str | Path],
    cancel: threading.Event | None = None,
    record: TreeRecord | None = None,
    prelisted: dict[str, Leaf] | None = None,
) -> Generator[WalkEvent, None, None]:
    """Yield one DirListing per folder (depth first, names sorted) and problems.

    ``record`` notes what every folder held while the tree is simple (memo.py); any
    judgment call of this walk (a link, a problem, a file named directly) spoils it.
    ``prelisted``: folders of plain files only, just read by ``memo.check`` (in
    threads), as (st_dev, st_ino, packed listing); they are not listed again.
    """
    c_list_dir = None if pure_walk() else _c_list_dir
    if record is None:
        from xnat_tui.dicom.memo import TreeRecord

        record = TreeRecord(0, enabled=False)
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[tuple[int, int]] = set()
    loose: dict[str, DirListing] = {}  # files named directly as roots, by folder

    def file_once(st: os.stat_result, linked: bool) -> bool:
        if not linked and st.st_nlink <= 1:
            return True
        key = (st.st_dev, st.st_ino)
        if key in seen_files:
            return False
        seen_files.add(key)
        return True

    stack: list[str] = []
    for root in roots:
        path = os.path.abspath(os.fspath(root))
        try:
            st = os.stat(path)
        except FileNotFoundError:
            record.spoil()
            yield _problem(path, ProblemKind.UNREADABLE, "does not exist")
            continue
        except OSError as exc:
            record.spoil()
            yield _problem(path, ProblemKind.UNREADABLE, f"cannot access: {exc.strerror}")
            continue
        if stat.S_ISDIR(st.st_mode):
            stack.append(path)
            continue
        record.spoil()
        if stat.S_ISREG(st.st_mode):
            if file_once(st, os.path.islink(path)):
                parent, name = os.path.split(path)
                listing = loose.setdefault(parent, DirListing(parent, complete=False))
                listing.files.append((name, st.st_size, st.st_mtime_ns))
        else:
            yield _problem(path, ProblemKind.NOT_DICOM, "not a regular file", "info")
    yield from loose.values()

    # Depth first from each root in order; a root already visited inside an earlier
    # one is skipped by the inode check.
    # Symlinked folders wait until every real folder is done, so a folder is reported
    # under its real path and the link is the one called a duplicate.
    deferred: list[str] = []
    for start in [*stack, None]:
        todo = [start] if start is not None else deferred
        while todo:
            if cancel is not None and cancel.is_set():
                record.spoil()
                return
            path = todo.pop()
            leaf = prelisted.pop(path, None) if prelisted and c_list_dir is not None else None
            if leaf is not None:
                key = (leaf[0], leaf[1])
            else:
                try:
                    st = os.stat(path)
                except OSError as exc:
                    record.spoil()
                    yield _problem(path, ProblemKind.UNREADABLE, f"cannot access: {exc.strerror}")
                    continue
                key = (st.st_dev, st.st_ino)
            if key in seen_dirs:
                record.spoil()
                if os.path.islink(path):
                    yield _problem(
                        path,
                        ProblemKind.SYMLINK_LOOP,
                        "symbolic link to a folder already scanned: skipped",
                        "info",
                    )
                continue
            seen_dirs.add(key)
            already = set(f[0] for f in loose[path].files) if path in loose else set()
            if leaf is not None:
                # What list_dir would have given: plain files only, in readdir order.
                files: list[tuple[str, int, int]] = FASTLIST.unpack(leaf[2])
                record.folder(path, key, [files], ())
                yield from _plain(path, files, already)
                continue
            if c_list_dir is not None:
                try:
                    files, others = c_list_dir(path)
                except OSError as exc:
                    record.spoil()
                    yield _cannot_list(path, exc)
                    continue
                if not others:
                    record.folder(path, key, [files], ())
                    yield from _plain(path, files, already)
                    continue
                # Subfolders, links, hard links, FIFOs or a file that vanished:
                # the general code lists the folder again and settles every entry.
                # Such folders are few (those above the leaves), so the second
                # listing costs little, and the policy lives in one place.
            subdirs: list[str] = []
            fd = -1
            try:
                if _BY_FD:
                    fd = os.open(path, _DIR_FLAGS)
                with os.scandir(fd if fd >= 0 else path) as it:
                    entries = list(it)  # file order is irrelevant; subfolders are sorted
            except OSError as exc:
                _close(fd)
                record.spoil()
                yield _cannot_list(path, exc)
                continue
            parts: list[list[tuple[str, int, int]]] = []
            try:
                for event in _list(path, entries, already, subdirs, deferred, file_once, record):
                    if isinstance(event, DirListing):
                        parts.append(event.files)
                    else:
                        record.spoil()
                    yield event
            finally:
                _close(fd)
            record.folder(path, key, parts, subdirs)
            subdirs.sort(reverse=True)
            todo.extend(subdirs)


def _cannot_list(path: str, exc: OSError) -> Problem:
    if isinstance(exc, PermissionError):
        return _problem(path, ProblemKind.UNREADABLE, "cannot list folder: permission denied")
    return _problem(path, ProblemKind.UNREADABLE, f"cannot list folder: {exc.strerror}")


def _searchable(path: str) -> bool:
    """False when the folder's names can be read but nothing inside can be reached
    (r without x, e.g. mode 644): asked only once an entry's stat was refused."""
    try:
        os.stat(os.path.join(path, "."))
    except PermissionError:
        return False
    except OSError:
        pass
    return True


def _cannot_enter(path: str, entries: int) -> Problem:
    return _problem(
        path,
        ProblemKind.UNREADABLE,
        f"cannot enter folder: permission denied (its names can be listed but not "
        f"reached: read without search permission); its {entries} entries are not scanned",
    )


def _stat_refused(
    exc: OSError, folder: str, path: str, entries: int, checked: bool
) -> Generator[Problem, None, bool]:
    """The problem of an entry (``path``) whose stat was refused. True when it is the
    folder's instead: at its first refusal by permission (``checked`` false) the folder is
    asked whether anything in it can be reached, and if not, nothing of it can be read —
    one problem for the folder (no listing, no subfolders), as when it cannot be listed."""
    if isinstance(exc, PermissionError) and not checked and not _searchable(folder):
        yield _cannot_enter(folder, entries)
        return True
    yield _problem(path, ProblemKind.UNREADABLE, f"cannot stat: {exc.strerror}")
    return False


def _plain(
    path: str, files: list[tuple[str, int, int]], already: set[str]
) -> Generator[DirListing, None, None]:
    """A folder of plain files only, as listed by ``_fastlist``: the listing(s) that
    ``_list`` gives for the same folder, so both walks are interchangeable.

    Up to PART entries ``_list`` takes its one-block path (one listing); above, its
    per-entry loop cuts a part at every PART files kept, then a last part, possibly
    empty.
    """
    entries = len(files)
    if already:
        files = [f for f in files if f[0] not in already]
    if entries <= PART:
        yield DirListing(path, files)
        return
    full = len(files) // PART
    for i in range(full):
        yield DirListing(path, files[i * PART : (i + 1) * PART], last=False)
    yield DirListing(path, files[full * PART :])


def _close(fd: int) -> None:
    if fd >= 0:
        os.close(fd)


def _list(
    path: str,
    entries: list[os.DirEntry[str]],
    already: set[str],
    subdirs: list[str],
    deferred: list[str],
    file_once: Callable[[os.stat_result, bool], bool],
    record: TreeRecord,
) -> Generator[WalkEvent, None, None]:
    """Sort one folder's entries into files (with size and mtime) and subfolders.

    When the folder was opened by descriptor, ``entry.stat()`` is an ``fstatat``
    relative to it, so the kernel does not resolve the full path again for every
    file (measured: a quarter of the stat cost). ``entry.path`` is then only the
    name, so paths are built from ``prefix``.
    """
    prefix = os.path.join(path, "")
    listing = DirListing(path)
    count = len(entries)
    if len(entries) <= PART:
        # Common case in bulk: plain files (one link) answered by two list
        # comprehensions; the rest (folders, links, hard links) go the long way.
        try:
            stats = [e.stat(follow_symlinks=False) for e in entries]
        except OSError:
            pass  # something vanished or is unreadable: the long way says which
        else:
            plain = [
                (e.name, st.st_size, st.st_mtime_ns)
                for e, st in zip(entries, stats, strict=True)
                if st.st_mode >> 12 == _IFREG and st.st_nlink == 1
            ]
            if already:
                plain = [f for f in plain if f[0] not in already]
            listing.files = plain
            if len(plain) == len(entries):
                yield listing
                return
            done = {f[0] for f in plain}
            entries = [e for e in entries if e.name not in done]
    append = listing.files.append
    checked = False  # whether the folder was found enterable after a refused stat
    for entry in entries:
        # Fast path for the common case, a plain regular file (type known from
        # the listing, so no extra syscall before the stat we need anyway).
        try:
            is_file = entry.is_file(follow_symlinks=False)
        except OSError:
            is_file = False  # type unknown and lstat refused: the general code says why
        if is_file:
            try:
                est = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                record.spoil()
                continue  # vanished between listing and stat
            except OSError as exc:
                record.spoil()
                if (yield from _stat_refused(exc, path, prefix + entry.name, count, checked)):
                    subdirs.clear()
                    return
                checked = checked or isinstance(exc, PermissionError)
                continue
            if est.st_nlink > 1:
                record.spoil()
                if not file_once(est, False):
                    continue
            if not already or entry.name not in already:
                append((entry.name, est.st_size, est.st_mtime_ns))
                if len(listing.files) >= PART:
                    listing.last = False
                    yield listing
                    listing = DirListing(path)
                    append = listing.files.append
            continue
        full = prefix + entry.name
        try:
            linked = entry.is_symlink()
            if linked:
                record.spoil()
            if entry.is_dir():
                if entry.name in SKIP_DIRS:
                    yield _problem(
                        full, ProblemKind.JUNK, f"{SKIP_DIRS[entry.name]}: skipped", "info"
                    )
                elif linked:
                    deferred.append(full)
                else:
                    subdirs.append(full)
                continue
            est = entry.stat()
        except FileNotFoundError:
            record.spoil()
            if entry.is_symlink():
                yield _problem(full, ProblemKind.UNREADABLE, "broken symbolic link", "warning")
            continue  # vanished between listing and stat
        except OSError as exc:
            record.spoil()
            if (yield from _stat_refused(exc, path, full, count, checked)):
                subdirs.clear()
                return
            checked = checked or isinstance(exc, PermissionError)
            continue
        record.spoil()  # neither a plain file nor a folder
        if not S_ISREG(est.st_mode):
            continue  # sockets, FIFOs, devices: never DICOM, never opened
        if (linked or est.st_nlink > 1) and not file_once(est, linked):
            continue
        if not already or entry.name not in already:
            append((entry.name, est.st_size, est.st_mtime_ns))
    yield listing
