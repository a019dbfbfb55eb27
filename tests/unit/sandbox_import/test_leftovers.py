"""A restart removes what a killed upload left in ``<data-dir>/tmp`` (issue 14, item 9)."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from tests.fixtures.sandbox import SandboxFactory
from xnat_tui.sandbox.import_routes import remove_leftovers


async def test_start_removes_leftover_uploads_and_staging(
    sandbox_factory: SandboxFactory, demo_template: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    shutil.copytree(demo_template, data)
    tmp = data / "tmp"
    tmp.mkdir()
    body = tmp / f"upload-{uuid.uuid4().hex}"
    body.write_bytes(b"PK" * 1000)
    staging = tmp / f"import-{uuid.uuid4().hex}"
    (staging / "sub").mkdir(parents=True)
    (staging / "000001.dcm").write_bytes(b"x" * 1000)
    (staging / "sub" / "deep").write_bytes(b"x")
    # Not the sandbox's naming: left alone.
    keep = [tmp / "upload-notes.txt", tmp / "import-1234", tmp / "mine.zip"]
    for path in keep:
        path.write_text("keep")
    outside = data / f"upload-{uuid.uuid4().hex}"
    outside.write_text("not in tmp/")

    server = await sandbox_factory(data)
    assert server.data_dir == data
    assert not body.exists() and not staging.exists()
    assert all(p.exists() for p in keep) and outside.exists()


def test_remove_leftovers_without_a_tmp_dir(tmp_path: Path) -> None:
    assert remove_leftovers(tmp_path) == 0
    (tmp_path / "tmp").mkdir()
    (tmp_path / "tmp" / f"upload-{uuid.uuid4().hex}").write_bytes(b"")
    assert remove_leftovers(tmp_path) == 1
