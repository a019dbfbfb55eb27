"""Archives (.zip, .tar, .tar.gz/.tgz, .tar.bz2, .tar.xz) read in place, nested to any depth.

Nothing is ever extracted: no byte of an archive reaches the disk. A file inside an
archive is named ``<archive path>!<member name>``, and ``!`` again for every level of
nesting (``/data/bundle.zip!s1.zip!scans/1/a.dcm``); such a path is an ordinary path
everywhere else (scan table, journal, ``--json``).

How a member is reached decides what it costs:

* ``window``: its bytes lie as they are (stored zip member, plain tar member, at any
  depth as long as every level is stored) at a known offset of the outermost file: it
  is read like a file, by random access, from any process.
* ``zip``: a deflated member of a zip reached by random access: the zip's central
  directory is read once per process, then the member is inflated as far as needed.
* ``stream``: everything inside a compressed tar (or inside a compressed member): only
  readable during one sequential pass over the archive. The scan examines such a member
  while it passes by; an upload makes one pass per series, stopping after the last
  member it needs.

Bad archives never stop a scan: a corrupt or truncated archive, an encrypted member,
a name with ``..`` or an absolute path, a link, a duplicate name, a member whose
declared size or compression ratio is past the limits (zip bombs), or a corrupt archive
inside an archive, each is a ``Problem`` naming the archive and the member.
"""

from __future__ import annotations

import atexit
import io
import os
import stat
import struct
import tarfile
import threading
import zipfile
import zlib
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, cast

from xnat_tui.dicom.model import Problem, ProblemKind

SEP = "!"

# (suffix, kind), longest first; compared case-insensitively.
_SUFFIXES: tuple[tuple[str, str], ...] = (
    (".tar.bz2", "tbz2"),
    (".tar.gz", "tgz"),
    (".tar.xz", "txz"),
    (".tbz2", "tbz2"),
    (".tgz", "tgz"),
    (".txz", "txz"),
    (".tar", "tar"),
    (".zip", "zip"),
)
_TAR_MODES = {"tar": "r|", "tgz": "r|gz", "tbz2": "r|bz2", "txz": "r|xz"}
# XNAT's importer takes these names (case-sensitive regexes, xnat-api-2.md §C.3).
FORMAT_NAMES = {"zip": "zip", "tar": "tar", "tgz": "tar.gz", "tbz2": "tar.bz2", "txz": "tar.xz"}


# The last three characters of every suffix: most names (every .dcm) are ruled out by
# one set lookup, not eight endswith calls (the walk asks this of every file).
_ENDINGS = frozenset(suffix[-3:] for suffix, _kind in _SUFFIXES)


def archive_kind(name: str) -> str | None:
    """``zip``/``tar``/``tgz``/``tbz2``/``txz`` from the file name (any case), or None."""
    if name[-3:].lower() not in _ENDINGS:
        return None
    lower = name.lower()
    for suffix, kind in _SUFFIXES:
        if lower.endswith(suffix) and len(lower) > len(suffix):
            return kind
    return None


def archive_stem(name: str) -> str:
    """The archive's file name without its archive extension (``{archive}``)."""
    base = name.rsplit("/", 1)[-1].rsplit(os.sep, 1)[-1]
    lower = base.lower()
    for suffix, _kind in _SUFFIXES:
        if lower.endswith(suffix):
            return base[: -len(suffix)]
    return base


def join(container: str, member: str) -> str:
    return f"{container}{SEP}{member}"


def split(path: str) -> tuple[str, list[str]] | None:
    """``(outermost archive file, [member, nested member, ...])`` or None for a plain path.

    A ``!`` only separates levels right after an archive name, so a member named
    ``a!b.dcm`` stays whole.
    """
    if SEP not in path:
        return None
    parts = path.split(SEP)
    levels: list[str] = []
    current = parts[0]
    for part in parts[1:]:
        if archive_kind(current) is not None and part:
            levels.append(current)
            current = part
        else:
            current = current + SEP + part
    if not levels:
        return None
    levels.append(current)
    return levels[0], levels[1:]


def is_member(path: str) -> bool:
    return split(path) is not None


def outermost(path: str) -> str:
    """The file on disk that holds ``path`` (itself for a plain path)."""
    parts = split(path)
    return path if parts is None else parts[0]


def display_folder(path: str) -> str:
    """Where a file came from: its folder, or ``archive!folder`` inside an archive."""
    return path.rpartition("/")[0] or path


@dataclass(frozen=True)
class Limits:
    """What an archive may claim before it is refused (zip bombs, hostile archives)."""

    max_member: int = 8 << 30  # bytes of one member
    max_ratio: int = 200  # uncompressed / compressed, for members over ``ratio_floor``
    ratio_floor: int = 1 << 20
    max_total: int = 1 << 40  # bytes inflated from one top-level archive
    max_depth: int = 8  # archives inside archives
    max_members: int = 2_000_000


LIMITS = Limits()
# A member read during a sequential pass is held whole up to this size (so every check
# the scanner makes on a file is made on it); above, its head and tail are kept.
HOLD = 16 << 20
HEAD = 4 << 20
TAIL = 64 << 10
_CHUNK = 1 << 20


@dataclass(slots=True)
class Entry:
    """One regular member found in an archive.

    ``access`` is ``window`` (``offset`` into the outermost file), ``zip`` (open it by
    path: a deflated member of a random-access zip) or ``stream`` (``stream`` is
    readable now, until the next entry is asked for).
    """

    path: str
    size: int
    access: str
    offset: int = -1
    crc: int = -1
    stream: IO[bytes] | None = None


def _problem(path: str, kind: str, detail: str, severity: str = "error") -> Problem:
    return Problem(path=path, kind=kind, detail=detail, severity=severity)  # type: ignore[arg-type]


def clean_name(name: str) -> str:
    """A member name as shown and looked up: without leading ``./`` (tar writes them)."""
    while name.startswith("./"):
        name = name[2:]
    return name


def common(a: str, b: str) -> str:
    """The deepest folder (or archive level) holding both paths; ``!`` counts as a
    separator, so two members of one archive share ``archive.zip!folder``."""
    if a == b:
        return a
    pa, pb = _parts(a), _parts(b)
    n = 0
    for x, y in zip(pa, pb, strict=False):
        if x != y:
            break
        n += 1
    out = "".join(pa[:n])
    return out.rstrip("/" + SEP) or (out[:1] if out else os.path.commonpath([a, b]))


def _parts(path: str) -> list[str]:
    """``/a/b.zip!c/d`` → ``['/', 'a/', 'b.zip!', 'c/', 'd']``."""
    out: list[str] = []
    cur = ""
    for ch in path:
        cur += ch
        if ch == "/" or (ch == SEP and archive_kind(cur[:-1].rsplit("/", 1)[-1]) is not None):
            out.append(cur)
            cur = ""
    if cur:
        out.append(cur)
    return out


def _refused(name: str, seen: set[str]) -> str | None:
    """Why a member is not used (its name, or a second member of that name); the
    first of each name is noted in ``seen``."""
    why = _name_problem(name)
    if why is None and name in seen:
        why = "duplicate member name in the archive: only the first copy is used"
    seen.add(name)
    return why


def _name_problem(name: str) -> str | None:
    """Why a member name must not be used (never written anywhere, but never trusted)."""
    clean = name.replace("\\", "/")
    if clean.startswith("/") or (len(clean) > 1 and clean[1] == ":"):
        return "absolute path in the archive: skipped"
    if ".." in clean.split("/"):
        return "member name climbs out of the archive ('..'): skipped"
    if "\0" in name:
        return "member name holds a NUL character: skipped"
    return None


class _Window(io.RawIOBase):
    """Bytes ``[offset, offset + size)`` of a seekable file, as a seekable file.

    A window on a window is a window on the first file; on a real file it reads with
    ``os.pread`` (no shared file position: threads may read side by side)."""

    def __init__(self, f: Any, offset: int, size: int) -> None:
        super().__init__()
        if isinstance(f, _Window):
            f, offset = f._f, f._start + offset
        self._f: Any = f
        self._start = offset
        self._size = size
        self._pos = 0
        try:
            self._fd: int = f.fileno()
        except (AttributeError, OSError, ValueError):
            self._fd = -1

    @property
    def start(self) -> int:
        """Where the window starts in the first file."""
        return self._start

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence == 1:
            pos += self._pos
        elif whence == 2:
            pos += self._size
        self._pos = max(0, pos)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, n: int = -1) -> bytes:
        room = self._size - self._pos
        if room <= 0:
            return b""
        if n is None or n < 0 or n > room:
            n = room
        if self._fd >= 0:
            data = os.pread(self._fd, n, self._start + self._pos)
        else:
            self._f.seek(self._start + self._pos)
            data = self._f.read(n)
        self._pos += len(data)
        return data

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


class _Counting:
    """Counts compressed bytes read from the file under a compressed tar (ratio limit)."""

    def __init__(self, f: Any) -> None:
        self._f = f
        self.count = 0
        self.at_end = False  # a read came back short: the file has no more bytes

    def read(self, n: int = -1) -> bytes:
        data: bytes = self._f.read(n)
        self.count += len(data)
        if n < 0 or len(data) < n:
            self.at_end = True
        return data


# What a complete compressed tar may still hold after its end-of-archive blocks (record
# padding): read to confirm the compressed stream ends there. More than this is not
# padding, and is left unread.
_TRAILER_LIMIT = 1 << 20


def _check_stream_end(tar: tarfile.TarFile, counted: _Counting) -> None:
    """Raise EOFError when the compressed stream under ``tar`` stops before its end
    marker: tarfile takes a cut at a header boundary for the end of the archive."""
    stream = tar.fileobj
    decompressor = getattr(stream, "cmp", None)
    if decompressor is None or not hasattr(decompressor, "eof"):
        return
    drained = 0
    while not decompressor.eof and drained <= _TRAILER_LIMIT:
        chunk = stream.read(64 * 1024) if stream is not None else b""
        if not chunk:
            break
        drained += len(chunk)
    if not decompressor.eof and counted.at_end:
        raise EOFError("the compressed stream ends before its end marker")


class ArchiveDamaged(Exception):
    """The archive (or one level of it) cannot be read any further."""


# What opening a member can raise: zipfile's NotImplementedError is its word for
# strong encryption or a compression method it lacks (a damaged header can claim either).
OPEN_ERRORS = (KeyError, ArchiveDamaged, zipfile.BadZipFile, tarfile.TarError, NotImplementedError)


class _Walk:
    """One traversal of an archive, outermost file first."""

    def __init__(self, path: str, limits: Limits = LIMITS) -> None:
        self.path = path
        self.limits = limits
        self.inflated = 0
        self.members = 0

    def run(self) -> Iterator[Entry | Problem]:
        kind = archive_kind(self.path)
        try:
            fh = open(self.path, "rb")  # noqa: SIM115 - closed below, after the generator
        except OSError as exc:
            yield _problem(
                self.path, ProblemKind.UNREADABLE, f"cannot open archive: {exc.strerror}"
            )
            return
        with fh:
            yield from self._level(fh, kind or "", self.path, 1, base=0)

    def _level(
        self, f: Any, kind: str, where: str, depth: int, base: int | None
    ) -> Iterator[Entry | Problem]:
        """One archive level; ``base`` is its offset in the outermost file when the level
        lies there as-is (None inside anything compressed); ``f`` is seekable unless
        ``base`` is None and the level came from a stream."""
        if depth > self.limits.max_depth:
            yield _problem(
                where,
                ProblemKind.CORRUPT,
                f"archives nested more than {self.limits.max_depth} deep: not read",
            )
            return
        try:
            if kind == "zip":
                if _seekable(f):
                    yield from self._zip(f, where, depth, base)
                else:
                    yield from self._zip_stream(f, where, depth)
            elif kind == "tar" and base is not None and _seekable(f):
                yield from self._tar_random(f, where, depth, base)
            else:
                yield from self._tar_stream(f, kind, where, depth)
        except ArchiveDamaged as exc:
            yield _problem(where, ProblemKind.CORRUPT, str(exc))
        except (
            zipfile.BadZipFile,
            tarfile.TarError,
            EOFError,
            zlib.error,
            OSError,
            ValueError,
            NotImplementedError,
            RuntimeError,
        ) as exc:
            yield _problem(where, ProblemKind.CORRUPT, _corrupt_detail(kind, exc))
        except Exception as exc:  # noqa: BLE001 - lzma/bz2 errors and the like
            yield _problem(where, ProblemKind.CORRUPT, _corrupt_detail(kind, exc))

    def _count(self, where: str, size: int) -> str | None:
        self.members += 1
        if self.members > self.limits.max_members:
            raise ArchiveDamaged(
                f"more than {self.limits.max_members} members: the rest is not read"
            )
        if size > self.limits.max_member:
            return (
                f"declares {size} bytes, over the {self.limits.max_member >> 20} MiB limit for "
                "one member (a zip bomb?): skipped"
            )
        self.inflated += size
        if self.inflated > self.limits.max_total:
            raise ArchiveDamaged(
                f"inflates past {self.limits.max_total >> 30} GiB (a zip bomb?): "
                "the rest is not read"
            )
        return None

    # ---------------------------------------------------------------- zip
    def _zip(self, f: Any, where: str, depth: int, base: int | None) -> Iterator[Entry | Problem]:
        try:
            zf = zipfile.ZipFile(f)
        except zipfile.BadZipFile as exc:
            raise ArchiveDamaged(f"not a readable zip archive ({exc})") from None
        seen: set[str] = set()
        for info in zf.infolist():
            name = clean_name(info.filename)
            if info.is_dir():
                continue
            mpath = join(where, name)
            why = _refused(name, seen)
            if why is not None:
                yield _problem(mpath, ProblemKind.CORRUPT, why, "warning")
                continue
            if info.flag_bits & 0x1:
                yield _problem(mpath, ProblemKind.UNREADABLE, "encrypted member: cannot be read")
                continue
            mode = (info.external_attr >> 16) & 0o170000
            if mode and stat.S_ISLNK(mode):
                yield _problem(
                    mpath, ProblemKind.NOT_DICOM, "symbolic link in the archive: skipped", "info"
                )
                continue
            too_big = self._count(mpath, info.file_size)
            if too_big is None and info.compress_type != zipfile.ZIP_STORED:
                too_big = _ratio_problem(info.file_size, info.compress_size, self.limits)
            if too_big is not None:
                yield _problem(mpath, ProblemKind.CORRUPT, too_big)
                continue
            nested = archive_kind(name)
            if info.compress_type == zipfile.ZIP_STORED:
                offset = _zip_data_offset(f, info)
                if nested is not None:
                    window = _Window(f, offset, info.file_size)
                    inner = None if base is None else base + offset
                    yield from self._level(window, nested, mpath, depth + 1, inner)
                    continue
                if base is not None:
                    yield Entry(mpath, info.file_size, "window", base + offset, info.CRC)
                else:
                    yield Entry(
                        mpath,
                        info.file_size,
                        "stream",
                        -1,
                        info.CRC,
                        cast(IO[bytes], _Window(f, offset, info.file_size)),
                    )
                continue
            if nested is not None:
                with zf.open(info) as member:
                    yield from self._level(member, nested, mpath, depth + 1, None)
                continue
            if base is not None:
                yield Entry(mpath, info.file_size, "zip", -1, info.CRC)
            else:
                with zf.open(info) as member:
                    yield Entry(mpath, info.file_size, "stream", -1, info.CRC, member)

    def _zip_stream(self, f: Any, where: str, depth: int) -> Iterator[Entry | Problem]:
        seen: set[str] = set()
        for raw_name, size, crc, stream in _ZipStream(f, self.limits).entries():
            name = clean_name(raw_name)
            mpath = join(where, name)
            if name.endswith("/"):
                continue
            why = _refused(name, seen)
            if why is not None:
                yield _problem(mpath, ProblemKind.CORRUPT, why, "warning")
                continue
            if stream is None:  # encrypted
                yield _problem(mpath, ProblemKind.UNREADABLE, "encrypted member: cannot be read")
                continue
            if size >= 0:
                too_big = self._count(mpath, size)
                if too_big is not None:
                    yield _problem(mpath, ProblemKind.CORRUPT, too_big)
                    continue
            nested = archive_kind(name)
            if nested is not None:
                yield from self._level(stream, nested, mpath, depth + 1, None)
                continue
            if size < 0:
                # Sizes only after the data (a data descriptor): read it to know.
                held = _hold(stream, self.limits.max_member)
                yield Entry(mpath, held.size, "stream", -1, crc, held)
                continue
            yield Entry(mpath, size, "stream", -1, crc, stream)

    # ---------------------------------------------------------------- tar
    def _tar_random(self, f: Any, where: str, depth: int, base: int) -> Iterator[Entry | Problem]:
        f.seek(0)
        with tarfile.open(fileobj=f, mode="r:") as tar:
            yield from self._tar_members(tar, f, where, depth, base)

    def _tar_stream(self, f: Any, kind: str, where: str, depth: int) -> Iterator[Entry | Problem]:
        counted = _Counting(f)
        mode = _TAR_MODES.get(kind, "r|")
        with tarfile.open(fileobj=counted, mode=mode) as tar:  # type: ignore[call-overload]
            try:
                yield from self._tar_members(tar, None, where, depth, None, counted)
                _check_stream_end(tar, counted)
            except (tarfile.TarError, EOFError) as exc:
                # A header that reads as damaged where the file simply stops is a cut.
                decompressor = getattr(tar.fileobj, "cmp", None)
                if counted.at_end and not getattr(decompressor, "eof", True):
                    raise EOFError(f"cut short ({exc})") from exc
                raise

    def _tar_members(
        self,
        tar: tarfile.TarFile,
        f: Any,
        where: str,
        depth: int,
        base: int | None,
        counted: _Counting | None = None,
    ) -> Iterator[Entry | Problem]:
        seen: set[str] = set()
        for m in tar:
            name = clean_name(m.name)
            mpath = join(where, name)
            if m.isdir():
                continue
            if m.issym() or m.islnk():
                yield _problem(
                    mpath,
                    ProblemKind.NOT_DICOM,
                    f"{'symbolic' if m.issym() else 'hard'} link in the archive "
                    f"(to {m.linkname!r}): skipped",
                    "info",
                )
                continue
            if not m.isfile():
                yield _problem(mpath, ProblemKind.NOT_DICOM, "not a regular file: skipped", "info")
                continue
            why = _refused(name, seen)
            if why is not None:
                yield _problem(mpath, ProblemKind.CORRUPT, why, "warning")
                continue
            too_big = self._count(mpath, m.size)
            if too_big is None and counted is not None and self.inflated > self.limits.ratio_floor:
                too_big = _ratio_problem(self.inflated, max(counted.count, 1), self.limits)
                if too_big is not None:
                    raise ArchiveDamaged(f"{too_big.split(':')[0]}: the rest is not read")
            if too_big is not None:
                yield _problem(mpath, ProblemKind.CORRUPT, too_big)
                continue
            nested = archive_kind(name)
            if f is not None and base is not None:
                if nested is not None:
                    window = _Window(f, m.offset_data, m.size)
                    yield from self._level(window, nested, mpath, depth + 1, base + m.offset_data)
                else:
                    yield Entry(mpath, m.size, "window", base + m.offset_data)
                continue
            stream = tar.extractfile(m)
            assert stream is not None
            if nested is not None:
                yield from self._level(stream, nested, mpath, depth + 1, None)
            else:
                yield Entry(mpath, m.size, "stream", -1, -1, stream)


def _seekable(f: Any) -> bool:
    try:
        return bool(f.seekable())
    except (AttributeError, ValueError, OSError):
        return False


def _ratio_problem(size: int, compressed: int, limits: Limits) -> str | None:
    if size <= limits.ratio_floor:
        return None
    ratio = size / max(compressed, 1)
    if ratio > limits.max_ratio:
        return (
            f"compression ratio {ratio:.0f}:1 is over the limit of {limits.max_ratio}:1 "
            "(a zip bomb?): skipped"
        )
    return None


def _corrupt_detail(kind: str, exc: BaseException) -> str:
    what = FORMAT_NAMES.get(kind, "archive")
    text = str(exc) or type(exc).__name__
    lower = text.lower()
    if isinstance(exc, EOFError) or any(
        m in lower for m in ("unexpected end", "truncated", "empty file", "end of")
    ):
        return f"{what} archive is truncated (cut short): the rest is not read ({text})"
    if "crc" in text.lower():
        return f"{what} archive fails its CRC check (damaged): {text}"
    return f"{what} archive is damaged or not a {what} archive: {text}"


_LOCAL = struct.Struct("<IHHHHHIIIHH")


def _zip_data_offset(f: Any, info: zipfile.ZipInfo) -> int:
    """Where a member's data starts (after its local header)."""
    f.seek(info.header_offset)
    raw = f.read(30)
    if len(raw) < 30 or raw[:4] != b"PK\x03\x04":
        raise ArchiveDamaged(f"member {info.filename!r}: its local header is missing (damaged zip)")
    fields = _LOCAL.unpack(raw)
    return int(info.header_offset + 30 + fields[9] + fields[10])


class _Held(io.BytesIO):
    """A member's bytes held in memory (whole) during a sequential pass."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.size = len(data)


class Sparse(io.RawIOBase):
    """A member too big to hold: its head and tail, and its size. Reading the middle
    raises OSError (the scanner then reports the file as unreadable here)."""

    def __init__(self, head: bytes, tail: bytes, size: int) -> None:
        super().__init__()
        self.head, self.tail, self.size = head, tail, size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = 0) -> int:
        self._pos = max(0, pos + (self._pos if whence == 1 else self.size if whence == 2 else 0))
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, n: int = -1) -> bytes:
        end = self.size if n is None or n < 0 else min(self.size, self._pos + n)
        start = self._pos
        if start >= end:
            return b""
        tail_start = self.size - len(self.tail)
        if end <= len(self.head):
            data = self.head[start:end]
        elif start >= tail_start:
            data = self.tail[start - tail_start : end - tail_start]
        elif start < len(self.head) and end > tail_start and len(self.head) >= tail_start:
            data = (self.head + self.tail[len(self.head) - tail_start :])[start:end]
        else:
            raise OSError(f"byte {start} of a {self.size}-byte member is not held in memory")
        self._pos += len(data)
        return data


def hold(stream: IO[bytes], size: int) -> _Held | Sparse:
    """Read a stream member through, keeping it whole (small) or its head and tail."""
    if size <= HOLD:
        return _Held(_read_exactly(stream, size))
    head = _read_exactly(stream, HEAD)
    left = size - HEAD
    tail = b""
    while left > 0:
        block = stream.read(min(_CHUNK, left))
        if not block:
            raise EOFError("member ends before its declared size")
        left -= len(block)
        tail = (tail + block)[-TAIL:]
    return Sparse(head, tail, size)


def _hold(stream: IO[bytes], limit: int) -> _Held:
    parts: list[bytes] = []
    total = 0
    while block := stream.read(_CHUNK):
        total += len(block)
        if total > min(limit, HOLD):
            raise ArchiveDamaged("a member of unknown size is too big to read in place")
        parts.append(block)
    return _Held(b"".join(parts))


def _read_exactly(stream: IO[bytes], n: int) -> bytes:
    parts: list[bytes] = []
    left = n
    while left > 0:
        block = stream.read(min(left, _CHUNK))
        if not block:
            raise EOFError(f"member ends {left} bytes before its declared size")
        parts.append(block)
        left -= len(block)
    return b"".join(parts)


_SIGNATURES = (b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06", b"PK\x06\x06", b"")


class _ZipStream:
    """A zip read front to back from a non-seekable stream (local headers, as Java's
    ``ZipInputStream``): for zips inside compressed archives."""

    def __init__(self, f: Any, limits: Limits) -> None:
        self._f = f
        self._buf = b""
        self._limits = limits

    def _read(self, n: int) -> bytes:
        while len(self._buf) < n:
            block = self._f.read(max(n - len(self._buf), _CHUNK))
            if not block:
                break
            self._buf += block
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def _peek(self, n: int) -> bytes:
        data = self._read(n)
        self._buf = data + self._buf
        return data

    def _more(self) -> bytes:
        if self._buf:
            data, self._buf = self._buf, b""
            return data
        block: bytes = self._f.read(_CHUNK)
        return block

    def entries(self) -> Iterator[tuple[str, int, int, IO[bytes] | None]]:
        while True:
            sig = self._read(4)
            if sig != b"PK\x03\x04":
                if sig in _SIGNATURES:
                    return  # the central directory: every entry has been read
                raise ArchiveDamaged("zip archive is damaged: no local header where one must be")
            raw = self._read(26)
            if len(raw) < 26:
                raise EOFError("zip archive is truncated inside a local header")
            _v, flag, method, _t, _d, crc, csize, size, nlen, xlen = struct.unpack(
                "<HHHHHIIIHH", raw
            )
            name = self._read(nlen).decode("utf-8" if flag & 0x800 else "cp437", "replace")
            extra = self._read(xlen)
            if size == 0xFFFFFFFF or csize == 0xFFFFFFFF:
                size, csize = _zip64_sizes(extra, size, csize)
            described = bool(flag & 0x8)
            if flag & 0x1:
                if described or method != 0:
                    if not described:
                        self._skip(csize)
                        yield name, -1, crc, None
                        continue
                    raise ArchiveDamaged(
                        f"encrypted member {name!r} hides its size: the rest is not read"
                    )
                self._skip(csize)
                yield name, -1, crc, None
                continue
            if method == 0:
                if described:
                    raise ArchiveDamaged(
                        f"stored member {name!r} with a data descriptor cannot be read in order"
                    )
                member = _StoredMember(self, size)
                yield name, size, crc, cast(IO[bytes], member)
                member.drain()
            elif method == 8:
                member_d = _DeflatedMember(self, self._limits)
                yield name, -1 if described else size, crc, cast(IO[bytes], member_d)
                member_d.drain()
                if described:
                    if self._read(4) == b"PK\x07\x08":
                        self._read(4)  # the CRC after the descriptor's signature
                    self._read(8)  # 32-bit sizes, or the first half of zip64 ones
                    if self._peek(4) not in _SIGNATURES:
                        self._read(8)
            else:
                raise ArchiveDamaged(
                    f"member {name!r} uses compression method {method}, not read here"
                )

    def _skip(self, n: int) -> None:
        while n > 0:
            data = self._read(min(n, _CHUNK))
            if not data:
                raise EOFError("zip archive is truncated")
            n -= len(data)


def _zip64_sizes(extra: bytes, size: int, csize: int) -> tuple[int, int]:
    pos = 0
    while pos + 4 <= len(extra):
        hid, hlen = struct.unpack_from("<HH", extra, pos)
        if hid == 1:
            body = extra[pos + 4 : pos + 4 + hlen]
            values = list(struct.unpack_from(f"<{len(body) // 8}Q", body))
            if size == 0xFFFFFFFF and values:
                size = values.pop(0)
            if csize == 0xFFFFFFFF and values:
                csize = values.pop(0)
            break
        pos += 4 + hlen
    return size, csize


class _StoredMember(io.RawIOBase):
    def __init__(self, z: _ZipStream, size: int) -> None:
        super().__init__()
        self._z, self._left = z, size

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        n = self._left if n is None or n < 0 else min(n, self._left)
        data = self._z._read(n)
        if not data:
            raise EOFError("zip archive is truncated inside a member")
        self._left -= len(data)
        return data

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass


class _DeflatedMember(io.RawIOBase):
    def __init__(self, z: _ZipStream, limits: Limits) -> None:
        super().__init__()
        self._z = z
        self._d = zlib.decompressobj(-15)
        self._out = b""
        self._done = False
        self._limits = limits
        self.produced = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        want = _CHUNK if n is None or n < 0 else n
        while len(self._out) < want and not self._done:
            if self._d.unconsumed_tail:
                data = self._d.unconsumed_tail
            else:
                data = self._z._more()
                if not data:
                    raise EOFError("zip archive is truncated inside a deflated member")
            out = self._d.decompress(data, _CHUNK)
            self.produced += len(out)
            if self.produced > self._limits.max_member:
                raise ArchiveDamaged("a member inflates past the size limit (a zip bomb?)")
            self._out += out
            if self._d.eof:
                self._done = True
                self._z._buf = self._d.unused_data + self._z._buf
        if n is None or n < 0:
            parts = [self._out]
            self._out = b""
            while block := self.read(_CHUNK):
                parts.append(block)
            return b"".join(parts)
        data, self._out = self._out[:n], self._out[n:]
        return data

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass


def walk_archive(path: str, limits: Limits = LIMITS) -> Iterator[Entry | Problem]:
    """Every regular member of the archive at ``path`` (nested archives opened), in
    archive order, and a Problem for everything that cannot be used."""
    return _Walk(path, limits).run()


def expand_prefix(root: str) -> tuple[str, str] | None:
    """``(archive file, member prefix)`` for a root inside an archive (``a.zip!sub/``)."""
    parts = split(root.rstrip("/") + ("" if root.endswith(SEP) else ""))
    if parts is None:
        if root.endswith(SEP) and archive_kind(root[:-1]) is not None:
            return root[:-1], ""
        return None
    return parts[0], SEP.join(parts[1])


# ----------------------------------------------------------------- reading by path
class _Index:
    """One archive level reached by random access: where its members lie."""

    def __init__(self, fh: Any, window: _Window, kind: str) -> None:
        self.fh = fh
        self.window = window
        self.zf: zipfile.ZipFile | None = None
        self.infos: dict[str, zipfile.ZipInfo] = {}
        self.tar: dict[str, tuple[int, int]] = {}
        if kind == "zip":
            self.zf = zipfile.ZipFile(window)
            for info in self.zf.infolist():
                self.infos.setdefault(clean_name(info.filename), info)
        else:
            window.seek(0)
            with tarfile.open(fileobj=window, mode="r:") as tar:
                for m in tar:
                    if m.isfile():
                        self.tar.setdefault(clean_name(m.name), (m.offset_data, m.size))

    def close(self) -> None:
        self.fh.close()


_CACHE_LOCK = threading.Lock()
_INDEXES: dict[tuple[str, int, int, tuple[str, ...]], _Index] = {}
_MAX_OPEN = 8


def close_indexes() -> None:
    """Close the archives kept open for random access (at exit, and in tests)."""
    with _CACHE_LOCK:
        while _INDEXES:
            _INDEXES.popitem()[1].close()


atexit.register(close_indexes)


def _index(outer: str, chain: tuple[str, ...], kind: str) -> _Index | None:
    """The archive at ``outer!chain...`` (every level stored as-is), cached per process;
    None when a level is compressed (only a sequential pass reaches it)."""
    if kind not in ("zip", "tar"):
        return None
    st = os.stat(outer)
    key = (outer, st.st_size, st.st_mtime_ns, chain)
    with _CACHE_LOCK:
        hit = _INDEXES.get(key)
        if hit is not None:
            return hit
    if chain:
        parent = _index(
            outer, chain[:-1], archive_kind(chain[-2] if len(chain) > 1 else outer) or ""
        )
        if parent is None:
            return None
        where = _where(parent, chain[-1])
        if where is None:
            return None
        offset, size = where
    else:
        offset, size = 0, st.st_size
    fh = open(outer, "rb", buffering=0)  # noqa: SIM115 - kept open in the cache
    try:
        index = _Index(fh, _Window(fh, offset, size), kind)
    except BaseException:
        fh.close()
        raise
    with _CACHE_LOCK:
        while len(_INDEXES) >= _MAX_OPEN:
            _INDEXES.pop(next(iter(_INDEXES))).close()
        _INDEXES[key] = index
    return index


def _where(index: _Index, name: str) -> tuple[int, int] | None:
    """(offset in the outermost file, size) of a member stored as-is; None when it is
    compressed. KeyError when there is no such member."""
    if index.zf is not None:
        info = index.infos.get(name)
        if info is None:
            raise KeyError(name)
        if info.flag_bits & 1:
            raise ArchiveDamaged("encrypted member: cannot be read")
        if info.compress_type != zipfile.ZIP_STORED:
            return None
        return index.window.start + _zip_data_offset(index.window, info), info.file_size
    hit = index.tar.get(name)
    if hit is None:
        raise KeyError(name)
    return index.window.start + hit[0], hit[1]


class _Member(io.BufferedReader):
    """A member's bytes; ``crc`` is the CRC-32 its archive records (-1: none)."""

    crc = -1


def open_window(outer: str, offset: int, size: int, crc: int = -1) -> IO[bytes]:
    """Bytes stored as-is in ``outer`` at ``offset``: a seekable file of its own."""
    fh = open(outer, "rb", buffering=0)  # noqa: SIM115 - returned open
    member = _Member(_OwnedWindow(fh, offset, size), 64 << 10)
    member.crc = crc
    return cast(IO[bytes], member)


class _OwnedWindow(_Window):
    def close(self) -> None:
        if not self.closed:
            self._f.close()
        super().close()


def open_random(path: str) -> IO[bytes] | None:
    """A member by path without a sequential pass (a seekable file object), or None when
    only a pass can reach it (inside a compressed tar or a compressed member).

    Raises OSError (the outermost file), ArchiveDamaged/zipfile.BadZipFile/TarError
    (damaged) or KeyError (no such member).
    """
    parts = split(path)
    if parts is None or os.path.exists(path):
        return open(path, "rb")  # noqa: SIM115
    outer, names = parts
    chain = tuple(names[:-1])
    kind = archive_kind(names[-2] if len(names) > 1 else outer) or ""
    if kind not in ("zip", "tar"):
        return None
    index = _index(outer, chain, kind)
    if index is None:
        return None
    where = _where(index, names[-1])
    if where is None:
        assert index.zf is not None
        return index.zf.open(index.infos[names[-1]])  # checks its CRC at the end
    info = index.infos.get(names[-1])
    return open_window(outer, where[0], where[1], info.CRC if info is not None else -1)


def read_members(
    paths: Iterable[str], limits: Limits = LIMITS
) -> Generator[tuple[str, IO[bytes], int], None, None]:
    """The members named (all in one outermost archive), in one sequential pass, in
    archive order; stops after the last one wanted. Paths not found are not yielded."""
    wanted = set(paths)
    if not wanted:
        return
    outer = outermost(next(iter(wanted)))
    for event in walk_archive(outer, limits):
        if isinstance(event, Problem):
            hit = [w for w in wanted if w == event.path or w.startswith(event.path + SEP)]
            if hit and event.severity == "error":
                raise ArchiveDamaged(f"{event.path}: {event.detail}")
            continue
        if event.path not in wanted:
            continue
        wanted.discard(event.path)
        if event.stream is not None:
            yield event.path, event.stream, event.crc
        else:
            f = open_random(event.path)
            if f is None:  # pragma: no cover - a walk gives streams for these
                continue
            with f:
                yield event.path, f, event.crc
        if not wanted:
            return


def open_path(path: str) -> IO[bytes]:
    """Any file, on disk or in an archive, as a readable file object (for occasional
    reads: duplicate comparison, previews). Raises OSError when it cannot be read."""
    try:
        f = open_random(path)
    except OPEN_ERRORS as exc:
        raise OSError(f"{path}: cannot be read from its archive: {exc}") from exc
    if f is not None:
        return f
    for _name, stream, _crc in read_members([path]):
        return io.BytesIO(_read_all(stream))
    raise OSError(f"{path}: not found in its archive")


def _read_all(stream: IO[bytes]) -> bytes:
    parts = []
    while block := stream.read(_CHUNK):
        parts.append(block)
    return b"".join(parts)


def mtime_ns_of(path: str) -> int:
    """The mtime (ns) of the file on disk that holds ``path``."""
    return os.stat(outermost(path)).st_mtime_ns


# ----------------------------------------------------------------- browsing
_LISTINGS: dict[tuple[str, int, int], list[str]] = {}


def _members_of(outer: str) -> list[str]:
    st = os.stat(outer)
    key = (outer, st.st_size, st.st_mtime_ns)
    with _CACHE_LOCK:
        hit = _LISTINGS.get(key)
    if hit is not None:
        return hit
    paths = [e.path for e in walk_archive(outer) if isinstance(e, Entry)]
    with _CACHE_LOCK:
        if len(_LISTINGS) >= _MAX_OPEN:
            _LISTINGS.pop(next(iter(_LISTINGS)))
        _LISTINGS[key] = paths
    return paths


def has_member(path: str) -> bool:
    """``archive!member`` is a regular member of its (unchanged or changed) archive, at
    any depth. Reads the archive's listing (cached while the file is unchanged)."""
    try:
        return path in set(_members_of(outermost(path)))
    except (OSError, ArchiveDamaged, zipfile.BadZipFile, tarfile.TarError, EOFError):
        return False


def is_archive_level(path: str) -> bool:
    """``path`` names an archive (on disk or nested), not a folder inside one."""
    return archive_kind(path.rsplit("/", 1)[-1].rsplit(SEP, 1)[-1]) is not None


def children(path: str) -> list[str]:
    """The folders and archives directly inside an archive, or inside a folder or an
    archive in an archive (for a folder tree to expand). Reads the archive's listing
    (a whole pass for a compressed tar), cached while the file is unchanged."""
    prefix = path + (SEP if is_archive_level(path) else "/")
    out: dict[str, None] = {}
    for member in _members_of(outermost(path)):
        if not member.startswith(prefix):
            continue
        parts = _parts(member[len(prefix) :])
        if len(parts) > 1:
            out[prefix + parts[0][:-1]] = None
    return list(out)


def archive_of(path: str) -> str:
    """``{archive}``: the file name, without its extension, of the innermost archive
    holding ``path`` ('' for a path on disk)."""
    parts = split(path)
    if parts is None:
        return archive_stem(path) if archive_kind(path.rsplit("/", 1)[-1]) else ""
    levels = [parts[0], *parts[1]]
    for level in reversed(levels[:-1] if not is_archive_level(path) else levels):
        if archive_kind(level.rsplit("/", 1)[-1]) is not None:
            return archive_stem(level)
    return ""
