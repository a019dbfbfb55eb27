"""Archives in the Folders pane: expandable nodes, marked and scanned like folders."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from tests.fixtures.archives import make_archive
from tests.ui.fakes import make_app, to_main, until
from xnat_tui.dicom.scan import scan_async
from xnat_tui.dicom.synthetic import SeriesSpec, write_study
from xnat_tui.ui.widgets.folders import FolderTree


def _labels(node: Any) -> list[str]:
    return sorted(str(n.label) for n in node.children)


def _bundle(tmp_path: Path) -> Path:
    for pid in ("ARC1", "ARC2"):
        write_study(tmp_path / "src" / pid, patient_id=pid, series=[SeriesSpec("MR", 1, "T1", 2)])
    inner = make_archive(tmp_path / "src" / "ARC2", tmp_path / "b" / "arc2.zip")
    return make_archive(
        [
            *[
                (f"ARC1/{p.relative_to(tmp_path / 'src' / 'ARC1')}", p)
                for p in (tmp_path / "src" / "ARC1").rglob("*.dcm")
            ],
            ("nested/arc2.zip", inner),
        ],
        tmp_path / "dicom" / "Bundle.TGZ",
    )


async def test_an_archive_expands_and_is_scanned_like_a_folder(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path)
    app, _, _ = make_app(tmp_path)
    requested: list[list[Path]] = []

    async def real_scan(paths: list[Path]) -> AsyncIterator[Any]:
        requested.append(list(paths))
        async for event in scan_async(paths, use_cache=False, workers=1):
            yield event

    app.scan = real_scan
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await to_main(pilot)
        tree = screen.query_one(FolderTree)
        await until(pilot, lambda: "Bundle.TGZ (archive)" in _labels(tree.root))
        node = next(n for n in tree.root.children if str(n.label).startswith("Bundle"))
        node.expand()
        await until(pilot, lambda: _labels(node) == ["ARC1", "nested"])
        nested = next(n for n in node.children if str(n.label) == "nested")
        nested.expand()
        await until(pilot, lambda: _labels(nested) == ["arc2.zip (archive)"])

        tree.focus()
        tree.move_cursor(node)
        await pilot.press("m")
        assert node.data is not None and node.data.path in tree.marked
        await pilot.press("s")
        await until(pilot, lambda: len(app.workbench) == 2 and not screen.folders.scanning)
        assert requested == [[bundle]]
        roots = sorted(str(i.session.root) for i in app.workbench.items.values())
        assert roots[0].startswith(f"{bundle}!ARC1")
        assert roots[1].startswith(f"{bundle}!nested/arc2.zip")
