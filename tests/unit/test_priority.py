"""Background threads lower their own CPU priority, not the process's."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

from xnat_tui.dicom.model import ScanBatch
from xnat_tui.dicom.scan import scan_async
from xnat_tui.dicom.synthetic import write_bulk_tree
from xnat_tui.priority import BACKGROUND_NICENESS, lower_this_thread

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice is Linux's")


@linux_only
def test_lowering_a_thread_leaves_the_caller_alone() -> None:
    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen: list[int] = []

    def background() -> None:
        lower_this_thread()
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    t = threading.Thread(target=background)
    t.start()
    t.join()
    assert seen == [min(19, before + BACKGROUND_NICENESS)]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before


@linux_only
async def test_scan_async_steps_run_in_a_lower_priority_thread(tmp_path: Path) -> None:
    write_bulk_tree(tmp_path / "t", 40, files_per_series=10)
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    priorities: set[int] = set()
    async for event in scan_async([tmp_path / "t"], use_cache=False, workers=1):
        if isinstance(event, ScanBatch):
            for t in threading.enumerate():
                if t.name.startswith("dicom-scan") and t.native_id is not None:
                    priorities.add(os.getpriority(os.PRIO_PROCESS, t.native_id))
    assert priorities == {min(19, mine + BACKGROUND_NICENESS)}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine
