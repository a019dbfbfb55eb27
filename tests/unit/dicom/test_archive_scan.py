"""Archives are scanned like folders: every format, nested, read in place."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import pytest

from tests.fixtures.archives import make_archive
from tests.fixtures.dicom import SmallTree
from xnat_tui.cli import main
from xnat_tui.dicom.model import ScanSummary
from xnat_tui.dicom.scan import scan_all

FORMATS = ["a.zip", "a.ZIP", "a.tar", "a.tar.gz", "a.TGZ", "a.tar.bz2", "a.tar.xz"]


def _by_sop(summary: ScanSummary) -> dict[str, tuple[str, str, int]]:
    return {
        f.sop_instance_uid: (f.study_instance_uid, f.series_instance_uid, f.size)
        for s in summary.sessions
        for sc in s.scans.values()
        for f in sc.files
    }


def _paths(summary: ScanSummary) -> set[str]:
    return {f.path_str for s in summary.sessions for f in s.files}


@pytest.mark.parametrize("name", FORMATS)
def test_an_archive_gives_the_sessions_its_folder_gives(
    dicom_tree: SmallTree, tmp_path: Path, name: str
) -> None:
    folder = scan_all([dicom_tree.root], use_cache=False, workers=1)
    archive = make_archive(dicom_tree.root, tmp_path / "in" / name)
    summary = scan_all([archive], use_cache=False, workers=1)
    assert _by_sop(summary) == _by_sop(folder)
    assert [(s.patient_id, s.file_count) for s in summary.sessions] == [
        (s.patient_id, s.file_count) for s in folder.sessions
    ]
    # Every file says where it came from: archive!member.
    expected = {f"{archive}!{os.path.relpath(p, dicom_tree.root)}" for p in dicom_tree.paths}
    assert _paths(summary) == expected
    assert not summary.problems


def test_archives_are_found_in_folders_and_inside_archives(
    dicom_tree: SmallTree, tmp_path: Path
) -> None:
    """A zip of session zips, a tgz of zips: nested to any depth, stored or deflated."""
    studies = dicom_tree.studies
    inner = [
        make_archive(studies[0].root, tmp_path / "build" / "s1.zip"),
        make_archive(studies[1].root, tmp_path / "build" / "s2.zip", stored=True),
    ]
    tgz = make_archive([(p.name, p) for p in inner], tmp_path / "build" / "both.tgz")
    make_archive(
        [
            ("deep/both.tgz", tgz),
            ("flat.tar", make_archive(studies[2].root, tmp_path / "b" / "f.tar")),
        ],
        tmp_path / "in" / "bundle.zip",
    )
    summary = scan_all([tmp_path / "in"], use_cache=False, workers=1)
    assert sorted(s.patient_id for s in summary.sessions) == ["SUBJ01", "SUBJ02", "SUBJ03"]
    assert sum(s.file_count for s in summary.sessions) == len(dicom_tree.paths)
    bundle = tmp_path / "in" / "bundle.zip"
    roots = {s.patient_id: str(s.root) for s in summary.sessions}
    assert roots["SUBJ01"].startswith(f"{bundle}!deep/both.tgz!s1.zip")
    assert roots["SUBJ02"].startswith(f"{bundle}!deep/both.tgz!s2.zip")
    assert roots["SUBJ03"].startswith(f"{bundle}!flat.tar")


def test_a_session_spread_over_archives_and_a_folder_is_one_session(
    dicom_factory: object, tmp_path: Path
) -> None:
    from xnat_tui.dicom.synthetic import SeriesSpec, write_study

    study = write_study(
        tmp_path / "src",
        patient_id="P1",
        series=[
            SeriesSpec("MR", 1, "a", 2),
            SeriesSpec("MR", 2, "b", 2),
            SeriesSpec("MR", 3, "c", 2),
        ],
    )
    dirs = sorted({p.parent for p in study.paths})
    make_archive(dirs[0], tmp_path / "in" / "one.zip")
    make_archive(dirs[1], tmp_path / "in" / "two.tar.gz")
    (tmp_path / "in" / "loose").mkdir()
    for p in dirs[2].iterdir():
        (tmp_path / "in" / "loose" / p.name).write_bytes(p.read_bytes())
    summary = scan_all([tmp_path / "in"], use_cache=False, workers=1)
    assert len(summary.sessions) == 1
    session = summary.sessions[0]
    assert session.file_count == 6 and len(session.scans) == 3
    assert str(session.root) == str(tmp_path / "in")


def test_a_folder_inside_an_archive_can_be_a_root(dicom_tree: SmallTree, tmp_path: Path) -> None:
    archive = make_archive(dicom_tree.root, tmp_path / "a.zip")
    summary = scan_all([f"{archive}!SUBJ02"], use_cache=False, workers=1)
    assert [s.patient_id for s in summary.sessions] == ["SUBJ02"]
    whole = scan_all([f"{archive}!"], use_cache=False, workers=1)
    assert len(whole.sessions) == 3


def test_scan_json_shows_member_paths(
    dicom_tree: SmallTree, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = make_archive(dicom_tree.root, tmp_path / "bundle.tgz")
    code = main(["scan", "--json", "--files", "--no-cache", str(archive)])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    paths = {f["path"] for s in out["sessions"] for sc in s["scans"] for f in sc["files"]}
    assert paths and all(p.startswith(f"{archive}!") for p in paths)
    assert {s["root"].split("!", 1)[0] for s in out["sessions"]} == {str(archive)}


def test_scan_text_names_the_archive(
    dicom_tree: SmallTree, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = make_archive(dicom_tree.root, tmp_path / "X.ZIP")
    assert main(["scan", "--no-cache", str(archive)]) == 0
    out = capsys.readouterr().out
    assert "3 sessions" in out
    assert f"{archive}!SUBJ01" in out


def test_macos_litter_inside_a_zip_is_skipped_once(dicom_tree: SmallTree, tmp_path: Path) -> None:
    items: list[tuple[str, Path | bytes]] = [
        (os.path.relpath(p, dicom_tree.root), p) for p in dicom_tree.paths
    ]
    items += [(f"__MACOSX/._{i}", b"\0\5\26\7junk") for i in range(5)]
    items += [("SUBJ01/.DS_Store", b"junk")]
    archive = make_archive(items, tmp_path / "mac.zip")
    summary = scan_all([archive], use_cache=False, workers=1)
    kinds = sorted((p.kind, p.path) for p in summary.problems)
    assert kinds == [
        ("junk", f"{archive}!SUBJ01/.DS_Store"),
        ("junk", f"{archive}!__MACOSX"),
    ]
    assert sum(s.file_count for s in summary.sessions) == len(dicom_tree.paths)


def test_the_pool_reads_members_like_the_scanner_thread(
    dicom_tree: SmallTree, tmp_path: Path
) -> None:
    """Worker processes (random access) and the in-thread pass agree."""
    archive = make_archive(dicom_tree.root, tmp_path / "a.zip")
    pooled = scan_all([archive], use_cache=False, workers=2, inline_limit=1, chunk=2)
    inline = scan_all([archive], use_cache=False, workers=1)
    assert _by_sop(pooled) == _by_sop(inline)
    assert _paths(pooled) == _paths(inline)


def test_nothing_is_written_while_scanning(
    dicom_tree: SmallTree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read in place: no file is created anywhere but the cache (which is off here)."""
    import builtins

    archive = make_archive(dicom_tree.root, tmp_path / "a.tar.xz")
    real_open = builtins.open
    writes: list[str] = []

    def spy(file: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        if any(c in mode for c in "wax+"):
            writes.append(str(file))
        return real_open(file, mode, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(builtins, "open", spy)
    summary = scan_all([archive], use_cache=False, workers=1)
    assert sum(s.file_count for s in summary.sessions) == len(dicom_tree.paths)
    assert writes == []


def _zip_bytes(entries: list[tuple[str, bytes]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in entries:
            z.writestr(name, data)
    return buf.getvalue()
