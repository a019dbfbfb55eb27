"""Files on an XNAT server as a packer source: a project copy streams them, never to disk.

A copied session's files are journalled like local files, with a path that names the
server file: ``xnat-copy:/data/experiments/E/scans/S/resources/R/files/NAME``
(:func:`remote_path`). The packer reads every file through the source kinds of
``transfer.opener``; :class:`RemoteFiles` is the kind for these paths. It fetches each
file on the event loop the engine runs on (the packer's thread waits for it), a few
files ahead of the one being packed so the network stays busy, and every fetch is
checked against the listing's size and MD5 (``Fetcher``), so a damaged or substituted
file is never sent on.

Memory: at most ``window_bytes`` of fetched files are held per series being packed;
nothing touches the disk.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from xnat_tui.transfer import opener
from xnat_tui.transfer.opener import Opened
from xnat_tui.transfer.server import SourceChanged, TransferError
from xnat_tui.transfer.types import SourceFile

PREFIX = "xnat-copy:"
# Files fetched ahead of the one being packed, per series (and at most this many bytes).
AHEAD = 8
WINDOW_BYTES = 64 << 20


def remote_path(uri: str) -> str:
    """The journalled path of a server file (``uri``: its ``/data/...`` URI)."""
    return PREFIX + uri


def uri_of(f: SourceFile) -> str:
    return str(f.path)[len(PREFIX) :]


@dataclass(frozen=True)
class Wanted:
    """What a fetch must return: the listing's size and MD5 ('' when XNAT has none)."""

    uri: str
    size: int
    digest: str


# uri, expected size and digest -> the verified bytes (raises on a mismatch).
Fetcher = Callable[[Wanted], Awaitable[bytes]]


class RemoteFiles:
    """The source kind for ``xnat-copy:`` paths (one per process, see :func:`install`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fetch: Fetcher | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._digests: dict[str, str] = {}
        self.window_bytes = WINDOW_BYTES
        self.ahead = AHEAD

    def bind(
        self, fetch: Fetcher, loop: asyncio.AbstractEventLoop, digests: dict[str, str]
    ) -> None:
        """Fetch with ``fetch`` on ``loop``; ``digests`` (uri → MD5) is shared, updated
        by the engine as it adopts copy jobs."""
        with self._lock:
            self._fetch, self._loop, self._digests = fetch, loop, digests

    def unbind(self, fetch: Fetcher) -> None:
        with self._lock:
            if self._fetch is fetch:
                self._fetch, self._loop = None, None

    # ---- SourceKind -------------------------------------------------------------
    def handles(self, f: SourceFile) -> bool:
        return str(f.path).startswith(PREFIX)

    def check(self, f: SourceFile, strict: bool) -> None:
        return None  # checked when fetched: size and MD5 against the listing

    def open(self, f: SourceFile) -> Opened:
        return io.BytesIO(self._start(f).result())

    def open_many(self, files: Sequence[SourceFile]) -> Iterator[tuple[int, Opened]]:
        pending: deque[tuple[int, Future[bytes], int]] = deque()
        held = 0
        nxt = 0
        try:
            while nxt < len(files) or pending:
                # Keep a few fetches in flight: one file's round trip hides behind others.
                while (
                    nxt < len(files)
                    and len(pending) < self.ahead
                    and (not pending or held + files[nxt].size <= self.window_bytes)
                ):
                    pending.append((nxt, self._start(files[nxt]), files[nxt].size))
                    held += files[nxt].size
                    nxt += 1
                i, future, size = pending.popleft()
                data = _result(future, files[i])
                held -= size
                yield i, io.BytesIO(data)
        finally:
            for _, future, _ in pending:
                future.cancel()

    def finished(self, f: SourceFile, fh: Opened, size: int, crc: int, strict: bool) -> None:
        if size != f.size:
            raise SourceChanged(
                uri_of(f), f"is {size} bytes on the server, not the {f.size} listed when planned"
            )

    # ---- internals --------------------------------------------------------------
    def _start(self, f: SourceFile) -> Future[bytes]:
        with self._lock:
            fetch, loop = self._fetch, self._loop
            digest = self._digests.get(uri_of(f), "")
        if fetch is None or loop is None:
            raise TransferError("no connection to the source server is open", retriable=True)
        wanted = Wanted(uri_of(f), f.size, digest)
        return asyncio.run_coroutine_threadsafe(_call(fetch, wanted), loop)


async def _call(fetch: Fetcher, wanted: Wanted) -> bytes:
    return await fetch(wanted)


def _result(future: Future[bytes], f: SourceFile) -> bytes:
    try:
        return future.result()
    except (SourceChanged, TransferError):
        raise
    except Exception as exc:
        # The engine's retry policy decides: a typed XNAT error keeps its retriable flag.
        raise _wrap(exc, uri_of(f)) from exc


def _wrap(exc: BaseException, uri: str) -> TransferError:
    retriable = bool(getattr(exc, "retriable", False))
    status = getattr(exc, "status", None)
    return TransferError(
        f"reading {uri} from the source failed: {exc}",
        retriable=retriable,
        status=status if isinstance(status, int) else None,
    )


_INSTALLED: RemoteFiles | None = None


def install() -> RemoteFiles:
    """The process's one remote source kind, registered with the opener once."""
    global _INSTALLED
    if _INSTALLED is None:
        _INSTALLED = RemoteFiles()
        opener.register(_INSTALLED)
    return _INSTALLED
