"""A child process's own peak RSS, for the benchmarks' memory figures.

``wait4``'s ``ru_maxrss`` alone is not it when this script is the larger process:
``subprocess`` starts the child with vfork (or fork), and ``exec`` records the old memory
map's high-water mark (this script's) as the child's starting maximum. Measured: a
``sleep`` started from a 200 MB parent reports 211 MB; the same from ``/usr/bin/time``
reports 1.6 MB. So the child's own mark, the ``VmHWM`` of the map ``exec`` gave it, is
read from /proc while it runs (it only ever grows), for the child and every process it
starts (``wait4`` reports the largest of them); ``wait4``'s figure stands when it is above
this script's own mark, since then it can only be theirs.
"""

from __future__ import annotations

import os
import resource
import threading
from types import TracebackType


def _own_mark_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _hwm_kib(pid: int) -> int | None:
    """The process's VmHWM in KiB; None once it has exited (a zombie has none)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants now running."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{p}/task/{task}/children", "rb") as fh:
                    todo.extend(int(c) for c in fh.read().split())
            except OSError:
                pass
    return found


class PeakRss:
    """``with PeakRss() as peak: proc = Popen(...); peak.watch(proc.pid); ... wait4``,
    then ``peak.bytes(usage)``. Polls every ``interval`` seconds in a thread."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.parent_kib = 0
        self.polled_kib = 0
        self._pid = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakRss:
        self.parent_kib = _own_mark_kib()
        return self

    def watch(self, pid: int) -> None:
        """Start polling ``pid`` (already past its exec: Popen returns after it)."""
        self._pid = pid
        self._poll()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _poll(self) -> bool:
        """Read the tree's marks; False once the child itself has exited."""
        alive = False
        for pid in _tree(self._pid):
            kib = _hwm_kib(pid)
            if kib is not None:
                alive = alive or pid == self._pid
                self.polled_kib = max(self.polled_kib, kib)
        return alive

    def _run(self) -> None:
        while not self._stop.wait(self.interval) and self._poll():
            pass

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def bytes(self, usage: resource.struct_rusage) -> int:
        """The child's peak RSS in bytes, from its ``wait4`` usage and the polling."""
        if usage.ru_maxrss > self.parent_kib or not self.polled_kib:
            return usage.ru_maxrss * 1024
        return self.polled_kib * 1024
