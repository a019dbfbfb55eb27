"""The C-STORE link's framing (issue 16): what goes on the wire when the socket takes
only part of each ``sendmsg``, and a file that shrinks while it is sent."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from xnat_tui.dicom.synthetic import SeriesSpec, write_study
from xnat_tui.transfer.cstore import DicomDestination, read_info
from xnat_tui.transfer.cstore_link import Link

DEST = DicomDestination("XNAT", "127.0.0.1", 11112)
# A C-STORE-RSP, status 0x0000, to message 1 (Implicit VR LE command set in one PDV).
_RSP_BODY = b"".join(
    struct.pack("<HHI", 0, elem, len(value)) + value
    for elem, value in (
        (0x0100, struct.pack("<H", 0x8001)),
        (0x0120, struct.pack("<H", 1)),
        (0x0800, struct.pack("<H", 0x0101)),
        (0x0900, struct.pack("<H", 0x0000)),
    )
)
RSP = struct.pack(">BBIIBB", 4, 0, len(_RSP_BODY) + 6, len(_RSP_BODY) + 2, 1, 3) + _RSP_BODY


class TrickleSocket:
    """Takes at most ``limit`` bytes a ``sendmsg`` or write (as a full socket buffer
    does) and answers every C-STORE with ``RSP`` split over two ``recv`` calls."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.wire = bytearray()
        self.calls = 0
        self.inbox = [RSP[:5], RSP[5:]]

    def sendmsg(self, buffers: list[memoryview]) -> int:
        self.calls += 1
        data = b"".join(bytes(b) for b in buffers)[: self.limit]
        self.wire += data
        return len(data)

    def sendall(self, data: bytes | memoryview) -> None:
        # The kernel may take part of each write; sendall's loop sends the rest.
        for start in range(0, len(data), self.limit):
            self.calls += 1
            self.wire += bytes(data[start : start + self.limit])

    def recv(self, _n: int) -> bytes:
        return self.inbox.pop(0)

    def close(self) -> None:
        pass


def pdvs(wire: bytes) -> list[tuple[int, int, bytes]]:
    """(context id, control header, data) of each P-DATA PDU on the wire."""
    out, pos = [], 0
    while pos < len(wire):
        kind, _r, length = struct.unpack_from(">BBI", wire, pos)
        assert kind == 4
        item, cx, control = struct.unpack_from(">IBB", wire, pos + 6)
        assert item == length - 4  # one PDV a PDU
        out.append((cx, control, bytes(wire[pos + 12 : pos + 6 + length])))
        pos += 6 + length
    return out


def big_file(tmp_path: Path) -> Path:
    study = write_study(tmp_path, patient_id="P", series=[SeriesSpec("MR", 1, "T", 1, 600, 600)])
    return study.paths[0]


@pytest.mark.parametrize("limit", [7001, 1 << 20])
def test_a_large_file_is_framed_whole_even_when_each_sendmsg_is_partial(
    tmp_path: Path, limit: int
) -> None:
    path = big_file(tmp_path)
    info = read_info(path)
    sock = TrickleSocket(limit)
    link = Link(sock, DEST, {(info.sop_class, info.transfer_syntax): 1}, 16384, 5.0)  # type: ignore[arg-type]
    result = link.store(path, info.sop_class, info.transfer_syntax)
    assert result.status == 0, result.message
    frames = pdvs(bytes(sock.wire))
    command, data = frames[0], frames[1:]
    assert command[1] == 0x03 and info.sop_instance.encode() in command[2]
    # Every data PDU within the peer's 16 KB, the last-fragment bit on the last only,
    # and together exactly the file's data set (the bytes after its File Meta group).
    assert all(len(d) <= 16384 - 6 for _cx, _c, d in data)
    assert [c for _cx, c, _d in data] == [0x00] * (len(data) - 1) + [0x02]
    body = b"".join(d for _cx, _c, d in data)
    raw = path.read_bytes()
    assert raw.endswith(body) and len(raw) - len(body) < 1024
    assert len(data) > 40


def test_a_file_that_shrinks_while_sent_fails_the_association_not_the_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = big_file(tmp_path)
    info = read_info(path)
    sock = TrickleSocket(1 << 30)
    link = Link(sock, DEST, {(info.sop_class, info.transfer_syntax): 1}, 16384, 5.0)  # type: ignore[arg-type]
    # The file's size is taken when it is opened; cut it right after.
    real_fstat = os.fstat

    def fstat_then_truncate(fd: int) -> object:
        st = real_fstat(fd)
        path.write_bytes(path.read_bytes()[: st.st_size // 2])
        return st

    monkeypatch.setattr(os, "fstat", fstat_then_truncate)
    result = link.store(path, info.sop_class, info.transfer_syntax)
    assert result.status is None
    assert "got shorter while it was sent" in result.message
    assert not link.alive  # half a data set went out: the association is closed


def test_a_changed_copy_is_framed_whole_when_each_sendmsg_is_partial(tmp_path: Path) -> None:
    from pydicom import dcmread

    from xnat_tui.transfer.cstore import in_memory

    path = big_file(tmp_path)
    info = read_info(path)
    sock = TrickleSocket(7001)
    link = Link(sock, DEST, {(info.sop_class, info.transfer_syntax): 1}, 16384, 5.0)  # type: ignore[arg-type]
    copy = in_memory(path, None, {"PatientComments": "Project: P Subject: S Session: E"})
    result = link.store(copy, info.sop_class, info.transfer_syntax)
    assert result.status == 0, result.message
    data = pdvs(bytes(sock.wire))[1:]
    assert [c for _cx, c, _d in data] == [0x00] * (len(data) - 1) + [0x02]
    (tmp_path / "sent.dcm").write_bytes(
        path.read_bytes()[:132] + b"".join(d for _cx, _c, d in data)
    )
    sent = dcmread(tmp_path / "sent.dcm", force=True)
    assert sent.PatientComments == "Project: P Subject: S Session: E"
    assert sent.PixelData == dcmread(path).PixelData
