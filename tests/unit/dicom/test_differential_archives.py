"""The scanner on archive members agrees with the scanner on the same files on disk,
for every file of pydicom's offline test data (whose disk verdicts are checked
against pydicom's full read in test_differential_files.py): the same verdict, detail
and attributes, whether the member is reached by random access (stored and deflated
zip members, in the worker processes) or during a pass over a compressed tar."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.archives import make_archive
from tests.unit.dicom.test_differential_files import DATA_ROOT, FILES, reference
from xnat_tui.dicom import archives
from xnat_tui.dicom.worker import examine


def _disk(path: Path) -> tuple[str, str, dict[str, str] | None]:
    st = path.stat()
    _p, _s, _m, kind, detail, values, _n = examine(str(path), st.st_size, st.st_mtime_ns)
    return kind, detail, values


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("diff-archives")
    items: list[tuple[str, Path | bytes]] = [
        (p.relative_to(DATA_ROOT).as_posix(), p) for p in FILES
    ]
    return {
        "stored": make_archive(items, root / "all.zip", stored=True),
        "deflated": make_archive(items, root / "all.ZIP"),
        "tgz": make_archive(items, root / "all.tar.gz"),
    }


@pytest.mark.parametrize("how", ["stored", "deflated", "tgz"])
def test_members_are_examined_as_files_are(bundles: dict[str, Path], how: str) -> None:
    archive = bundles[how]
    seen = 0
    for entry in archives.walk_archive(str(archive)):
        assert isinstance(entry, archives.Entry), entry
        source = None if entry.stream is None else archives.hold(entry.stream, entry.size)
        _p, size, _m, kind, detail, values, _n = examine(entry.path, entry.size, 0, source=source)
        disk = DATA_ROOT / entry.path.split(archives.SEP, 1)[1]
        assert size == disk.stat().st_size
        assert (kind, detail, values) == _disk(disk), entry.path
        seen += 1
    assert seen == len(FILES)


def test_placed_members_carry_pydicoms_uids(bundles: dict[str, Path]) -> None:
    """Spot check against pydicom itself, through the archive."""
    placed = 0
    for entry in archives.walk_archive(str(bundles["deflated"])):
        assert isinstance(entry, archives.Entry)
        _p, _s, _m, kind, _d, values, _n = examine(entry.path, entry.size, 0)
        if kind or values is None:
            continue
        ref = reference(DATA_ROOT / entry.path.split(archives.SEP, 1)[1])
        if ref.damage:
            continue
        assert values["SOPInstanceUID"] == ref.values["SOPInstanceUID"]
        placed += 1
    assert placed > 100
