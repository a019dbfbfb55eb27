from __future__ import annotations

import hashlib
import io
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest

from xnat_tui.transfer import Compression, SeriesPacker, SourceChanged, SourceFile
from xnat_tui.transfer.packer import entry_names


def files(tmp: Path, n: int = 3, size: int = 5000, same_sop: bool = False) -> list[SourceFile]:
    out = []
    for i in range(n):
        p = tmp / f"IM{i}"
        p.write_bytes(bytes((i + k) % 256 for k in range(size)))
        out.append(SourceFile(p, size, p.stat().st_mtime, "1.2.3" if same_sop else f"1.2.{i}"))
    return out


async def collect(packer: SeriesPacker) -> bytes:
    return b"".join([c async for c in packer.body()])


@pytest.mark.parametrize("compression", [Compression.STORED, Compression.DEFLATE])
async def test_zip_is_readable_without_data_descriptors_and_manifest_matches(
    tmp_path: Path, compression: Compression
) -> None:
    src = files(tmp_path)
    packer = SeriesPacker("1.2.840.5", src, compression=compression)
    data = await collect(packer)
    zf = zipfile.ZipFile(io.BytesIO(data))
    for info, entry, f in zip(zf.infolist(), packer.manifest, src, strict=True):
        body = zf.read(info)
        assert body == f.path.read_bytes()
        assert info.filename == entry.name
        assert entry.crc32 == zlib.crc32(body) and entry.md5 == hashlib.md5(body).hexdigest()
        if compression is Compression.STORED:
            # XNAT's ZipInputStream refuses stored entries with a data descriptor.
            assert info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 0x08
        else:
            assert info.compress_type == zipfile.ZIP_DEFLATED
    if compression is Compression.DEFLATE:
        assert len(data) < sum(f.size for f in src)
    assert packer.files_done == 3 and packer.bytes_done == sum(f.size for f in src)


def test_entry_names_are_unique() -> None:
    src = [SourceFile(Path(f"/x/{i}"), 1, 0, "1.2.3") for i in range(3)]
    src.append(SourceFile(Path("/x/odd name.dcm"), 1, 0, ""))
    names = entry_names("1.2", src)
    assert len(set(names)) == 4 and all(n.startswith("1.2/") for n in names)


async def test_vanished_or_changed_file_is_named(tmp_path: Path) -> None:
    src = files(tmp_path)
    src[1].path.unlink()
    with pytest.raises(SourceChanged, match="IM1: vanished"):
        await collect(SeriesPacker("1.2", src))
    src = files(tmp_path)
    src[2].path.write_bytes(b"shorter")
    with pytest.raises(SourceChanged, match="changed since it was scanned"):
        await collect(SeriesPacker("1.2", src))


async def test_transform_hook_changes_what_is_sent_not_the_file(tmp_path: Path) -> None:
    src = files(tmp_path, n=2)
    before = [f.path.read_bytes() for f in src]
    packer = SeriesPacker("1.2", src, transform=lambda path, data: b"ANON" + data[4:])
    zf = zipfile.ZipFile(io.BytesIO(await collect(packer)))
    assert all(zf.read(n).startswith(b"ANON") for n in zf.namelist())
    assert [f.path.read_bytes() for f in src] == before
    assert packer.manifest[0].md5 == hashlib.md5(b"ANON" + before[0][4:]).hexdigest()


async def test_large_file_streamed_in_two_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import xnat_tui.transfer.packer as packer_mod

    monkeypatch.setattr(packer_mod, "LARGE_FILE", 1000)
    src = files(tmp_path, n=2, size=3 * 1024 * 1024 + 7)
    packer = SeriesPacker("1.2", src)
    chunks = [c async for c in packer.body()]
    assert max(len(c) for c in chunks) <= 2 * packer_mod.CHUNK  # never a whole file at once
    zf = zipfile.ZipFile(io.BytesIO(b"".join(chunks)))
    assert [zf.read(n) for n in zf.namelist()] == [f.path.read_bytes() for f in src]


async def test_concurrent_packers_share_the_packing_lock_without_blocking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Packers take turns reading (one process-wide lock): a failed one and an
    # abandoned one must not hold up the others.
    import asyncio
    import threading
    import time

    reading = peak = 0
    guard = threading.Lock()
    real_read = SeriesPacker._read

    def counted_read(self: SeriesPacker, *args: Any) -> bytes:
        nonlocal reading, peak
        with guard:
            reading += 1
            peak = max(peak, reading)
        try:
            time.sleep(0.002)  # long enough for another packer to try
            return real_read(self, *args)
        finally:
            with guard:
                reading -= 1

    monkeypatch.setattr(SeriesPacker, "_read", counted_read)

    dirs = [tmp_path / f"s{i}" for i in range(5)]
    for d in dirs:
        d.mkdir()
    srcs = [files(d, n=4, size=300_000) for d in dirs]
    srcs[3][2].path.unlink()  # this series fails part-way
    packers = [
        SeriesPacker(
            f"1.2.840.{i}",
            src,
            compression=Compression.DEFLATE if i % 2 else Compression.STORED,
        )
        for i, src in enumerate(srcs)
    ]
    abandoned = packers[4].body()
    await abandoned.__anext__()  # its consumer stops after the first chunk

    async def one(p: SeriesPacker) -> bytes | Exception:
        try:
            return await collect(p)
        except SourceChanged as exc:
            return exc

    results = await asyncio.wait_for(asyncio.gather(*(one(p) for p in packers[:4])), 20)
    await abandoned.aclose()
    assert isinstance(results[3], SourceChanged)
    assert peak == 1  # never two packers reading at once
    for data, src in zip(results[:3], srcs[:3], strict=True):
        assert isinstance(data, bytes)
        zf = zipfile.ZipFile(io.BytesIO(data))
        assert [zf.read(i) for i in zf.infolist()] == [f.path.read_bytes() for f in src]
