"""The packer streams archive members into the per-series zip: no temp copy."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest

from tests.fixtures.archives import make_archive
from xnat_tui.dicom import archives
from xnat_tui.transfer import Compression, SeriesPacker, SourceChanged, SourceFile
from xnat_tui.transfer.opener import ArchiveMembers, LocalFiles, kind_of, open_in_order


def _payloads(n: int = 4, size: int = 40_000) -> dict[str, bytes]:
    return {f"ser/IM{i}.dcm": bytes((i * 7 + k) % 251 for k in range(size)) for i in range(n)}


def _sources(archive: Path, members: dict[str, bytes]) -> list[SourceFile]:
    mtime = archive.stat().st_mtime_ns / 1e9
    return [
        SourceFile(Path(archives.join(str(archive), name)), len(data), mtime, f"1.2.{i}")
        for i, (name, data) in enumerate(members.items())
    ]


async def _pack(files: list[SourceFile], compression: Compression = Compression.STORED) -> bytes:
    packer = SeriesPacker("1.2.840.9", files, compression=compression)
    return b"".join([c async for c in packer.body()])


def _build(tmp_path: Path, name: str, members: dict[str, bytes]) -> Path:
    """``name`` may nest: ``outer.zip/inner.tgz`` puts the inner archive in the outer."""
    *outers, inner = name.split("/")
    built = make_archive(list(members.items()), tmp_path / "b" / inner)  # type: ignore[arg-type]
    for outer in reversed(outers):
        built = make_archive([(built.name, built)], tmp_path / "b2" / outer)
    return built


@pytest.mark.parametrize(
    "layout",
    [
        "a.zip",
        "a.tar",
        "a.tgz",
        "a.tar.bz2",
        "a.tar.xz",
        "o.zip/i.zip",
        "o.tgz/i.zip",
        "o.zip/i.tgz",
    ],
)
@pytest.mark.parametrize("compression", [Compression.STORED, Compression.DEFLATE])
async def test_members_are_sent_byte_for_byte(
    tmp_path: Path, layout: str, compression: Compression
) -> None:
    members = _payloads()
    built = _build(tmp_path, layout, members)
    if "/" in layout:
        inner = layout.split("/")[-1]
        members = {f"{inner}{archives.SEP}{k}": v for k, v in members.items()}
    src = _sources(built, members)
    zf = zipfile.ZipFile(io.BytesIO(await _pack(src, compression)))
    got = sorted(zf.read(i) for i in zf.infolist())
    assert got == sorted(members.values())


async def test_a_member_that_fails_its_crc_is_named(tmp_path: Path) -> None:
    members = _payloads(2)
    archive = make_archive(list(members.items()), tmp_path / "a.zip", stored=True)  # type: ignore[arg-type]
    raw = bytearray(archive.read_bytes())
    at = raw.index(b"ser/IM1.dcm")  # the second member's local header (its name)
    raw[at + 200] ^= 0xFF  # one byte of its data
    archive.write_bytes(bytes(raw))
    os.utime(archive, ns=(archive.stat().st_atime_ns, archive.stat().st_mtime_ns))
    with pytest.raises(SourceChanged) as err:
        await _pack(_sources(archive, members))
    assert "IM1.dcm" in str(err.value) and "CRC" in str(err.value)


async def test_a_changed_archive_is_refused(tmp_path: Path) -> None:
    members = _payloads(2)
    archive = make_archive(list(members.items()), tmp_path / "a.tgz")  # type: ignore[arg-type]
    src = _sources(archive, members)
    os.utime(archive, (1, 1))
    with pytest.raises(SourceChanged) as err:
        await _pack(src)
    assert "archive changed since it was scanned" in str(err.value)


async def test_a_member_gone_from_its_archive_is_named(tmp_path: Path) -> None:
    members = _payloads(2)
    archive = make_archive(list(members.items()), tmp_path / "a.tar.gz")  # type: ignore[arg-type]
    src = _sources(archive, members)
    src.append(SourceFile(Path(f"{archive}!ser/nope.dcm"), 10, src[0].mtime, "1.2.99"))
    with pytest.raises(SourceChanged) as err:
        await _pack(src)
    assert "nope.dcm" in str(err.value) and "no longer in its archive" in str(err.value)


def test_one_pass_per_compressed_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """All the members a series needs from a tgz come from one pass over it."""
    members = _payloads(6)
    archive = make_archive(list(members.items()), tmp_path / "a.tgz")  # type: ignore[arg-type]
    passes: list[str] = []
    real = archives.walk_archive

    def counted(path: str, *a: object) -> object:
        passes.append(path)
        return real(path, *a)  # type: ignore[arg-type]

    monkeypatch.setattr(archives, "walk_archive", counted)
    src = _sources(archive, members)[::-1]  # asked for in the reverse order
    seen = []
    for i, f, _kind, fh in open_in_order(src):
        assert fh.read() == members[str(f.path).split("!")[1]]
        fh.close()
        seen.append(i)
    assert sorted(seen) == list(range(6))
    assert passes == [str(archive)]


def test_source_kinds(tmp_path: Path) -> None:
    assert isinstance(kind_of(SourceFile(tmp_path / "x.dcm", 1)), LocalFiles)
    assert isinstance(kind_of(SourceFile(tmp_path / "a.zip!x.dcm", 1)), ArchiveMembers)
    # A "!" that is not after an archive name is an ordinary file name.
    assert isinstance(kind_of(SourceFile(tmp_path / "a!x.dcm", 1)), LocalFiles)
