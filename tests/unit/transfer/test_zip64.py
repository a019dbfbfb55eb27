"""The copy-free stored zip64 writer against stream_zip, byte for byte."""

from __future__ import annotations

import asyncio
import zlib
from pathlib import Path

from stream_zip import NO_COMPRESSION_64, stream_zip

from tests.unit.transfer.fake import read_zip_strict
from xnat_tui.transfer.packer import _MODE, _STAMP, SeriesPacker
from xnat_tui.transfer.types import SourceFile
from xnat_tui.transfer.zip64 import Zip64Writer, stored_size


def test_same_bytes_as_stream_zip_and_size_known_in_advance() -> None:
    members = [("1.2/a.dcm", b"x" * 1000), ("1.2/é.dcm", b""), ("1.2/c.dcm", bytes(range(256)))]
    expected = b"".join(
        stream_zip(
            (n, _STAMP, _MODE, NO_COMPRESSION_64(len(d), zlib.crc32(d)), (d,)) for n, d in members
        )
    )
    writer = Zip64Writer(_STAMP, _MODE)
    ours = b"".join(writer.local_header(n, len(d), zlib.crc32(d)) + d for n, d in members)
    ours += writer.end()
    assert ours == expected
    assert stored_size([n for n, _ in members], [len(d) for _, d in members]) == len(ours)


async def test_packer_stream_matches_its_content_length(tmp_path: Path) -> None:
    files = []
    for i in range(5):
        p = tmp_path / f"f{i}.dcm"
        p.write_bytes(bytes([i]) * (300_000 * i + 7))
        st = p.stat()
        files.append(SourceFile(p, st.st_size, st.st_mtime, f"1.2.{i}"))
    packer = SeriesPacker("1.2", files)
    body = b"".join([c async for c in packer.body()])
    assert packer.content_length == len(body)
    members = read_zip_strict(body)  # refuses data descriptors, as XNAT does
    assert sorted(members) == sorted(m.name for m in packer.manifest)
    assert [len(members[m.name]) for m in packer.manifest] == [f.size for f in files]
    assert SeriesPacker("1.2", files, transform=lambda p, d: d).content_length is None
    await asyncio.sleep(0)
