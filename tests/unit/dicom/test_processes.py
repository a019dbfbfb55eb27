"""The scan's worker pool starts even when sys.stderr has no descriptor (inside the TUI)."""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.captured_stderr import run_with_captured_stderr
from xnat_tui.dicom.synthetic import write_bulk_tree

BODY = """
    from xnat_tui.dicom import scan as scan_module

    used = []
    for name in ("kill", "close"):
        original = getattr(scan_module._Pool, name)
        def wrapped(self, _original=original):
            used.append(len(self.executor._processes or {}))
            return _original(self)
        setattr(scan_module._Pool, name, wrapped)

    summary = scan_module.scan_all(
        [Path(sys.argv[1])], workers=2, use_cache=False, inline_limit=50
    )
    files = sum(s.file_count for s in summary.sessions)
    problems = len(summary.problems)
    print(f"files={files} problems={problems} pool_processes={max(used, default=0)}")
    """


def test_pool_backed_scan_with_a_stderr_whose_fileno_is_minus_one(tmp_path: Path) -> None:
    write_bulk_tree(tmp_path / "tree", 120, files_per_series=30, series_per_study=2)
    done = run_with_captured_stderr(BODY, str(tmp_path / "tree"))
    assert done.returncode == 0, done.stdout + done.stderr
    # Every file read, and by worker processes, not by the in-process fallback.
    assert "files=120 problems=0" in done.stdout, done.stdout
    processes = int(done.stdout.rsplit("pool_processes=", 1)[1])
    assert processes >= 1, done.stdout
