"""The strict zip reader accepts what Java's ZipInputStream accepts, and nothing else."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import pytest
from stream_zip import NO_COMPRESSION_32, NO_COMPRESSION_64, ZIP_32, ZIP_64

from tests.unit.sandbox_import.helpers import (
    stream_zip_bytes,
    streamed_stored_with_descriptor,
    zipfile_bytes,
)
from xnat_tui.sandbox.zipread import EntryStream, ZipFormatError, ZipStreamReader

ENTRIES = [("a/one.dcm", b"x" * 1000), ("two.dcm", bytes(range(256)) * 40), ("empty", b"")]


def read_all(data: bytes) -> list[tuple[str, bytes]]:
    reader = ZipStreamReader(io.BytesIO(data))
    out = []
    while (entry := reader.next_entry()) is not None:
        out.append((entry.name, EntryStream(reader).read()))
    return out


@pytest.mark.parametrize("method", [NO_COMPRESSION_64, NO_COMPRESSION_32, ZIP_32])
def test_stream_zip_modes_our_client_sends_are_read(method: object) -> None:
    assert read_all(stream_zip_bytes(ENTRIES, method)) == ENTRIES


def test_zip64_data_descriptor_is_refused_like_java() -> None:
    with pytest.raises(ZipFormatError, match="invalid entry size"):
        read_all(stream_zip_bytes(ENTRIES, ZIP_64))


def test_stored_entry_with_data_descriptor_is_refused() -> None:
    data = streamed_stored_with_descriptor(ENTRIES)
    with pytest.raises(ZipFormatError, match="only DEFLATED entries can have EXT descriptor"):
        read_all(data)


def test_seekable_zipfile_stored_and_deflated_are_read() -> None:
    assert read_all(zipfile_bytes(ENTRIES)) == ENTRIES
    assert read_all(zipfile_bytes(ENTRIES, deflate=True)) == ENTRIES


def test_crc_mismatch_is_detected() -> None:
    data = bytearray(zipfile_bytes([("f.dcm", b"hello world")]))
    data[data.index(b"hello")] ^= 0xFF
    with pytest.raises(ZipFormatError, match="invalid entry CRC"):
        read_all(bytes(data))


def test_truncated_stored_entry_fails() -> None:
    data = zipfile_bytes([("f.dcm", b"y" * 5000)])
    with pytest.raises(ZipFormatError, match="unexpected EOF"):
        read_all(data[:2000])


def test_non_zip_body_has_no_entries() -> None:
    # Java's getNextEntry returns null when the first bytes are not a local header.
    assert read_all(b"this is not a zip at all") == []


def test_nested_zip_is_readable_through_entry_stream() -> None:
    inner = zipfile_bytes(ENTRIES)
    outer = zipfile_bytes([("inner.zip", inner), ("x.dcm", b"abc")], deflate=True)
    reader = ZipStreamReader(io.BytesIO(outer))
    first = reader.next_entry()
    assert first is not None and first.name == "inner.zip"
    nested = ZipStreamReader(EntryStream(reader))
    names = []
    while (entry := nested.next_entry()) is not None:
        names.append(entry.name)
    assert names == [n for n, _ in ENTRIES]
    second = reader.next_entry()
    assert second is not None and EntryStream(reader).read() == b"abc"


def test_deflate_bomb_is_inflated_in_bounded_chunks() -> None:
    raw = b"\0" * (50 * 1024 * 1024)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    payload = comp.compress(raw) + comp.flush()
    crc = zlib.crc32(raw)
    name = b"bomb.bin"
    header = struct.pack(
        "<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, len(payload), len(raw), len(name), 0
    )
    reader = ZipStreamReader(io.BytesIO(header + name + payload))
    assert reader.next_entry() is not None
    total, biggest = 0, 0
    while chunk := reader.read(1 << 20):
        total += len(chunk)
        biggest = max(biggest, len(chunk))
    assert total == len(raw)
    assert biggest <= 1 << 20


def test_encrypted_entry_is_refused() -> None:
    data = bytearray(zipfile_bytes([("f.dcm", b"abc")]))
    struct.pack_into("<H", data, 6, 1)  # general purpose flag: encrypted
    with pytest.raises(ZipFormatError, match="encrypted"):
        read_all(bytes(data))


def test_zipfile_deflate_force_zip64_streamed_is_refused() -> None:
    class Sink(io.RawIOBase):
        def __init__(self) -> None:
            self.data = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, b: object) -> int:
            self.data += bytes(b)  # type: ignore[call-overload]
            return len(bytes(b))  # type: ignore[call-overload]

    sink = Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("f.dcm", "w", force_zip64=True) as w:
            w.write(b"z" * 3000)
    with pytest.raises(ZipFormatError, match="invalid entry size"):
        read_all(bytes(sink.data))
