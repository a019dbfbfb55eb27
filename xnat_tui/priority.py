"""CPU priority of background work: the thread the user is waiting on comes first.

Scanning and zip packing run in threads of the same process as the event loop that
draws the screen and reads keys. When the machine is busy (a shared login node, or
the sandbox server on the same cores) the operating system shares the cores between
all runnable threads alike, so a key press could wait for the scan thread's time
slice. On Linux a thread has its own nice value; background threads raise theirs.
"""

from __future__ import annotations

import contextlib
import os
import threading

# Added to a background thread's nice value (lower priority; undoing it needs privileges).
BACKGROUND_NICENESS = 5


def lower_this_thread(delta: int = BACKGROUND_NICENESS) -> None:
    """Lower the calling thread's CPU priority, where the platform allows it per thread.

    Linux only: there ``setpriority`` on a thread id affects just that thread. Elsewhere
    it would lower the whole process (the UI included), so nothing is done.
    """
    if not (hasattr(os, "setpriority") and os.uname().sysname == "Linux"):
        return
    tid = threading.get_native_id()
    with contextlib.suppress(OSError):
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, current + delta))
