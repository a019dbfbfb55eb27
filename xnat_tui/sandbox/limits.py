"""Bounds on what one upload may make the import service do (zip bombs, deep nesting).

XNAT inflates whatever it is sent; a sandbox anyone can reach on a shared machine
should not: a 1 MB zip holding a 1 GB deflated entry used to be inflated in full.
``ImportLimits`` (on ``Settings.import_limits``; ``SandboxServer.import_limits`` reads
and replaces it at run time; ``start_sandbox(import_limits=...)``) holds the bounds,
all generous for real sessions:

* ``max_entry_bytes`` (4 GiB): the uncompressed size of any one entry, a nested
  archive included (DICOM's 32-bit lengths keep a real object below this).
* ``max_request_bytes`` (64 GiB): everything one upload inflates, every layer of
  nested archives and the gzip layer of a ``.tgz`` counted.
* ``max_ratio`` (200) above ``ratio_grace_bytes`` (64 MiB): once an entry (or the whole
  upload) has inflated past the grace size, it may not be more than 200 times its
  compressed size. Real DICOM deflates 2-10x; deflate's ceiling is about 1030x, where
  bombs sit. Small, very compressible files (blank images) stay below the grace size.
* ``max_depth`` (4): archives inside archives, the upload itself being level 1.

A size or ratio limit is answered ``413`` and the nesting limit ``400``, each with a
message naming the limit (``LimitExceeded``). ``ImportGuard`` does the accounting for
one request and is also how a running import is stopped: the reading worker thread
calls ``check()`` for every chunk, and ``cancel()`` (a cancelled request, or
``ImportGuards.stop_all()`` at server shutdown) makes it raise ``ImportCancelled``
within one chunk, so SIGTERM never waits for a long inflation.
"""

from __future__ import annotations

import tarfile
import threading
import zlib
from dataclasses import dataclass

from xnat_tui.sandbox.zipread import Readable, ZipEntry

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30

_GZ_CHUNK = 64 * KiB
_GZ_MAX_OUT = 256 * KiB


@dataclass(frozen=True)
class ImportLimits:
    max_entry_bytes: int = 4 * GiB
    max_request_bytes: int = 64 * GiB
    max_ratio: float = 200.0
    ratio_grace_bytes: int = 64 * MiB
    max_depth: int = 4


class LimitExceeded(Exception):
    """An upload went past one of the ``ImportLimits``; answered with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ImportCancelled(Exception):
    """The import was stopped (request gone, or the server is shutting down)."""


def human(n: float) -> str:
    """``4294967296`` → ``4 GiB``; ``1536`` → ``1.5 KiB``."""
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= size:
            return f"{n / size:.4g} {unit}"
    return f"{int(n)} bytes"


def _ratio(value: float) -> str:
    return f"{value:g}:1"


class ImportGuard:
    """The accounting of one upload; its methods run on the import's worker thread."""

    def __init__(
        self,
        limits: ImportLimits | None = None,
        *,
        upload_size: int = 0,
        pause: float = 0.0,
    ) -> None:
        self.limits = limits or ImportLimits()
        self.upload_size = upload_size
        self.pause = pause  # fault injection: seconds to wait per staged chunk
        self.produced = 0  # bytes inflated (or read from stored zip entries), all layers
        self._cancelled = threading.Event()

    # ---- stopping ---------------------------------------------------------------

    def cancel(self) -> None:
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def check(self) -> None:
        if self._cancelled.is_set():
            raise ImportCancelled("the import was stopped")

    # ---- accounting -------------------------------------------------------------

    def nested(self, depth: int) -> None:
        """Entering an archive at ``depth`` (the upload itself is 1)."""
        limit = self.limits.max_depth
        if depth > limit:
            raise LimitExceeded(
                400,
                f"Upload refused: archives are nested more than {limit} deep "
                f"(the sandbox's nesting-depth limit, max_depth={limit}).",
            )

    def _add(self, delta: int) -> None:
        self.check()
        self.produced += delta
        lim = self.limits
        if self.produced > lim.max_request_bytes:
            raise LimitExceeded(
                413,
                f"Upload refused: it inflates to more than {human(lim.max_request_bytes)} "
                f"(the sandbox's per-request size limit, max_request_bytes).",
            )
        if self.produced > lim.ratio_grace_bytes and self.produced > lim.max_ratio * max(
            self.upload_size, 1
        ):
            raise LimitExceeded(
                413,
                f"Upload refused: its {human(self.upload_size)} inflate to more than "
                f"{_ratio(lim.max_ratio)} (the sandbox's compression-ratio limit, max_ratio, "
                f"applied beyond {human(lim.ratio_grace_bytes)}).",
            )

    def zip_progress(self, entry: ZipEntry, compressed: int, size: int, delta: int) -> None:
        """``ZipStreamReader`` progress: ``size`` bytes of ``entry`` out of ``compressed``."""
        lim = self.limits
        if size > lim.max_entry_bytes:
            raise self._entry_too_large(entry.name)
        if size > lim.ratio_grace_bytes and size > lim.max_ratio * max(compressed, 1):
            raise LimitExceeded(
                413,
                f"Upload refused: entry {entry.name} inflates to more than "
                f"{_ratio(lim.max_ratio)} (the sandbox's compression-ratio limit, max_ratio, "
                f"applied beyond {human(lim.ratio_grace_bytes)}).",
            )
        self._add(delta)

    def gzip_progress(self, delta: int) -> None:
        self._add(delta)

    def staged(self, name: str, size: int) -> None:
        """``size`` bytes of entry ``name`` written so far (any archive format)."""
        if size > self.limits.max_entry_bytes:
            raise self._entry_too_large(name)
        if self.pause:
            self._cancelled.wait(self.pause)
        self.check()

    def _entry_too_large(self, name: str) -> LimitExceeded:
        limit = self.limits.max_entry_bytes
        return LimitExceeded(
            413,
            f"Upload refused: entry {name} is larger than {human(limit)} uncompressed "
            f"(the sandbox's per-entry size limit, max_entry_bytes).",
        )


class ImportGuards:
    """The imports running on one server, so that a shutdown stops them all at once."""

    def __init__(self) -> None:
        self._active: set[ImportGuard] = set()
        self.stopping = False

    def open(self, limits: ImportLimits, *, upload_size: int, pause: float = 0.0) -> ImportGuard:
        guard = ImportGuard(limits, upload_size=upload_size, pause=pause)
        if self.stopping:
            guard.cancel()
        self._active.add(guard)
        return guard

    def close(self, guard: ImportGuard) -> None:
        self._active.discard(guard)

    def stop_all(self) -> None:
        self.stopping = True
        for guard in list(self._active):
            guard.cancel()


class GunzipStream:
    """A gzip stream inflated in bounded steps, each counted by the guard.

    ``tarfile``'s own ``r|gz`` inflates inside tarfile (skipping a member's data
    inflates it too), out of the guard's sight; a ``.tgz`` is read as this stream
    under ``r|`` instead. Concatenated gzip members are read one after the other."""

    def __init__(self, raw: Readable, guard: ImportGuard) -> None:
        self._raw = raw
        self._guard = guard
        self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._buf = b""
        self._started = False
        self._eof = False

    def read(self, n: int = -1, /) -> bytes:
        if n is None or n < 0:
            parts = []
            while chunk := self.read(_GZ_MAX_OUT):
                parts.append(chunk)
            return b"".join(parts)
        while not self._buf and not self._eof:
            self._fill()
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def _fill(self) -> None:
        z = self._z
        if z.unconsumed_tail:
            data = z.unconsumed_tail
        elif z.eof:
            data = z.unused_data or self._raw.read(_GZ_CHUNK)
            if not data:
                self._eof = True
                return
            z = self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        else:
            data = self._raw.read(_GZ_CHUNK)
            if not data:
                if not self._started:
                    self._eof = True  # empty: tarfile says so in its own words
                    return
                raise tarfile.ReadError("unexpected end of data")
        self._started = True
        try:
            out = z.decompress(data, _GZ_MAX_OUT)
        except zlib.error as exc:
            raise tarfile.ReadError(f"invalid compressed data: {exc}") from exc
        self._guard.gzip_progress(len(out))
        self._buf = out
