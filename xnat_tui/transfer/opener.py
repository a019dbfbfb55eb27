"""Where the packer gets a file's bytes: one small abstraction, one kind per source.

Every byte the packer sends is read through :func:`open_in_order` (and
:func:`kind_of` for a single file). A *source kind* knows, for the ``SourceFile``s it
handles, how to check they are still what the scan saw, how to open them as a
readable binary stream, and how to open many at once in the order that costs least.
Two kinds are built in: files on the local disk, and members of archives
(``archive!member``, see ``xnat_tui.dicom.archives``). Another kind (files on a
remote server, for project copy) plugs in with :func:`register`.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Protocol

from xnat_tui.dicom import archives
from xnat_tui.transfer.server import SourceChanged
from xnat_tui.transfer.types import SourceFile

# Scanners store mtime_ns / 1e9; os.stat's float st_mtime may differ in the last bit.
_MTIME_SLACK = 1e-6


class Opened(Protocol):
    """A readable binary stream of one source file's bytes, from its start."""

    def read(self, n: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


class SourceKind(Protocol):
    """One kind of source file (local disk, archive member, remote server...)."""

    def handles(self, f: SourceFile) -> bool:
        """This kind reads ``f``."""
        ...

    def check(self, f: SourceFile, strict: bool) -> None:
        """Right before ``f`` is sent: raise :class:`SourceChanged` when it vanished,
        became unreadable or (``strict``) changed since the scan."""
        ...

    def open(self, f: SourceFile) -> Opened:
        """``f``'s bytes; raises :class:`SourceChanged` when it cannot be opened."""
        ...

    def open_many(self, files: Sequence[SourceFile]) -> Iterator[tuple[int, Opened]]:
        """(index in ``files``, stream) for every file, in the order cheapest to read;
        each stream is read (and closed by the caller) before the next is asked for."""
        ...

    def finished(self, f: SourceFile, fh: Opened, size: int, crc: int, strict: bool) -> None:
        """After ``f`` was read whole (``size`` bytes, CRC-32 ``crc``): raise
        :class:`SourceChanged` when what was read is not what the scan saw."""
        ...


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S")


def _moved(f: SourceFile, mtime_ns: int) -> bool:
    """The mtime differs from the scan's (0.0: the scan did not record one)."""
    return bool(f.mtime) and abs(mtime_ns / 1e9 - f.mtime) > _MTIME_SLACK


def _refused(what: str, exc: OSError, when: str) -> SourceChanged:
    if isinstance(exc, FileNotFoundError):
        return SourceChanged(what, f"vanished {when}")
    if isinstance(exc, PermissionError):
        return SourceChanged(what, "is no longer readable (permission denied)")
    return SourceChanged(what, f"cannot be read: {exc.strerror}")


def _stat(path: str, what: str) -> os.stat_result:
    try:
        return os.stat(path)
    except OSError as exc:
        raise _refused(what, exc, "since it was scanned") from None


class LocalFiles:
    """Files on the local disk."""

    def handles(self, f: SourceFile) -> bool:
        return True

    def check(self, f: SourceFile, strict: bool) -> None:
        path = str(f.path)
        st = _stat(path, path)
        if not strict:
            return
        if st.st_size != f.size:
            raise SourceChanged(
                path, f"changed since it was scanned ({f.size} → {st.st_size} bytes)"
            )
        if _moved(f, st.st_mtime_ns):
            raise SourceChanged(
                path,
                "changed since it was scanned (same size, modified "
                f"{_when(st.st_mtime_ns / 1e9)}; scanned as of {_when(f.mtime)})",
            )

    def open(self, f: SourceFile) -> Opened:
        path = str(f.path)
        try:
            return open(path, "rb")  # noqa: SIM115 - the caller closes it
        except OSError as exc:
            raise _refused(path, exc, "while being read") from None

    def open_many(self, files: Sequence[SourceFile]) -> Iterator[tuple[int, Opened]]:
        for i, f in enumerate(files):
            yield i, self.open(f)

    def finished(self, f: SourceFile, fh: Opened, size: int, crc: int, strict: bool) -> None:
        if not strict:
            return
        fileno = getattr(fh, "fileno", None)
        moved = False
        if fileno is not None:
            moved = _moved(f, os.fstat(fileno()).st_mtime_ns)
        if size != f.size or moved:
            raise SourceChanged(str(f.path), "changed while being read")


_ARCHIVE_ERRORS = (*archives.OPEN_ERRORS, EOFError, zlib.error, ValueError)


class _Pass:
    """A stream handed out by a sequential pass; closing it ends the pass."""

    def __init__(self, stream: IO[bytes], crc: int, done: Callable[[], None]) -> None:
        self._stream = stream
        self._done = done
        self.crc = crc

    def read(self, n: int = -1, /) -> bytes:
        data: bytes = self._stream.read(n)
        return data

    def close(self) -> None:
        self._done()


class ArchiveMembers:
    """Members of archives (``archive!member``), read in place: by random access where
    every level is stored or the member is a deflated zip member, else in one
    sequential pass per archive for all the files asked for at once."""

    def handles(self, f: SourceFile) -> bool:
        text = str(f.path)
        return archives.SEP in text and archives.is_member(text)

    def check(self, f: SourceFile, strict: bool) -> None:
        path = str(f.path)
        outer = archives.outermost(path)
        st = _stat(outer, path)
        if strict and _moved(f, st.st_mtime_ns):
            raise SourceChanged(
                path,
                f"its archive changed since it was scanned (modified "
                f"{_when(st.st_mtime_ns / 1e9)}; scanned as of {_when(f.mtime)})",
            )

    def open(self, f: SourceFile) -> Opened:
        for _i, fh in self.open_many([f]):
            return fh
        raise SourceChanged(str(f.path), "is no longer in its archive")

    def open_many(self, files: Sequence[SourceFile]) -> Iterator[tuple[int, Opened]]:
        passes: dict[str, dict[str, list[int]]] = {}
        for i, f in enumerate(files):
            path = str(f.path)
            try:
                fh = archives.open_random(path)
            except OSError as exc:
                raise SourceChanged(path, f"cannot be read: {exc.strerror or exc}") from None
            except _ARCHIVE_ERRORS as exc:
                raise SourceChanged(path, _why(exc)) from None
            if fh is None:
                passes.setdefault(archives.outermost(path), {}).setdefault(path, []).append(i)
                continue
            yield i, fh
        for outer, wanted in passes.items():
            yield from self._pass(outer, wanted)

    def _pass(self, outer: str, wanted: dict[str, list[int]]) -> Iterator[tuple[int, Opened]]:
        left = dict(wanted)
        members = archives.read_members(list(wanted))
        try:
            while True:
                try:
                    item = next(members, None)
                except OSError as exc:
                    raise SourceChanged(outer, f"cannot be read: {exc.strerror or exc}") from None
                except _ARCHIVE_ERRORS as exc:
                    raise SourceChanged(outer, _why(exc)) from None
                if item is None:
                    break
                path, stream, crc = item
                for i in left.pop(path, []):
                    yield i, _Pass(stream, crc, lambda: None)
        finally:
            members.close()
        if left:
            missing = next(iter(left))
            raise SourceChanged(missing, "is no longer in its archive (or the archive is damaged)")

    def finished(self, f: SourceFile, fh: Opened, size: int, crc: int, strict: bool) -> None:
        if size != f.size:
            raise SourceChanged(
                str(f.path), f"holds {size} bytes in its archive, not the {f.size} scanned"
            )
        expected = getattr(fh, "crc", -1)
        if expected >= 0 and crc != expected:
            raise SourceChanged(str(f.path), "fails its CRC check in the archive (damaged)")


def _why(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return "is no longer in its archive"
    text = str(exc) or type(exc).__name__
    if "crc" in text.lower():
        return f"fails its CRC check in the archive (damaged): {text}"
    return f"cannot be read from its archive (damaged?): {text}"


_KINDS: list[SourceKind] = [ArchiveMembers(), LocalFiles()]


def register(kind: SourceKind) -> None:
    """Add a source kind; it is asked before those registered earlier."""
    _KINDS.insert(0, kind)


def kind_of(f: SourceFile) -> SourceKind:
    for kind in _KINDS:
        if kind.handles(f):
            return kind
    raise LookupError(f"no source kind reads {f.path}")  # LocalFiles reads anything


def exists(path: str) -> bool:
    """The source file can still be read where the scan found it: on disk, inside its
    archive (at any depth) or with whatever registered kind reads it. The one place
    that decides that a journalled file went missing (``transfers retry
    --skip-missing``)."""
    f = SourceFile(Path(path), 0)
    kind = kind_of(f)
    try:
        kind.check(f, False)
    except SourceChanged:
        return False
    if isinstance(kind, ArchiveMembers):
        return archives.has_member(path)
    return True


def open_in_order(
    files: Sequence[SourceFile],
) -> Iterator[tuple[int, SourceFile, SourceKind, Opened]]:
    """Every file once: (index, file, its kind, stream), each kind's files in the order
    that kind reads fastest (local files as given, then archive passes)."""
    groups: dict[int, tuple[SourceKind, list[int]]] = {}
    for i, f in enumerate(files):
        kind = kind_of(f)
        groups.setdefault(id(kind), (kind, []))[1].append(i)
    for kind, indices in groups.values():
        sub = [files[i] for i in indices]
        for j, fh in kind.open_many(sub):
            yield indices[j], sub[j], kind, fh
