"""The association PDUs a C-STORE requestor exchanges (PS3.8 9.3.2-9.3.4), byte for byte.

A sender needs to write one A-ASSOCIATE-RQ and read the A-ASSOCIATE-AC or -RJ that
answers it. pynetdicom's PDU classes do this too, but importing them loads pydicom and
numpy (~0.2 s, more than storescu takes to send 200 MB): this module is the few dozen
lines of the standard the sender needs, with no import beyond ``struct``. The tests
check it against pynetdicom's codec both ways.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
# xnat-tui's Implementation Class UID (PS3.7 D.3.3.2): a UUID-derived UID (PS3.5 B.2),
# so a receiver's log tells our associations from pynetdicom's or dcmtk's.
IMPLEMENTATION_CLASS_UID = "2.25.28865737301907062201859903897132036760"
IMPLEMENTATION_VERSION_NAME = "XNAT_TUI_0_1"  # 16 characters at most

ASSOCIATE_RQ, ASSOCIATE_AC, ASSOCIATE_RJ = 0x01, 0x02, 0x03
# At most 128 presentation contexts (IDs 1, 3, ... 255) in one association.
MAX_CONTEXTS = 128
_HEADER = 6 + 2 + 2 + 16 + 16 + 32  # PDU header, version, reserved, AE titles, reserved
_ITEM = struct.Struct(">BBH")


def _item(kind: int, value: bytes) -> bytes:
    return _ITEM.pack(kind, 0, len(value)) + value


def _ae(title: str) -> bytes:
    raw = title.encode("ascii")
    if not 0 < len(raw.strip()) <= 16:
        raise ValueError(f"AE title {title!r} must be 1 to 16 characters")
    return raw.ljust(16, b" ")


def associate_rq(
    called: str, calling: str, contexts: Sequence[tuple[str, str]], max_pdu: int
) -> bytes:
    """An A-ASSOCIATE-RQ offering one transfer syntax per (SOP class, syntax) pair.

    Context IDs are 1, 3, 5, ... in the order given; ``max_pdu`` is the largest PDU we
    accept (0: no limit)."""
    if not 0 < len(contexts) <= MAX_CONTEXTS:
        raise ValueError(f"{len(contexts)} presentation contexts (1 to {MAX_CONTEXTS} allowed)")
    items = [_item(0x10, APPLICATION_CONTEXT.encode())]
    for i, (sop_class, syntax) in enumerate(contexts):
        syntaxes = _item(0x30, sop_class.encode("ascii")) + _item(0x40, syntax.encode("ascii"))
        items.append(_item(0x20, bytes((2 * i + 1, 0, 0, 0)) + syntaxes))
    user = (
        _item(0x51, struct.pack(">I", max_pdu))
        + _item(0x52, IMPLEMENTATION_CLASS_UID.encode())
        + _item(0x55, IMPLEMENTATION_VERSION_NAME.encode())
    )
    items.append(_item(0x50, user))
    body = struct.pack(">HH", 1, 0) + _ae(called) + _ae(calling) + bytes(32) + b"".join(items)
    return struct.pack(">BBI", ASSOCIATE_RQ, 0, len(body)) + body


@dataclass(frozen=True)
class Accepted:
    """What an A-ASSOCIATE-AC says: the result for each context ID we offered (0 is
    acceptance; 1-4 PS3.8 Table 9-18's reasons), the transfer syntax chosen for each
    accepted one, and the largest PDU the peer takes (0: no limit)."""

    results: dict[int, int]
    syntaxes: dict[int, str]
    max_pdu: int


@dataclass(frozen=True)
class Rejected:
    """An A-ASSOCIATE-RJ: result (1 permanent, 2 transient), source, reason."""

    result: int
    source: int
    reason: int


def _items(data: bytes, pos: int) -> list[tuple[int, bytes]]:
    """The (type, value) items from ``pos`` to the end; a truncated item is an error."""
    found: list[tuple[int, bytes]] = []
    while pos < len(data):
        if pos + 4 > len(data):
            raise ValueError("an item header is cut short")
        kind, _reserved, length = _ITEM.unpack_from(data, pos)
        if pos + 4 + length > len(data):
            raise ValueError(f"item 0x{kind:02X} runs past the end of the PDU")
        found.append((kind, data[pos + 4 : pos + 4 + length]))
        pos += 4 + length
    return found


def _uid_text(raw: bytes) -> str:
    return raw.decode("ascii", "replace").rstrip("\0 ")


def parse_associate_ac(pdu: bytes) -> Accepted:
    """The presentation context results and maximum length of an A-ASSOCIATE-AC."""
    if len(pdu) < _HEADER or pdu[0] != ASSOCIATE_AC:
        raise ValueError("not an A-ASSOCIATE-AC PDU")
    results: dict[int, int] = {}
    syntaxes: dict[int, str] = {}
    max_pdu = 0
    for kind, value in _items(pdu, _HEADER):
        if kind == 0x21 and len(value) >= 4:
            context_id, result = value[0], value[2]
            results[context_id] = result
            for sub, sub_value in _items(value, 4):
                if sub == 0x40 and result == 0:
                    syntaxes[context_id] = _uid_text(sub_value)
        elif kind == 0x50:
            for sub, sub_value in _items(value, 0):
                if sub == 0x51 and len(sub_value) == 4:
                    max_pdu = int(struct.unpack(">I", sub_value)[0])
    return Accepted(results, syntaxes, max_pdu)


def parse_associate_rj(pdu: bytes) -> Rejected:
    if len(pdu) < 10 or pdu[0] != ASSOCIATE_RJ:
        raise ValueError("not an A-ASSOCIATE-RJ PDU")
    return Rejected(pdu[7], pdu[8], pdu[9])
