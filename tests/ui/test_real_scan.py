"""The shipped scan path (scanner process pool) driven from inside the running app.

Nothing is started before the app: the pool's helpers start under Textual's captured
stderr (see ``xnat_tui.dicom.processes``).
"""

from __future__ import annotations

import os
import time

from textual.message import Message

from tests.ui.fakes import make_app, to_main, until
from tests.ui.screen_text import notifications
from xnat_tui.dicom.synthetic import write_bulk_tree
from xnat_tui.ui.launch import scan_tree


async def test_scans_with_worker_processes_run_back_to_back(tmp_path):
    # Above the scanner's in-process limit, so its worker pool is used each time.
    write_bulk_tree(tmp_path / "a", 440, files_per_series=110, series_per_study=2)
    write_bulk_tree(tmp_path / "b", 440, files_per_series=110, series_per_study=4, seed="b")
    old = time.time() - 60  # the rescan cache does not trust files younger than 2 s
    for root, _, files in os.walk(tmp_path):
        for name in files:
            os.utime(os.path.join(root, name), (old, old))
    app, _, _ = make_app(tmp_path)
    app.scan = scan_tree
    seen: list[Message] = []
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        screen = await to_main(pilot)
        screen.start_scan([tmp_path / "a"])
        await until(pilot, lambda: not screen.folders.scanning, 60)
        assert len(app.workbench) == 2
        screen.start_scan([tmp_path / "b"])
        await until(pilot, lambda: not screen.folders.scanning, 60)
        assert len(app.workbench) == 3
        assert "Scan done: 440 DICOM files, 1 sessions" in str(
            screen.query_one("#scan-status").render()
        )
        # Scanning "a" again: the tree is as it was, its last result comes back whole.
        screen.start_scan([tmp_path / "a"])
        await until(pilot, lambda: not screen.folders.scanning, 60)
        status = str(screen.query_one("#scan-status").render())
        assert "Scan done: 440 DICOM files, 2 sessions" in status
        assert "s, tree unchanged)" in status
        assert len(app.workbench) == 3
        assert not any(n.severity == "error" for n in notifications(seen))
