"""Client-side anonymization's worker pool starts inside the TUI (stderr without a descriptor)."""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.captured_stderr import run_with_captured_stderr
from xnat_tui.dicom.synthetic import write_bulk_tree

BODY = """
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


def test_anonymization_pool_starts_with_a_stderr_whose_fileno_is_minus_one(
    tmp_path: Path,
) -> None:
    write_bulk_tree(tmp_path / "tree", 2, files_per_series=2, series_per_study=1)
    done = run_with_captured_stderr(BODY, str(tmp_path / "tree"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "changed=True" in done.stdout, done.stdout
