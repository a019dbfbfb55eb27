"""Sequential zip reader as strict as Java's ``java.util.zip.ZipInputStream``.

XNAT's DICOM-zip importer reads uploads with ``ZipInputStream`` (local headers in
order, never the central directory). Clients that produce zips XNAT cannot read must
fail here too, otherwise the sandbox would bless uploads a real server refuses
(dicom.md §4.1): a STORED entry with a data descriptor is refused at its header, and a
zip64 data descriptor after a small deflated entry is read as a 32-bit one, so the
sizes do not match. The checks, their order and their messages follow JDK 17's
``ZipInputStream`` (``readLOC``, ``read``, ``readEnd``).

The reader works on any object with ``read(n)``, including an entry of another zip
(nested archives), and never holds more than one read buffer in memory. An optional
``progress(entry, compressed, size, delta)`` callback sees every chunk an entry yields,
also while an entry is skipped; it may raise to stop the reading (size limits, see
``limits``).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

LOCSIG = 0x04034B50
EXTSIG = 0x08074B50
LOCHDR = 30
STORED = 0
DEFLATED = 8
ZIP64_MAGICVAL = 0xFFFFFFFF
_CHUNK = 64 * 1024
# Java's ZipInputStream inflates from a 512-byte buffer; the size only changes how
# much is pushed back, not the outcome, so a larger one is used for speed.
_INFLATE_CHUNK = 64 * 1024
_MAX_INFLATE_OUT = 256 * 1024


class ZipFormatError(Exception):
    """The stream is not a zip Java's ZipInputStream would read (its ZipException)."""


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


@dataclass
class ZipEntry:
    name: str
    method: int
    flag: int
    crc: int = -1
    csize: int = -1
    size: int = -1

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/")


class _Pushback:
    """A byte source that can take back what it gave (Java's PushbackInputStream)."""

    def __init__(self, raw: Readable) -> None:
        self._raw = raw
        self._back = bytearray()

    def read(self, n: int) -> bytes:
        if self._back:
            data = bytes(self._back[:n])
            del self._back[:n]
            return data
        return self._raw.read(n)

    def read_fully(self, n: int) -> bytes:
        """Exactly n bytes, or EOFError."""
        parts: list[bytes] = []
        need = n
        while need > 0:
            data = self.read(need)
            if not data:
                raise EOFError
            parts.append(data)
            need -= len(data)
        return b"".join(parts)

    def unread(self, data: bytes) -> None:
        self._back[:0] = data


def _zip64_sizes(extra: bytes, entry: ZipEntry) -> None:
    """Apply the zip64 extended information of a local header (JDK ``setExtra0``)."""
    off = 0
    while off + 4 <= len(extra):
        tag, sz = struct.unpack_from("<HH", extra, off)
        off += 4
        if off + sz > len(extra):
            break
        if tag == 0x0001 and sz >= 16:
            entry.size, entry.csize = struct.unpack_from("<QQ", extra, off)
        off += sz


Progress = Callable[[ZipEntry, int, int, int], None]


class ZipStreamReader:
    """Iterate a zip stream entry by entry: ``next_entry()`` then ``read()`` until b""."""

    def __init__(self, raw: Readable, progress: Progress | None = None) -> None:
        self._in = _Pushback(raw)
        self._progress = progress
        self._entry: ZipEntry | None = None
        self._eof = True
        self._crc = 0
        self._remaining = 0
        self._inf: zlib._Decompress | None = None
        self._inf_read = 0
        self._inf_written = 0
        self._pending = b""

    def next_entry(self) -> ZipEntry | None:
        """Close the current entry (validating it) and read the next local header."""
        if self._entry is not None:
            self.close_entry()
        self._crc = 0
        self._inf = zlib.decompressobj(-15)
        self._inf_read = 0
        self._inf_written = 0
        self._pending = b""
        entry = self._read_loc()
        self._entry = entry
        if entry is None:
            return None
        if entry.method == STORED:
            self._remaining = entry.size
        self._eof = False
        return entry

    def close_entry(self) -> None:
        while self._entry is not None and self.read(_CHUNK):
            pass
        self._entry = None
        self._eof = True

    def _read_loc(self) -> ZipEntry | None:
        try:
            hdr = self._in.read_fully(LOCHDR)
        except EOFError:
            return None
        (sig, _ver, flag, method, _tim, _dat, crc, csize, size, nlen, elen) = struct.unpack(
            "<IHHHHHIIIHH", hdr
        )
        if sig != LOCSIG:
            return None
        try:
            raw_name = self._in.read_fully(nlen)
        except EOFError as exc:
            raise ZipFormatError("Unexpected end of ZLIB input stream") from exc
        name = raw_name.decode("utf-8", errors="replace")
        if flag & 1:
            raise ZipFormatError("encrypted ZIP entry not supported")
        entry = ZipEntry(name=name, method=method, flag=flag)
        if flag & 8:
            if method != DEFLATED:
                raise ZipFormatError("only DEFLATED entries can have EXT descriptor")
        else:
            entry.crc, entry.csize, entry.size = crc, csize, size
        if elen > 0:
            try:
                extra = self._in.read_fully(elen)
            except EOFError as exc:
                raise ZipFormatError("Unexpected end of ZLIB input stream") from exc
            if entry.csize == ZIP64_MAGICVAL or entry.size == ZIP64_MAGICVAL:
                _zip64_sizes(extra, entry)
        if method not in (STORED, DEFLATED):
            raise ZipFormatError("invalid compression method")
        return entry

    def read(self, n: int = _CHUNK) -> bytes:
        """Up to n bytes of the current entry; b"" at its end (after validation)."""
        entry = self._entry
        if entry is None or self._eof:
            return b""
        if entry.method == STORED:
            return self._read_stored(entry, n)
        return self._read_deflated(entry, n)

    def _read_stored(self, entry: ZipEntry, n: int) -> bytes:
        if self._remaining <= 0:
            self._eof = True
            self._entry = None
            return b""
        data = self._in.read(min(n, self._remaining))
        if not data:
            raise ZipFormatError("unexpected EOF")
        self._crc = zlib.crc32(data, self._crc)
        self._remaining -= len(data)
        if self._progress is not None:
            done = entry.size - self._remaining
            self._progress(entry, done, done, len(data))
        if self._remaining == 0 and entry.crc != self._crc:
            raise ZipFormatError(
                f"invalid entry CRC (expected 0x{entry.crc:x} but got 0x{self._crc:x})"
            )
        return data

    def _read_deflated(self, entry: ZipEntry, n: int) -> bytes:
        inf = self._inf
        assert inf is not None
        while True:
            if self._pending:
                out, self._pending = self._pending[:n], self._pending[n:]
                self._crc = zlib.crc32(out, self._crc)
                return out
            if inf.eof:
                self._read_end(entry, inf)
                self._eof = True
                self._entry = None
                return b""
            data = self._in.read(_INFLATE_CHUNK)
            if not data:
                raise ZipFormatError("Unexpected end of ZLIB input stream")
            try:
                # Bounded output: a few KB of deflate can expand to gigabytes.
                out = inf.decompress(data, _MAX_INFLATE_OUT)
            except zlib.error as exc:
                raise ZipFormatError(f"invalid deflate data: {exc}") from exc
            leftover = inf.unconsumed_tail or inf.unused_data
            self._inf_read += len(data) - len(leftover)
            self._inf_written += len(out)
            if leftover:
                self._in.unread(leftover)
            self._pending = out
            if self._progress is not None:
                self._progress(entry, self._inf_read, self._inf_written, len(out))

    def _read_end(self, entry: ZipEntry, inf: zlib._Decompress) -> None:
        if entry.flag & 8:
            try:
                if self._inf_written > ZIP64_MAGICVAL or self._inf_read > ZIP64_MAGICVAL:
                    buf = self._in.read_fully(24)
                    sig = struct.unpack_from("<I", buf)[0]
                    if sig != EXTSIG:
                        entry.crc = sig
                        entry.csize, entry.size = struct.unpack_from("<QQ", buf, 4)
                        self._in.unread(buf[20:])
                    else:
                        entry.crc = struct.unpack_from("<I", buf, 4)[0]
                        entry.csize, entry.size = struct.unpack_from("<QQ", buf, 8)
                else:
                    buf = self._in.read_fully(16)
                    sig = struct.unpack_from("<I", buf)[0]
                    if sig != EXTSIG:
                        entry.crc = sig
                        entry.csize, entry.size = struct.unpack_from("<II", buf, 4)
                        self._in.unread(buf[12:])
                    else:
                        entry.crc, entry.csize, entry.size = struct.unpack_from("<III", buf, 4)
            except EOFError as exc:
                raise ZipFormatError("Unexpected end of ZLIB input stream") from exc
        if entry.size != self._inf_written:
            raise ZipFormatError(
                f"invalid entry size (expected {entry.size} but got {self._inf_written} bytes)"
            )
        if entry.csize != self._inf_read:
            raise ZipFormatError(
                f"invalid entry compressed size (expected {entry.csize} "
                f"but got {self._inf_read} bytes)"
            )
        if entry.crc != self._crc:
            raise ZipFormatError(
                f"invalid entry CRC (expected 0x{entry.crc:x} but got 0x{self._crc:x})"
            )


class EntryStream:
    """The current entry of a reader as a plain ``read(n)`` stream (for nesting)."""

    def __init__(self, reader: ZipStreamReader) -> None:
        self._reader = reader

    def read(self, n: int = -1, /) -> bytes:
        if n is None or n < 0:
            parts = []
            while chunk := self._reader.read(_CHUNK):
                parts.append(chunk)
            return b"".join(parts)
        return self._reader.read(n)
