"""``transfers retry --skip-missing`` asks the opener whether a file is still there, so
archive members (``a.zip!m``) count as present while their archive holds them."""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.archives import make_archive
from xnat_tui.transfer.journal import Journal, NewJob
from xnat_tui.transfer.opener import exists
from xnat_tui.transfer.types import Destination, Overwrite, SourceFile, SourceSeries


def _archives(tmp_path: Path) -> tuple[Path, Path]:
    inner = make_archive(
        [("s/2.dcm", b"B" * 10), ("s/3.dcm", b"C" * 10)], tmp_path / "parts" / "inner.tgz"
    )
    outer = make_archive([("s/1.dcm", b"A" * 10), ("inner.tgz", inner)], tmp_path / "a.zip")
    loose = tmp_path / "loose.dcm"
    loose.write_bytes(b"D" * 10)
    return outer, loose


def test_exists_knows_files_on_disk_and_members_at_any_depth(tmp_path: Path) -> None:
    outer, loose = _archives(tmp_path)
    assert exists(str(loose))
    assert exists(f"{outer}!s/1.dcm")
    assert exists(f"{outer}!inner.tgz!s/3.dcm")
    assert not exists(f"{outer}!s/9.dcm")
    assert not exists(f"{outer}!inner.tgz!s/9.dcm")
    assert not exists(str(tmp_path / "gone.dcm"))
    outer.unlink()
    assert not exists(f"{outer}!s/1.dcm")


def test_skip_missing_drops_only_what_is_really_gone(tmp_path: Path) -> None:
    outer, loose = _archives(tmp_path)
    paths = [
        f"{outer}!s/1.dcm",
        f"{outer}!inner.tgz!s/2.dcm",
        f"{outer}!inner.tgz!s/gone.dcm",
        str(loose),
        str(tmp_path / "gone.dcm"),
    ]
    journal = Journal(tmp_path / "j.sqlite3")
    files = [SourceFile(Path(p), 10, 0.0, f"1.2.{i}") for i, p in enumerate(paths)]
    [jid] = journal.create_jobs(
        [
            NewJob(
                server="http://127.0.0.1:9",
                username="alice",
                project="P",
                subject="S",
                label="L",
                study_uid="1.2",
                destination=Destination.PREARCHIVE,
                overwrite=Overwrite.NONE,
                series=[SourceSeries("1.2.3", 1, "T1", "MR", files=files)],
            )
        ]
    )
    dropped = journal.drop_missing_files(jid, exists)
    assert dropped == [f"{outer}!inner.tgz!s/gone.dcm", str(tmp_path / "gone.dcm")]
    assert [s.file_count for s in journal.series(jid)] == [3]
    journal.close()
