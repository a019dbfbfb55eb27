"""MD5 for downloads: several files' digests computed side by side.

A download checks every file against the MD5 digest of the server's listing. One MD5
is a chain of dependent steps (OpenSSL: ~0.75 GB/s on one core), and on a small machine
that costs more CPU than receiving and writing the bytes. The compiled kernel
``_md5lanes`` advances up to eight streams with one chain of vector instructions (AVX2
or AVX-512VL: ~3.5 GB/s with all eight lanes busy, ~0.5 GB/s with one).

So the download's worker threads do not hash their own bytes: :meth:`Md5.update_later`
queues them, and a thread that needs its digest settled (its buffer full, its file
complete) runs a batch over everything queued by then, other threads' bytes included,
unless a batch is running; then it sleeps until the batch has done its part (flat
combining: no extra thread). The busier the machine, the longer bytes wait and the
fuller the lanes: 1 GB of 512 KiB files costs ~0.55 s of CPU, not hashlib's 1.4 s. The
kernel runs with the GIL released.

:func:`new` gives hashlib's MD5 where the kernel is not there (not compiled, another
CPU) or one file at a time is hashed, where one lane would be slower than hashlib.
``XNAT_TUI_PURE_MD5=1`` makes :func:`lanes_usable` false (hashlib for downloads too).
"""

from __future__ import annotations

import hashlib
import os
import struct
import threading
from typing import Any, Protocol

LANES = 8  # streams per kernel call (eight 32-bit words in a 256-bit register)
SLICE = 1024  # blocks (64 KiB) per kernel call: newcomers join the batch between calls
_IV = struct.pack("<4I", 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476)


def _load_extension() -> Any:
    try:
        from xnat_tui.xnat import _md5lanes
    except ImportError:  # not compiled (no C compiler at install time): hashlib
        return None
    return _md5lanes if _md5lanes.level() > 0 else None


_KERNEL: Any = _load_extension()


class Hash(Protocol):
    """What a download's check needs of an MD5: :class:`Md5`, or hashlib's."""

    def update(self, data: bytes | memoryview, /) -> None: ...
    def update_later(self, data: bytes | memoryview) -> None: ...
    def settle(self) -> None: ...
    def hexdigest(self) -> str: ...


class _Hashlib:
    """hashlib's MD5 as a :class:`Hash`: nothing is ever left for later."""

    __slots__ = ("_md5", "update", "update_later", "hexdigest")

    def __init__(self) -> None:
        self._md5 = hashlib.md5(usedforsecurity=False)
        self.update = self.update_later = self._md5.update
        self.hexdigest = self._md5.hexdigest

    def settle(self) -> None:
        pass


def lanes_usable() -> bool:
    """Whether :func:`new` can give lanes (read per call: tests compare both)."""
    return _KERNEL is not None and os.environ.get("XNAT_TUI_PURE_MD5", "") in ("", "0")


def new(*, streams: int = 1) -> Hash:
    """An MD5 for one of ``streams`` files hashed at once: lanes from two on, where
    :func:`lanes_usable` (a caller making many asks that once, and passes 1 if not)."""
    if streams > 1 and _KERNEL is not None:
        return Md5()
    return _Hashlib()


class _Job:
    """A run of whole blocks of one stream, queued for a batch."""

    __slots__ = ("state", "view", "done", "error", "gate")

    def __init__(self, state: bytearray, view: memoryview | bytes) -> None:
        self.state = state
        self.view = memoryview(view)  # the blocks not hashed yet
        self.done = False
        self.error: BaseException | None = None
        # Held while a thread sleeps until this job is done; released by the batch.
        self.gate: threading.Lock | None = None


class _Combiner:
    """The queue of blocks waiting to be hashed, and the batch that hashes them.

    Jobs are queued as bytes arrive and hashed only when a thread needs its stream's
    digest settled (its buffer is full, or its file complete): by then the other
    threads have queued theirs, and the batch fills its lanes. A stream's jobs run in
    the order queued, one at a time (each continues the state of the one before).

    The thread that finds no batch running runs one, until its own job and every job
    another thread sleeps on are done; a sleeping thread is woken only when its own
    job is (a lock of its own, not a condition every waiter wakes on).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[_Job] = []
        self._busy = False  # a batch is running
        self._gated = 0  # jobs not done that a thread sleeps on

    def submit(self, job: _Job) -> None:
        """Queues ``job``; its view must stay as it is until :meth:`wait` returns."""
        with self._lock:
            self._queue.append(job)

    def wait(self, job: _Job) -> None:
        """Returns once ``job`` is hashed into its state (by this thread or another)."""
        with self._lock:
            gate = None
            if job.done:
                pass
            elif self._busy:
                gate = job.gate = threading.Lock()
                gate.acquire()
                self._gated += 1
            else:
                self._busy = True
        if gate is not None:
            gate.acquire()  # the batch releases it once the job is done
        elif not job.done:
            self._run(job)
        if job.error is not None:
            raise job.error

    def _fill(self, active: list[_Job]) -> None:
        """Fills free lanes with the earliest queued job of streams not in a lane
        (under the lock)."""
        streams = {id(j.state) for j in active}
        taken: list[int] = []
        for i, j in enumerate(self._queue):
            if len(active) == LANES:
                break
            if id(j.state) not in streams:
                streams.add(id(j.state))
                active.append(j)
                taken.append(i)
        for i in reversed(taken):
            del self._queue[i]

    def _finish(self, job: _Job, error: BaseException | None = None) -> None:
        """Marks ``job`` done and wakes the thread sleeping on it (under the lock)."""
        job.done, job.error = True, error
        if job.gate is not None:
            self._gated -= 1
            job.gate.release()

    def _run(self, mine: _Job) -> None:
        """Hash queued jobs, eight streams at a time, until ``mine`` and every job a
        thread sleeps on are done; jobs begun and not done go back to the queue's front."""
        active: list[_Job] = []
        try:
            while True:
                with self._lock:
                    if mine.done and not self._gated:
                        self._queue[:0] = active
                        self._busy = False
                        return
                    self._fill(active)
                step = min(SLICE, *(len(j.view) // 64 for j in active))
                _KERNEL.compress(
                    [j.state for j in active], [j.view[: step * 64] for j in active], step
                )
                with self._lock:
                    for j in active:
                        j.view = j.view[step * 64 :]
                        if not j.view:
                            self._finish(j)
                active = [j for j in active if not j.done]
        except BaseException as exc:
            # Never reached in practice (the kernel only refuses bad sizes, which this
            # class never makes), but no thread may sleep forever on a dead batch.
            with self._lock:
                for j in active + self._queue:
                    if not j.done:
                        self._finish(j, exc)
                self._queue.clear()
                self._busy = False
            raise


_COMBINER = _Combiner()


class Md5:
    """hashlib-like MD5 whose blocks go through the shared batch.

    :meth:`update` returns once its bytes are hashed, as hashlib's does.
    :meth:`update_later` only queues them, so that the batch meets other files' bytes
    queued meanwhile: the caller keeps them unchanged until :meth:`settle`.
    """

    __slots__ = ("_state", "_tail", "_length", "_last")

    def __init__(self) -> None:
        self._state = bytearray(_IV)
        self._tail = b""  # bytes after the last whole block (< 64)
        self._length = 0
        self._last: _Job | None = None  # the last job queued (they run in order)

    def update(self, data: bytes | memoryview, /) -> None:
        self.update_later(data)
        self.settle()

    def update_later(self, data: bytes | memoryview) -> None:
        view = memoryview(data).cast("B")
        self._length += len(view)
        if self._tail:
            need = 64 - len(self._tail)
            if len(view) < need:
                self._tail += bytes(view)
                return
            self._queue(self._tail + bytes(view[:need]))
            view = view[need:]
            self._tail = b""
        whole = len(view) // 64 * 64
        if whole:
            self._queue(view[:whole])
        self._tail = bytes(view[whole:])

    def _queue(self, blocks: memoryview | bytes) -> None:
        self._last = _Job(self._state, blocks)
        _COMBINER.submit(self._last)

    def settle(self) -> None:
        """Waits until every byte given is hashed (the caller may reuse them then)."""
        last, self._last = self._last, None
        if last is not None:
            _COMBINER.wait(last)

    def digest(self) -> bytes:
        self.settle()
        pad = (55 - len(self._tail)) % 64
        last = self._tail + b"\x80" + bytes(pad) + struct.pack("<Q", (self._length * 8) % 2**64)
        state = bytearray(self._state)
        _KERNEL.compress([state], [last], len(last) // 64)
        return bytes(state)  # A, B, C, D little-endian: the digest's byte order

    def hexdigest(self) -> str:
        return self.digest().hex()
