"""Bad archives are problems naming the archive and the member: never a crash."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fixtures.archives import make_archive
from tests.fixtures.dicom import SmallTree
from xnat_tui.dicom import archives
from xnat_tui.dicom.archives import Limits, walk_archive
from xnat_tui.dicom.scan import scan_all


def _problems(path: Path) -> list[tuple[str, str, str]]:
    summary = scan_all([path], use_cache=False, workers=1)
    return sorted((p.path, p.kind, p.detail) for p in summary.all_problems)


def _dicom(tree: SmallTree, n: int = 2) -> list[tuple[str, Path | bytes]]:
    return [(p.name, p) for p in tree.paths[:n]]


def test_a_truncated_zip_is_named(dicom_tree: SmallTree, tmp_path: Path) -> None:
    archive = make_archive(dicom_tree.root, tmp_path / "a.zip")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    (problem,) = _problems(archive)
    assert problem[0] == str(archive) and problem[1] == "corrupt"
    assert "zip" in problem[2]


@pytest.mark.parametrize("name", ["a.tar.gz", "a.tar.bz2", "a.tar.xz"])
def test_a_truncated_compressed_tar_keeps_what_came_before(
    dicom_tree: SmallTree, tmp_path: Path, name: str
) -> None:
    archive = make_archive(dicom_tree.root, tmp_path / name)
    archive.write_bytes(archive.read_bytes()[: int(archive.stat().st_size * 0.6)])
    summary = scan_all([archive], use_cache=False, workers=1)
    problems = [p for p in summary.problems if p.path == str(archive)]
    assert problems and "truncated" in problems[0].detail
    assert sum(s.file_count for s in summary.sessions) < len(dicom_tree.paths)  # what came before


def test_hostile_member_names_links_and_duplicates(dicom_tree: SmallTree, tmp_path: Path) -> None:
    buf = tmp_path / "bad.tar"
    good = dicom_tree.paths[0].read_bytes()
    with tarfile.open(buf, "w") as tar:
        for name in ("../escape.dcm", "/abs/olute.dcm", "ok.dcm", "ok.dcm"):
            info = tarfile.TarInfo(name)
            info.size = len(good)
            tar.addfile(info, io.BytesIO(good))
        link = tarfile.TarInfo("link.dcm")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    got = {(p[0].split("!", 1)[1], p[1]): p[2] for p in _problems(buf)}
    assert "climbs out" in got[("../escape.dcm", "corrupt")]
    assert "absolute" in got[("/abs/olute.dcm", "corrupt")]
    assert "duplicate member name" in got[("ok.dcm", "corrupt")]
    assert "symbolic link" in got[("link.dcm", "not-dicom")]
    summary = scan_all([buf], use_cache=False, workers=1)
    assert summary.sessions[0].file_count == 1  # the first ok.dcm only


def test_an_encrypted_member_is_named(dicom_tree: SmallTree, tmp_path: Path) -> None:
    archive = make_archive(_dicom(dicom_tree), tmp_path / "enc.zip", stored=True)
    raw = bytearray(archive.read_bytes())
    first = dicom_tree.paths[0].name.encode()
    # Set the "encrypted" flag of the first member, in its local and central headers.
    for header, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = raw.index(header)
        while raw[at : at + 4] == header:
            nlen_at = 26 if header == b"PK\x03\x04" else 28
            nlen = int.from_bytes(raw[at + nlen_at : at + nlen_at + 2], "little")
            name_at = at + (30 if header == b"PK\x03\x04" else 46)
            if bytes(raw[name_at : name_at + nlen]) == first:
                raw[at + flag_at] |= 1
                break
            at = raw.index(header, at + 4)
    archive.write_bytes(bytes(raw))
    got = _problems(archive)
    assert (f"{archive}!{first.decode()}", "unreadable", "encrypted member: cannot be read") in got


def test_zip_bombs_are_refused_by_ratio(tmp_path: Path) -> None:
    archive = make_archive([("zeros.dcm", bytes(50 << 20))], tmp_path / "bomb.zip")
    (problem,) = _problems(archive)
    assert problem[0] == f"{archive}!zeros.dcm" and "compression ratio" in problem[2]


def test_a_tar_gz_bomb_stops_the_pass(tmp_path: Path) -> None:
    archive = make_archive([("zeros.dcm", bytes(50 << 20))], tmp_path / "bomb.tgz")
    events = list(walk_archive(str(archive), Limits(max_ratio=100)))
    assert any(isinstance(e, archives.Problem) and "ratio" in e.detail for e in events)


def test_a_corrupt_archive_inside_an_archive(dicom_tree: SmallTree, tmp_path: Path) -> None:
    inner = make_archive(_dicom(dicom_tree), tmp_path / "b" / "inner.zip")
    inner.write_bytes(inner.read_bytes()[:100])
    outer = make_archive(
        [("inner.zip", inner), *[(f"ok/{n}", p) for n, p in _dicom(dicom_tree, 1)]],
        tmp_path / "outer.tgz",
    )
    summary = scan_all([outer], use_cache=False, workers=1)
    assert summary.problems
    assert all(p.path.startswith(f"{outer}!inner.zip") for p in summary.problems)
    assert any(p.path == f"{outer}!inner.zip" and "truncated" in p.detail for p in summary.problems)
    assert summary.sessions[0].file_count == 1


def test_nesting_past_the_limit(tmp_path: Path) -> None:
    built = make_archive([("x.dcm", b"not dicom")], tmp_path / "b0" / "l0.zip")
    for i in range(1, 11):
        built = make_archive([(built.name, built)], tmp_path / f"b{i}" / f"l{i}.zip")
    problems = [p for p in scan_all([built], use_cache=False, workers=1).problems]
    assert any("nested more than" in p.detail for p in problems)


def test_not_an_archive_despite_its_name(tmp_path: Path) -> None:
    for name in ("fake.zip", "fake.tgz", "fake.tar"):
        (tmp_path / name).write_bytes(b"hello, this is text\n" * 50)
        ((path, kind, detail),) = _problems(tmp_path / name)
        assert path == str(tmp_path / name) and kind == "corrupt"


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.binary(min_size=0, max_size=3000),
    cut=st.integers(0, 3000),
    fmt=st.sampled_from(["zip", "tgz", "tar"]),
)
def test_damaged_bytes_never_crash_the_walk(
    tmp_path: Path, data: bytes, cut: int, fmt: str
) -> None:
    """Generated archives, cut and flipped anywhere: every event is an entry or a
    problem, and every entry can be read or says why not."""
    buf = io.BytesIO()
    if fmt == "zip":
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("a/x.dcm", data)
            z.writestr("b.dcm", data[::-1])
    else:
        with tarfile.open(fileobj=buf, mode="w:gz" if fmt == "tgz" else "w") as t:
            for name, body in (("a/x.dcm", data), ("b.dcm", data[::-1])):
                info = tarfile.TarInfo(name)
                info.size = len(body)
                t.addfile(info, io.BytesIO(body))
    raw = bytearray(buf.getvalue())
    if raw and cut < len(raw):
        raw[cut] ^= 0x5A
    path = tmp_path / f"g.{fmt}"
    path.write_bytes(bytes(raw[: max(cut, len(raw) // 2)] if cut % 3 == 0 else raw))
    for event in walk_archive(str(path)):
        if isinstance(event, archives.Entry) and event.stream is not None:
            try:
                event.stream.read()
            except Exception:  # noqa: BLE001 - reading may fail; the walk must go on
                pass
    summary = scan_all([path], use_cache=False, workers=1)
    assert all(p.path.startswith(str(path)) for p in summary.problems)


@pytest.mark.parametrize("name", ["a.tar.gz", "a.tar.xz", "a.tar.bz2"])
def test_a_compressed_tar_cut_anywhere_is_reported_as_cut(
    dicom_tree: SmallTree, tmp_path: Path, name: str
) -> None:
    # Wherever the cut falls (inside a member, at a header boundary where tarfile sees a
    # clean end, or where it reads an empty header), the scan says the archive was cut:
    # never a silent end, never a misleading "damaged or not a tar".
    whole = make_archive(dicom_tree.root, tmp_path / name).read_bytes()
    for percent in range(10, 100, 7):
        cut = tmp_path / f"cut{percent}" / name
        cut.parent.mkdir()
        cut.write_bytes(whole[: len(whole) * percent // 100])
        summary = scan_all([cut], use_cache=False, workers=1)
        problems = [p for p in summary.problems if p.path == str(cut)]
        assert problems and "truncated" in problems[0].detail, (percent, problems)
