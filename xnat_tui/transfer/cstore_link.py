"""One C-STORE association on a plain blocking socket, its PDUs written here.

pynetdicom's ``Association`` runs two polling threads per association (its DUL reactor
and the association reactor both sleep 1 ms between looks) and builds every command
set as a pydicom ``Dataset``: about 3 ms of latency and 1 ms of CPU per instance, ten
times what dcmtk's ``storescu`` spends on a small instance. The sender needs only the
requestor's side of one service, so this module talks to the socket itself:

* A-ASSOCIATE-RQ/-AC/-RJ come from ``transfer.acse`` (checked against pynetdicom's
  codec in the tests), A-RELEASE and A-ABORT are fixed bytes;
* the C-STORE-RQ command set (PS3.7 9.3.1.1, Implicit VR Little Endian) is a handful of
  fixed elements written here, and the C-STORE-RSP is read for its Status, Error Comment
  and Message ID Being Responded To;
* a file whose transfer syntax is the context's goes out as its own bytes after the
  File Meta group (read by blocks into a reused buffer of PDUs: constant memory), a
  changed copy as ``pynetdicom.dsutils.encode``'s bytes (loaded only then).

One thread at a time per link; the engine gives each association its own thread.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from xnat_tui.transfer.acse import (
    ASSOCIATE_AC,
    ASSOCIATE_RJ,
    associate_rq,
    parse_associate_ac,
    parse_associate_rj,
)
from xnat_tui.transfer.cstore import (
    DicomDestination,
    DicomSendError,
    StoreResult,
    describe_status,
    meta_text,
    read_meta,
    uid_name,
)

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

_P_DATA = 0x04
_RELEASE_RQ, _RELEASE_RP, _ABORT = 0x05, 0x06, 0x07
_RELEASE_RQ_PDU = b"\x05\x00\x00\x00\x00\x04\x00\x00\x00\x00"
_RELEASE_RP_PDU = b"\x06\x00\x00\x00\x00\x04\x00\x00\x00\x00"
_ABORT_PDU = b"\x07\x00\x00\x00\x00\x04\x00\x00\x00\x00"
# What we accept from the peer (its responses are a few hundred bytes).
OUR_MAX_PDU = 65536
# The largest P-DATA we send when the peer sets no limit (0): big enough that a large
# instance takes few system calls, small enough to stream from disk.
UNLIMITED_CHUNK = 1 << 20
# A file is read in blocks of this size (whole PDUs), each sent with one sendmsg.
_READ_BLOCK = 1 << 20
# Enough of a file's start for any ordinary File Meta group (and a small instance whole).
_META_HEAD = 64 << 10
# PDUs per sendmsg: two buffers each, under Linux's IOV_MAX (1024).
_IOV_BATCH = 500
_PDV_HEADER = struct.Struct(">BBIIBB")

_REJECT_HINTS = {
    (1, 1): "the receiver rejected the association (no reason given)",
    (1, 2): "application context name not supported",
    (1, 3): "calling AE title not recognised: the receiver does not allow {calling}; "
    "ask for it to be added to the receiver's allow-list (whitelist) or use --calling-ae",
    (1, 7): "called AE title not recognised: no receiver {called} on {hostport}; "
    "check the AE title (XNAT's default is XNAT)",
    (2, 1): "no reason given by the receiver's service provider (ACSE)",
    (2, 2): "protocol version not supported",
    (3, 1): "the receiver is temporarily congested; try again later or use fewer --associations",
    (3, 2): "the receiver's local limit on associations is reached; use fewer --associations",
}


class _Dropped(Exception):
    """The peer aborted, released or closed the connection, or went silent."""


def _uid(value: str) -> bytes:
    raw = value.encode("ascii")
    return raw + b"\0" if len(raw) % 2 else raw


@lru_cache(maxsize=64)
def _command_layout(n_class: int, n_instance: int) -> struct.Struct:
    """The C-STORE-RQ command set for UIDs of these (even) lengths, as one Struct:
    (0000,0000) group length, (0000,0002) Affected SOP Class UID, (0000,0100) Command
    Field, (0000,0110) Message ID, (0000,0700) Priority, (0000,0800) Command Data Set
    Type, (0000,1000) Affected SOP Instance UID (PS3.7 9.3.1.1, Implicit VR LE)."""
    return struct.Struct(
        f"<HHII HHI{n_class}s HHIH HHIH HHIH HHIH HHI{n_instance}s".replace(" ", "")
    )


def store_command(message_id: int, sop_class: str, sop_instance: str) -> bytes:
    """A C-STORE-RQ command set, Implicit VR Little Endian (PS3.7 E.1, 9.3.1.1)."""
    cls, inst = _uid(sop_class), _uid(sop_instance)
    layout = _command_layout(len(cls), len(inst))
    return layout.pack(
        0x0000, 0x0000, 4, layout.size - 12,
        0x0000, 0x0002, len(cls), cls,
        0x0000, 0x0100, 2, 0x0001,  # C-STORE-RQ
        0x0000, 0x0110, 2, message_id,
        0x0000, 0x0700, 2, 0x0000,  # priority: medium
        0x0000, 0x0800, 2, 0x0000,  # a data set follows
        0x0000, 0x1000, len(inst), inst,
    )  # fmt: skip


@dataclass(frozen=True)
class Response:
    command_field: int
    responding_to: int
    status: int
    comment: str


_ELEMENT = struct.Struct("<HHI")
_US = struct.Struct("<H")
_U32 = struct.Struct("<I")


def parse_response(command: bytes) -> Response:
    """The elements of a C-STORE-RSP command set that the sender uses (-1: absent)."""
    command_field = responding = status = -1
    comment = ""
    pos, end = 0, len(command)
    while pos + 8 <= end:
        group, elem, length = _ELEMENT.unpack_from(command, pos)
        pos += 8
        if group == 0x0000 and length >= 2 and pos + 2 <= end:
            if elem == 0x0100:
                command_field = _US.unpack_from(command, pos)[0]
            elif elem == 0x0120:
                responding = _US.unpack_from(command, pos)[0]
            elif elem == 0x0900:
                status = _US.unpack_from(command, pos)[0]
            elif elem == 0x0902:
                comment = command[pos : pos + length].decode("ascii", "replace").strip(" \0")
        pos += length
    return Response(command_field, responding, status, comment)


@dataclass
class Link:
    """One established association (use from one thread at a time)."""

    sock: socket.socket
    destination: DicomDestination
    # (SOP class, transfer syntax) -> the accepted presentation context ID.
    contexts: dict[tuple[str, str], int]
    peer_max: int
    timeout: float
    alive: bool = True
    message_id: int = 0
    accepted: set[tuple[str, str]] = field(default_factory=set)
    # Received bytes not yet taken as a PDU.
    inbox: bytearray = field(default_factory=bytearray)
    # PDUs of a large data set on their way out (reused from one instance to the next).
    frames: bytearray = field(default_factory=bytearray)

    def __post_init__(self) -> None:
        self.accepted = set(self.contexts)

    @property
    def chunk(self) -> int:
        """Data bytes per PDV: the peer's maximum PDU length less the PDV's 6 bytes."""
        return self.peer_max - 6 if self.peer_max > 6 else UNLIMITED_CHUNK

    def store(
        self, payload: Path | str | Dataset, sop_class: str, ts: str, sop_instance: str = ""
    ) -> StoreResult:
        """C-STORE one instance; ``sop_instance`` is used when a file's meta lacks it."""
        cx = self.contexts.get((sop_class, ts))
        if cx is None:
            return StoreResult(
                None,
                f"the receiver accepted no presentation context for {uid_name(sop_class)} "
                f"in {uid_name(ts)}",
            )
        if not self.alive:
            return StoreResult(None, "not sent: the association is closed")
        try:
            sop_instance, body = self._body(payload, ts, sop_instance)
        except (OSError, ValueError) as exc:
            return StoreResult(-1, f"cannot read the data set: {exc}")
        self.message_id = self.message_id % 0xFFFF + 1
        command = store_command(self.message_id, sop_class, sop_instance)
        try:
            n = len(command)
            first = _PDV_HEADER.pack(_P_DATA, 0, n + 6, n + 2, cx, 0x03) + command
            self._send_data(cx, first, body)
            rsp = self._read_response()
        except _Dropped as exc:
            self._close()
            return StoreResult(None, f"no C-STORE response ({exc})")
        finally:
            if isinstance(body, _FileBody):
                body.close()
        if rsp.command_field != 0x8001 or rsp.responding_to != self.message_id:
            self.abort()
            return StoreResult(
                None,
                f"no C-STORE response (the receiver answered message {rsp.responding_to} "
                f"with command 0x{rsp.command_field:04X}; association aborted)",
            )
        text = describe_status(rsp.status) + (f" ({rsp.comment})" if rsp.comment else "")
        return StoreResult(rsp.status, text)

    # ----------------------------------------------------------------- sending
    def _body(
        self, payload: Path | str | Dataset, ts: str, sop_instance: str
    ) -> tuple[str, bytes | _FileBody]:
        if not isinstance(payload, (Path, str)):  # a changed copy (pydicom is loaded)
            from pydicom.uid import UID
            from pynetdicom.dsutils import encode

            syntax = UID(ts)
            data = encode(payload, syntax.is_implicit_VR, syntax.is_little_endian, False)
            if data is None:
                raise ValueError("pydicom could not encode the copy")
            return str(payload.SOPInstanceUID), data
        return _FileBody.open(payload, sop_instance)

    def _send_data(self, cx: int, command_pdu: bytes, body: bytes | _FileBody) -> None:
        """The command PDU, then the data set as P-DATA PDUs of one PDV each.

        No PDU is built as a bytes object: each PDV header (12 bytes) goes out with a
        ``memoryview`` slice of the data in the same ``sendmsg`` (up to ``_IOV_BATCH``
        PDUs a call), the data read from the file into one reused buffer. A small
        instance is one system call for its command and data."""
        chunk = self.chunk
        try:
            if isinstance(body, bytes):
                self._sendmsg_all([command_pdu, *self._pdvs(cx, memoryview(body), chunk, True)])
                return
            if body.size <= chunk:
                # A small instance: one PDV, one buffer, one system call.
                data = body.read(body.size)
                n = len(data)
                header = _PDV_HEADER.pack(_P_DATA, 0, n + 6, n + 2, cx, 0x02)
                self.sock.sendall(b"".join((command_pdu, header, data)))
                return
            self.sock.sendall(command_pdu)
            self._send_framed(cx, body, chunk)
        except TimeoutError as exc:
            raise _Dropped(f"timed out after {self.timeout:g} s sending") from exc
        except OSError as exc:
            raise _Dropped(f"connection lost: {exc.strerror or exc}") from exc

    def _send_framed(self, cx: int, body: _FileBody, chunk: int) -> None:
        """A large data set: PDUs laid out in one reused buffer, header then data, the
        file read straight into the data slots (one ``readv`` a block) and the block
        sent whole (one ``sendall``): no object per PDU but a slice and a header."""
        frame = _PDV_HEADER.size + chunk
        per_block = max(1, _READ_BLOCK // frame)
        if len(self.frames) < per_block * frame:
            self.frames = bytearray(per_block * frame)
        buf = self.frames
        view = memoryview(buf)
        left = body.size
        while left > 0:
            slots: list[memoryview] = []
            start = 0
            while left > 0 and len(slots) < per_block:
                n = min(chunk, left)
                left -= n
                _PDV_HEADER.pack_into(
                    buf, start, _P_DATA, 0, n + 6, n + 2, cx, 0x02 if left == 0 else 0x00
                )
                slots.append(view[start + _PDV_HEADER.size : start + _PDV_HEADER.size + n])
                start += _PDV_HEADER.size + n
            body.fill(slots)
            self.sock.sendall(view[:start])

    @staticmethod
    def _pdvs(cx: int, view: memoryview, chunk: int, last: bool) -> list[bytes | memoryview]:
        """[header, data, header, data, ...] for ``view`` cut at ``chunk`` bytes; the
        last PDV of the data set (``last``) carries the 'last fragment' bit."""
        out: list[bytes | memoryview] = []
        total = len(view)
        for start in range(0, max(total, 1), chunk):
            piece = view[start : start + chunk]
            n = len(piece)
            control = 0x02 if last and start + chunk >= total else 0x00
            out.append(_PDV_HEADER.pack(_P_DATA, 0, n + 6, n + 2, cx, control))
            out.append(piece)
        return out

    def _sendmsg_all(self, buffers: list[bytes | memoryview]) -> None:
        """``sendall`` for a list of buffers: ``sendmsg`` in batches, resumed after a
        partial send."""
        pending = [memoryview(b).cast("B") for b in buffers]
        while pending:
            batch = pending[:_IOV_BATCH]
            sent = self.sock.sendmsg(batch)
            done = 0
            while done < len(batch) and sent >= len(batch[done]):
                sent -= len(batch[done])
                done += 1
            rest = pending[done:]
            if sent and rest:
                rest[0] = rest[0][sent:]
            pending = rest

    # ---------------------------------------------------------------- receiving
    def _fill(self, n: int) -> None:
        """Receive until ``n`` bytes are buffered: a whole C-STORE-RSP usually comes in
        one ``recv`` (one system call where a read of the header, then of the body,
        took two)."""
        while len(self.inbox) < n:
            try:
                got = self.sock.recv(OUR_MAX_PDU)
            except TimeoutError as exc:
                raise _Dropped(f"no response in {self.timeout:g} s") from exc
            except OSError as exc:
                raise _Dropped(f"connection lost: {exc.strerror or exc}") from exc
            if not got:
                raise _Dropped("the receiver closed the connection")
            self.inbox += got

    def _read_pdu(self) -> tuple[int, bytes]:
        self._fill(6)
        kind, _reserved, length = struct.unpack_from(">BBI", self.inbox)
        self._fill(6 + length)
        pdu = bytes(self.inbox[: 6 + length])
        del self.inbox[: 6 + length]
        return kind, pdu

    def _read_response(self) -> Response:
        command = bytearray()
        while True:
            kind, pdu = self._read_pdu()
            if kind == _ABORT:
                raise _Dropped("the association was aborted by the receiver")
            if kind == _RELEASE_RQ:
                with contextlib.suppress(OSError):
                    self.sock.sendall(_RELEASE_RP_PDU)
                raise _Dropped("the receiver released the association")
            if kind != _P_DATA:
                self.abort()
                raise _Dropped(f"unexpected PDU type 0x{kind:02X}; association aborted")
            pos = 6
            while pos + 6 <= len(pdu):
                item_len, _cx, control = struct.unpack_from(">IBB", pdu, pos)
                data = pdu[pos + 6 : pos + 4 + item_len]
                pos += 4 + item_len
                if control & 0x01:
                    command += data
                    if control & 0x02:
                        return parse_response(bytes(command))

    # ------------------------------------------------------------------ closing
    def release(self) -> None:
        """A-RELEASE (waits briefly for the peer's answer), then close."""
        if not self.alive:
            return
        try:
            self.sock.sendall(_RELEASE_RQ_PDU)
            for _ in range(8):
                kind, _pdu = self._read_pdu()
                if kind in (_RELEASE_RP, _ABORT):
                    break
        except (_Dropped, OSError):
            pass
        self._close()

    def abort(self) -> None:
        if self.alive:
            with contextlib.suppress(OSError):
                self.sock.sendall(_ABORT_PDU)
        self._close()

    def _close(self) -> None:
        self.alive = False
        with contextlib.suppress(OSError):
            self.sock.close()


_GROUP_LENGTH = b"\x02\x00\x00\x00UL\x04\x00"


def _known_meta_end(head: bytes, sop_instance: str) -> int:
    """Where the data set starts, from the meta group's own length, when the meta holds
    exactly the Media Storage SOP Instance UID the scan read (0: parse the group).

    The common case, a fraction of parsing every meta element per instance."""
    if not sop_instance or head[128:140] != b"DICM" + _GROUP_LENGTH:
        return 0
    end = 144 + int(_U32.unpack_from(head, 140)[0])
    if end + 2 > len(head) or head[end : end + 2] == b"\x02\x00":
        return 0  # the length is wrong, or the group does not end inside ``head``
    uid = _uid(sop_instance)
    element = b"\x02\x00\x03\x00UI" + _US.pack(len(uid)) + uid
    return end if head.find(element, 144, end) != -1 else 0


class _FileBody:
    """The data set of a Part 10 file (after its File Meta group), read in blocks into
    one reused buffer: constant memory for any file size, no copy per PDU. A small
    file is one ``os.read`` and goes out from that read's bytes."""

    def __init__(self, path: Path | str, fd: int, size: int, head: bytes, offset: int) -> None:
        self.path = path
        self.fd = fd
        self.size = size  # bytes of the data set still to come, from head[offset:] on
        self.head = head
        self.offset = offset
        self.buf = bytearray()

    @classmethod
    def open(cls, path: Path | str, sop_instance: str = "") -> tuple[str, _FileBody]:
        # os-level I/O: io.open's buffered reader costs more than a small file's send.
        fd = os.open(path, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            head = os.read(fd, _META_HEAD)
            offset = _known_meta_end(head, sop_instance)
            if offset:
                return sop_instance, cls(path, fd, size - offset, head, offset)
            parsed = read_meta(head)
            if parsed is None:
                raise ValueError(f"{path}: not a DICOM file with a File Meta group")
            values, offset = parsed
            uid = meta_text(values, 0x0003) or sop_instance
            if not uid:
                raise ValueError(f"{path}: no Media Storage SOP Instance UID")
            return uid, cls(path, fd, size - offset, head, offset)
        except BaseException:
            os.close(fd)
            raise

    def read(self, n: int) -> memoryview:
        """The next ``n`` bytes (fewer only at the end); valid until the next call."""
        n = min(n, self.size)
        left_in_head = len(self.head) - self.offset
        if left_in_head >= n:  # a small file: no copy
            view = memoryview(self.head)[self.offset : self.offset + n]
            self.offset += n
            self.size -= n
            return view
        if len(self.buf) < n:
            self.buf = bytearray(n)
        view = memoryview(self.buf)[:n]
        got = max(left_in_head, 0)
        if got:
            view[:got] = memoryview(self.head)[self.offset :]
            self.offset += got
        while got < n:
            more = os.readv(self.fd, [view[got:]])
            if not more:
                # Half a data set is on the wire: the association cannot go on.
                raise _Dropped(f"{self.path}: the file got shorter while it was sent")
            got += more
        self.size -= n
        return view

    def fill(self, slots: list[memoryview]) -> None:
        """Fill ``slots`` in order with the data set's next bytes (the rest of the first
        read, then the file by ``readv``)."""
        total = sum(len(v) for v in slots)
        if total > self.size:
            raise ValueError("more asked for than the data set holds")
        i = 0
        head = memoryview(self.head)
        while i < len(slots) and self.offset < len(self.head):
            take = min(len(slots[i]), len(self.head) - self.offset)
            slots[i][:take] = head[self.offset : self.offset + take]
            self.offset += take
            if take < len(slots[i]):
                slots[i] = slots[i][take:]
                break
            i += 1
        pending = slots[i:]
        while pending:
            got = os.readv(self.fd, pending)
            if not got:
                # Half a data set is on the wire: the association cannot go on.
                raise _Dropped(f"{self.path}: the file got shorter while it was sent")
            done = 0
            while done < len(pending) and got >= len(pending[done]):
                got -= len(pending[done])
                done += 1
            pending = pending[done:]
            if got:
                pending[0] = pending[0][got:]
        self.size -= total

    def close(self) -> None:
        os.close(self.fd)


# ---- associating ---------------------------------------------------------------------------


def open_link(
    destination: DicomDestination,
    contexts: Sequence[tuple[str, str]],
    *,
    timeout: float = 30.0,
    max_pdu: int = OUR_MAX_PDU,
) -> Link:
    """Associate with the receiver; raises DicomSendError that says what to check."""
    where = str(destination)
    try:
        sock = socket.create_connection((destination.host, destination.port), timeout=timeout)
    except ConnectionRefusedError as exc:
        raise DicomSendError(
            f"{where}: connection refused: nothing listens on port {destination.port} of "
            f"{destination.host}; check the port and that the receiver is running"
        ) from exc
    except TimeoutError as exc:
        raise DicomSendError(
            f"{where}: timed out after {timeout:g} s connecting; check the host, the port "
            "and any firewall in between"
        ) from exc
    except OSError as exc:
        raise DicomSendError(f"{where}: cannot connect: {exc.strerror or exc}") from exc
    # A C-STORE is request/response: Nagle would hold each small PDU for a delayed ACK.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    link = Link(sock, destination, {}, 0, timeout)
    try:
        sock.sendall(associate_rq(destination.ae, destination.calling_ae, contexts, max_pdu))
        kind, pdu = link._read_pdu()
    except (_Dropped, OSError) as exc:
        link._close()
        raise DicomSendError(
            f"{where}: the port is open but no association answer came ({exc}); "
            "is it a DICOM receiver?"
        ) from exc
    if kind == ASSOCIATE_RJ:
        link._close()
        try:
            rj = parse_associate_rj(pdu)
        except ValueError as exc:
            raise DicomSendError(
                f"{where}: association rejected; unreadable answer ({exc})"
            ) from exc
        result, source, diagnostic = rj.result, rj.source, rj.reason
        hint = _REJECT_HINTS.get((source, diagnostic), f"source {source}, reason {diagnostic}")
        hint = hint.format(
            calling=destination.calling_ae,
            called=destination.ae,
            hostport=f"{destination.host}:{destination.port}",
        )
        kind_text = "permanently" if result == 1 else "for now"
        raise DicomSendError(f"{where}: association rejected {kind_text}: {hint}")
    if kind != ASSOCIATE_AC:
        link._close()
        raise DicomSendError(
            f"{where}: the receiver aborted the association request (PDU type 0x{kind:02X})"
        )
    try:
        answer = parse_associate_ac(pdu)
    except ValueError as exc:
        link.abort()
        raise DicomSendError(f"{where}: the association answer is malformed ({exc})") from exc
    accepted: dict[tuple[str, str], int] = {}
    for context_id, syntax in answer.syntaxes.items():
        if context_id % 2 == 1 and (context_id - 1) // 2 < len(contexts):
            sop_class, _ts = contexts[(context_id - 1) // 2]
            accepted[(sop_class, syntax)] = context_id
    if not accepted:
        link.abort()
        raise DicomSendError(
            f"{where}: the receiver accepted none of the presentation contexts offered "
            "(SOP classes / transfer syntaxes it does not store)"
        )
    link.contexts = accepted
    link.accepted = set(accepted)
    link.peer_max = answer.max_pdu
    return link
