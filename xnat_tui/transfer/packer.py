"""Per-series zip, produced on the fly as the HTTP request body.

A dedicated thread reads each file (optionally passing it through an anonymization
``transform``), computes its CRC32 and MD5, and feeds stream-zip with the member's
size and CRC already known — so entries are written as stored zip64 (or zip32
deflate level 1) *without* data descriptors, the only forms XNAT's Java
``ZipInputStream`` reads. No temporary file is written; memory is one file plus a
few 1 MiB chunks in flight. The event loop only ever awaits ready chunks.
"""

from __future__ import annotations

import asyncio
import hashlib
import stat
import threading
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from stream_zip import NO_COMPRESSION_64, ZIP_32, stream_zip

from xnat_tui.priority import lower_this_thread
from xnat_tui.transfer.journal import ManifestEntry
from xnat_tui.transfer.opener import Opened, SourceKind, open_in_order
from xnat_tui.transfer.server import SourceChanged
from xnat_tui.transfer.types import Compression, SourceFile
from xnat_tui.transfer.zip64 import Zip64Writer, stored_size

FileTransform = Callable[[Path, bytes], bytes]
"""Anonymization hook: (path, original bytes) → bytes to send. Runs in the packer
thread (never on the event loop); must be deterministic so a re-sent series carries
identical files."""

CHUNK = 1 << 20
# Buffers handed to the event loop at once (one thread→loop hop per batch).
BATCH = 1 << 20
# Files above this are read twice (checksum pass, then streamed) instead of held whole.
LARGE_FILE = 64 << 20
_STAMP = datetime(2000, 1, 1)
# One packer thread reads and checksums at a time (process-wide). Its work is mostly
# C code that drops the GIL, but each thread takes the GIL back after every read,
# CRC and MD5; four of them contending made the event loop wait 50-100 ms for its
# turn (benchmarks/ui_lag.py --trace-stalls). Threads waiting on this lock do not
# compete for the GIL. One thread still packs far faster than a network sends.
_PACKING = threading.Lock()
_MODE = stat.S_IFREG | 0o644


def entry_names(series_uid: str, files: Sequence[SourceFile]) -> list[str]:
    """Unique zip entry names: ``<SeriesUID>/<SOPInstanceUID>.dcm`` (index if unknown)."""
    seen: set[str] = set()
    names: list[str] = []
    prefix = _safe(series_uid) or "series"
    for i, f in enumerate(files):
        stem = _safe(f.sop_instance_uid) or f"{i:06d}_{_safe(f.path.stem) or 'file'}"
        name = f"{prefix}/{stem}.dcm"
        n = 1
        while name in seen:
            n += 1
            name = f"{prefix}/{stem}_{n}.dcm"
        seen.add(name)
        names.append(name)
    return names


def _damaged(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if "crc" in text.lower():
        return f"fails its CRC check in its archive (damaged): {text}"
    return f"cannot be read from its archive (damaged?): {text}"


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text).strip("._")


class _Stop(Exception):
    pass


class SeriesPacker:
    """One series → one zip stream. ``body()`` is consumed once; counters are live.

    ``bytes_done``/``files_done`` count source bytes/files already handed to the
    network (for progress); ``manifest`` is complete once the body is exhausted.
    """

    def __init__(
        self,
        series_uid: str,
        files: Sequence[SourceFile],
        *,
        compression: Compression = Compression.STORED,
        transform: FileTransform | None = None,
        queue_depth: int = 4,
        check_unchanged: bool = True,
    ) -> None:
        self.series_uid = series_uid
        self.files = list(files)
        self.names = entry_names(series_uid, self.files)
        self.compression = compression
        self.transform = transform
        self.check_unchanged = check_unchanged
        self.manifest: list[ManifestEntry] = []
        self.bytes_done = 0
        self.files_done = 0
        self.error: BaseException | None = None
        self._depth = queue_depth
        self._stop = threading.Event()
        self._consumed_src = 0
        self._consumed_files = 0

    def cancel(self) -> None:
        self._stop.set()

    # ------------------------------------------------------------ thread side
    # Every byte comes through the source kinds of ``opener`` (disk, archive members,
    # whatever is registered): files are opened in the order their kind reads fastest
    # (one pass per compressed archive), and entry names do not depend on that order.
    def _sources(self) -> Iterator[tuple[str, SourceFile, SourceKind, Opened]]:
        for i, f, kind, fh in open_in_order(self.files):
            if self._stop.is_set():
                fh.close()
                raise _Stop
            yield self.names[i], f, kind, fh

    def _read(self, f: SourceFile, kind: SourceKind, fh: Opened) -> bytes:
        try:
            parts: list[bytes] = []
            while block := fh.read(CHUNK):
                if self._stop.is_set():
                    raise _Stop
                parts.append(block)
        except OSError as exc:
            raise SourceChanged(str(f.path), f"cannot be read: {exc.strerror or exc}") from None
        except SourceChanged:
            raise
        except _Stop:
            raise
        except Exception as exc:  # noqa: BLE001 - a damaged archive member (CRC, zlib)
            raise SourceChanged(str(f.path), _damaged(exc)) from None
        data = b"".join(parts)
        kind.finished(f, fh, len(data), zlib.crc32(data), self.check_unchanged)
        return data

    def _checksum_pass(self, f: SourceFile, kind: SourceKind, fh: Opened) -> tuple[int, str]:
        crc = 0
        size = 0
        md5 = hashlib.md5(usedforsecurity=False)
        try:
            for block in self._blocks(f, fh, close=False):
                crc = zlib.crc32(block, crc)
                size += len(block)
                md5.update(block)
            kind.finished(f, fh, size, crc, self.check_unchanged)
        finally:
            fh.close()
        return crc, md5.hexdigest()

    def _blocks(self, f: SourceFile, fh: Opened, close: bool = True) -> Iterator[bytes]:
        try:
            while block := fh.read(CHUNK):
                if self._stop.is_set():
                    raise _Stop
                yield block
        except (_Stop, SourceChanged):
            raise
        except OSError as exc:
            raise SourceChanged(str(f.path), f"cannot be read: {exc.strerror or exc}") from None
        except Exception as exc:  # noqa: BLE001 - a damaged archive member (CRC, zlib)
            raise SourceChanged(str(f.path), _damaged(exc)) from None
        finally:
            if close:
                fh.close()

    def _stream_file(self, f: SourceFile, kind: SourceKind) -> Iterator[bytes]:
        """A large file's second read (the first gave its checksums)."""
        for block in self._blocks(f, kind.open(f)):
            self._consumed_src += len(block)
            yield block

    def _slices(self, data: bytes) -> Iterator[bytes | memoryview]:
        view = memoryview(data)
        for start in range(0, len(view), CHUNK):
            if self._stop.is_set():
                raise _Stop
            part = view[start : start + CHUNK]
            # memoryview slices are not copied here; the chunk join below copies once.
            yield part
            self._consumed_src += len(part)

    def _large(self, f: SourceFile) -> bool:
        return f.size > LARGE_FILE and self.transform is None

    def _members(self) -> Iterator[tuple[str, datetime, int, Any, Any]]:
        for name, f, kind, fh in self._sources():
            kind.check(f, self.check_unchanged)
            if self._large(f):
                crc, digest = self._checksum_pass(f, kind, fh)
                self.manifest.append(ManifestEntry(name, str(f.path), f.size, crc, digest))
                method = self._method(f.size, crc)
                yield name, _STAMP, _MODE, method, self._stream_file(f, kind)
            else:
                data, crc = self._small(f, name, kind, fh)
                yield name, _STAMP, _MODE, self._method(len(data), crc), self._slices(data)
            self._consumed_files += 1

    def _small(self, f: SourceFile, name: str, kind: SourceKind, fh: Opened) -> tuple[bytes, int]:
        """A file read whole (transformed if anonymizing), checksummed and listed."""
        try:
            data = self._read(f, kind, fh)
        finally:
            fh.close()
        if self.transform is not None:
            data = self.transform(f.path, data)
        crc = zlib.crc32(data)
        digest = hashlib.md5(data, usedforsecurity=False).hexdigest()
        self.manifest.append(ManifestEntry(name, str(f.path), len(data), crc, digest))
        return data, crc

    def _stored(self) -> Iterator[bytes]:
        """Stored zip64 members: headers and each file's data as read, never copied."""
        writer = Zip64Writer(_STAMP, _MODE)
        for name, f, kind, fh in self._sources():
            kind.check(f, self.check_unchanged)
            if self._large(f):
                crc, digest = self._checksum_pass(f, kind, fh)
                self.manifest.append(ManifestEntry(name, str(f.path), f.size, crc, digest))
                yield writer.local_header(name, f.size, crc)
                sent, check = 0, 0
                for block in self._stream_file(f, kind):
                    sent += len(block)
                    if sent > f.size:
                        raise SourceChanged(str(f.path), "changed while being read")
                    check = zlib.crc32(block, check)
                    yield block
                if sent != f.size or check != crc:
                    # The zip is cut before its end records: the server rejects it.
                    raise SourceChanged(str(f.path), "changed while being read")
            else:
                data, crc = self._small(f, name, kind, fh)
                yield writer.local_header(name, len(data), crc)
                yield data
                self._consumed_src += len(data)
            self._consumed_files += 1
        yield writer.end()

    @property
    def content_length(self) -> int | None:
        """Exact body size when known before sending (stored, not anonymized)."""
        if self.compression is not Compression.STORED or self.transform is not None:
            return None
        return stored_size(self.names, [f.size for f in self.files])

    def _method(self, size: int, crc: int) -> Any:
        if self.compression is Compression.DEFLATE and size < 0xFFFF0000:
            return ZIP_32
        return NO_COMPRESSION_64(size, crc)

    def _produce(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any]) -> None:
        lower_this_thread()  # packing yields to the event loop that sends (and draws)
        slots = threading.Semaphore(self._depth)

        def put(item: Any) -> None:
            while not slots.acquire(timeout=0.2):
                if self._stop.is_set():
                    raise _Stop
            loop.call_soon_threadsafe(queue.put_nowait, (item, slots))

        try:
            if self.compression is Compression.STORED:
                batch: list[bytes] = []
                held = 0
                for buf in self._paced(self._stored()):
                    batch.append(buf)
                    held += len(buf)
                    if held >= BATCH:
                        put((batch, self._consumed_src, self._consumed_files))
                        batch, held = [], 0
                if batch:
                    put((batch, self._consumed_src, self._consumed_files))
                put(None)
                return
            pending: list[bytes] = []
            size = 0
            for chunk in self._paced(
                stream_zip(
                    self._members(),
                    chunk_size=CHUNK,
                    get_compressobj=lambda: zlib.compressobj(wbits=-zlib.MAX_WBITS, level=1),
                )
            ):
                pending.append(chunk)
                size += len(chunk)
                if size >= CHUNK:
                    put(([b"".join(pending)], self._consumed_src, self._consumed_files))
                    pending, size = [], 0
            if pending:
                put(([b"".join(pending)], self._consumed_src, self._consumed_files))
            put(None)
        except _Stop:
            return
        except BaseException as exc:  # surfaced to the consumer, then raised there
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (exc, None))
            except RuntimeError:
                pass  # loop closed: nobody is listening any more

    def _paced(self, items: Iterable[bytes]) -> Iterable[bytes]:
        # An anonymizing transform waits on its process pool, not the GIL: packers
        # with one keep running side by side so the pool's workers stay busy.
        return items if self.transform is not None else _one_at_a_time(items)

    # ------------------------------------------------------------- loop side
    async def body(self) -> AsyncIterator[bytes]:
        """The zip, chunk by chunk. Raises :class:`SourceChanged` if a file goes bad."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        thread = threading.Thread(
            target=self._produce,
            args=(loop, queue),
            name=f"packer-{self.series_uid[-12:]}",
            daemon=True,
        )
        thread.start()
        try:
            while True:
                item, slots = await queue.get()
                if slots is not None:
                    slots.release()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    self.error = item
                    raise item
                buffers, src_done, files_done = item
                for chunk in buffers:
                    yield chunk
                self.bytes_done = src_done
                self.files_done = files_done
        finally:
            self._stop.set()


def _one_at_a_time(items: Iterable[bytes]) -> Iterator[bytes]:
    """Each step of a packer's generator under the process-wide packing lock."""
    steps = iter(items)
    while True:
        with _PACKING:
            item = next(steps, None)
        if item is None:
            return
        yield item
