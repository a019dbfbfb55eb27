"""Stored zip64 without data descriptors, written with no copy of the file data.

Byte for byte what ``stream_zip`` writes for ``NO_COMPRESSION_64(size, crc)`` members
(the only stored form XNAT's Java ``ZipInputStream`` reads: sizes and CRC in the local
header), but the caller hands each member's data as it is: no re-chunking into
fixed-size blocks, no second CRC pass, no joining. That is what lets the sender keep
up with ``curl`` on a fast link. Also knows the exact archive size in advance, so the
request can carry a Content-Length instead of chunked encoding (which copies every
chunk once more in aiohttp on Python < 3.12.9).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from struct import Struct

_LOCAL = Struct("<HHH4sIIIHH")
_LOCAL_EXTRA = Struct("<2sHQQ")
_CENTRAL = Struct("<BBBBHH4sIIIHHHHHII")
_CENTRAL_EXTRA = Struct("<2sHQQQ")
_UNIX_TIME = Struct("<2sH1sl")
_EOCD64 = Struct("<QHHIIQQQQ")
_LOCATOR = Struct("<IQI")
_EOCD = Struct("<HHHHIIH")
_DOS_TIME = Struct("<HH")
_UTF8 = 0x0800
_ZIP64 = b"\x01\x00"


class Zip64Writer:
    """Headers for stored zip64 members; the caller sends each member's data between them."""

    def __init__(self, modified_at: datetime, mode: int) -> None:
        self._dos = _DOS_TIME.pack(
            int(modified_at.second / 2) | (modified_at.minute << 5) | (modified_at.hour << 11),
            modified_at.day | (modified_at.month << 5) | (modified_at.year - 1980) << 9,
        )
        self._unix = _UNIX_TIME.pack(b"UT", 5, b"\x01", int(modified_at.timestamp()))
        self._attr = mode << 16
        self._central: list[bytes] = []
        self.offset = 0

    def local_header(self, name: str, size: int, crc: int) -> bytes:
        """The member's local header; call before sending exactly ``size`` data bytes."""
        encoded = name.encode("utf-8")
        extra = _LOCAL_EXTRA.pack(_ZIP64, 16, size, size) + self._unix
        header = b"".join(
            (
                b"PK\x03\x04",
                _LOCAL.pack(
                    45,
                    _UTF8,
                    0,
                    self._dos,
                    crc,
                    0xFFFFFFFF,
                    0xFFFFFFFF,
                    len(encoded),
                    len(extra),
                ),
                encoded,
                extra,
            )
        )
        central_extra = _CENTRAL_EXTRA.pack(_ZIP64, 24, size, size, self.offset) + self._unix
        self._central.append(
            b"".join(
                (
                    b"PK\x01\x02",
                    _CENTRAL.pack(
                        45,
                        3,
                        45,
                        0,
                        _UTF8,
                        0,
                        self._dos,
                        crc,
                        0xFFFFFFFF,
                        0xFFFFFFFF,
                        len(encoded),
                        len(central_extra),
                        0,
                        0,
                        0,
                        self._attr,
                        0xFFFFFFFF,
                    ),
                    encoded,
                    central_extra,
                )
            )
        )
        self.offset += len(header) + size
        return header

    def end(self) -> bytes:
        """Central directory and the zip64 end records."""
        directory = b"".join(self._central)
        start = self.offset
        count = len(self._central)
        tail = b"".join(
            (
                b"PK\x06\x06",
                _EOCD64.pack(44, 45, 45, 0, 0, count, count, len(directory), start),
                b"PK\x06\x07",
                _LOCATOR.pack(0, start + len(directory), 1),
                b"PK\x05\x06",
                _EOCD.pack(0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0),
            )
        )
        self.offset += len(directory) + len(tail)
        return directory + tail


def stored_size(names: Sequence[str], sizes: Sequence[int]) -> int:
    """Exact length of the stored zip64 of members with these names and data sizes."""
    total = 0
    for name, size in zip(names, sizes, strict=True):
        n = len(name.encode("utf-8"))
        total += 4 + _LOCAL.size + n + _LOCAL_EXTRA.size + _UNIX_TIME.size + size
        total += 4 + _CENTRAL.size + n + _CENTRAL_EXTRA.size + _UNIX_TIME.size
    return total + 4 + _EOCD64.size + 4 + _LOCATOR.size + 4 + _EOCD.size
