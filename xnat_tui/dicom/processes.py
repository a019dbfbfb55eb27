"""Worker-process helpers that also start from inside a full-screen app.

multiprocessing's resource tracker hands ``sys.stderr.fileno()`` to the process it
spawns. Textual replaces ``sys.stderr`` with a capture object whose ``fileno()`` is
-1, so the first pool started inside the running TUI failed with "bad value(s) in
fds_to_keep". The tracker (and the fork server, which starts the tracker) are
therefore started here with a stderr that has a real descriptor; once running they
are reused by every later pool.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import multiprocessing.context

_lock = threading.Lock()


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, where the system has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def _has_descriptor(stream: object) -> bool:
    try:
        return int(stream.fileno()) >= 0  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - no fileno(), closed, or not an int: unusable
        return False


@contextlib.contextmanager
def usable_stderr() -> Iterator[None]:
    """``sys.stderr`` with a real descriptor for the duration (a no-op when it has one).

    The stand-in is /dev/null, not the terminal: a TUI is drawing on the terminal, and
    the helper processes have nothing to say to the user there.
    """
    if _has_descriptor(sys.stderr):
        yield
        return
    saved = sys.stderr
    with open(os.devnull, "w", encoding="utf-8") as devnull:
        sys.stderr = devnull
        try:
            yield
        finally:
            sys.stderr = saved


def start_helpers(preload: list[str] | None = None) -> None:
    """Start the resource tracker (and the fork server, when used) if not running yet."""
    import multiprocessing
    from multiprocessing import resource_tracker

    with _lock, usable_stderr():
        resource_tracker.ensure_running()
        if "forkserver" in multiprocessing.get_all_start_methods():
            from multiprocessing import forkserver

            if preload:
                multiprocessing.get_context("forkserver").set_forkserver_preload(preload)
            forkserver.ensure_running()


def worker_context() -> multiprocessing.context.BaseContext:
    """Where worker processes come from, with their helpers already running.

    Not plain ``fork``: the TUI scans from a thread, and forking a threaded process
    can deadlock the child. The fork server is a clean single-threaded process
    started once (it preloads only the worker module, not the app), then forks
    workers in milliseconds; ``spawn`` is the portable fallback.
    """
    import multiprocessing

    preload = ["xnat_tui.dicom.worker"]
    start_helpers(preload)
    if "forkserver" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("forkserver")
    return multiprocessing.get_context("spawn")
