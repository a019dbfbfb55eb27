"""Client-side anonymization's worker pool starts inside the TUI (stderr without a descriptor)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from xnat_tui.dicom.synthetic import write_bulk_tree

# A fresh interpreter, so no earlier test has already started the resource tracker.
SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    class CapturedStderr:
        # What Textual puts in sys.stderr while the app runs.
        def write(self, text): return len(text)
        def flush(self): pass
        def fileno(self): return -1

    sys.stderr = CapturedStderr()
    import traceback
    sys.excepthook = lambda *exc: traceback.print_exception(*exc, file=sys.stdout)

    from xnat_tui.transfer.anon import AnonymizerSet

    anons = AnonymizerSet(workers=1)
    anons.add("P", "basic", [])
    key = next(iter(anons._anons))
    from xnat_tui.transfer.anon import _anonymize_in_worker

    path = sorted(Path(sys.argv[1]).rglob("*.dcm"))[0]
    data = path.read_bytes()
    names = {"subject": "S", "session": "E"}
    out = anons.pool().submit(_anonymize_in_worker, key, data, names).result(timeout=60)
    anons.close()
    print(f"in={len(data)} out={len(out)} changed={out != data}")
    """
)


def test_anonymization_pool_starts_with_a_stderr_whose_fileno_is_minus_one(
    tmp_path: Path,
) -> None:
    write_bulk_tree(tmp_path / "tree", 2, files_per_series=2, series_per_study=1)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "tree")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "changed=True" in done.stdout, done.stdout
