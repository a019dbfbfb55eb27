"""DICOM C-STORE, the sending side: destinations, presentation contexts, file meta,
and per-instance statuses (xnat-api-2.md §D). The association itself is in
``transfer.cstore_link`` (its own PDUs on a plain socket).

Blocking by nature; the send engine (``transfer.cstore_engine``) runs each association's
send loop in its own thread and journals acknowledgements in groups.

Files the sender does not change (no anonymization, no routing, a transfer syntax the
receiver takes) go out as they are (the bytes after the File Meta group): the receiver
gets byte for byte the data set the file holds. Changed copies are built in memory and
never written back to the user's files.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xnat_tui.transfer.acse import MAX_CONTEXTS
from xnat_tui.transfer.server import TransferError

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from xnat_tui.transfer.cstore_link import Link

VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
# What XNAT's receiver offers for every storage class (DicomSCP.java, §D.2): the little and
# big endian syntaxes, the JPEG family, RLE, MPEG2, JPIP, MIME and XML; never Deflated,
# HTJ2K or newer video codecs.
XNAT_TRANSFER_SYNTAXES: frozenset[str] = frozenset(
    {
        IMPLICIT_LE,
        EXPLICIT_LE,
        EXPLICIT_BE,
        "1.2.840.10008.1.2.4.50",  # JPEG Baseline
        "1.2.840.10008.1.2.4.51",  # JPEG Extended
        "1.2.840.10008.1.2.4.57",  # JPEG Lossless
        "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
        "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
        "1.2.840.10008.1.2.4.81",  # JPEG-LS near-lossless
        "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
        "1.2.840.10008.1.2.4.91",  # JPEG 2000
        "1.2.840.10008.1.2.4.92",  # JPEG 2000 Part 2 MC lossless
        "1.2.840.10008.1.2.4.93",  # JPEG 2000 Part 2 MC
        "1.2.840.10008.1.2.4.94",  # JPIP
        "1.2.840.10008.1.2.4.95",  # JPIP deflate
        "1.2.840.10008.1.2.4.100",  # MPEG2 MP@ML
        "1.2.840.10008.1.2.4.101",  # MPEG2 MP@HL
        "1.2.840.10008.1.2.5",  # RLE
        "1.2.840.10008.1.2.6.1",  # RFC 2557 MIME
        "1.2.840.10008.1.2.6.2",  # XML
    }
)
# Syntaxes pydicom can re-encode to Explicit VR Little Endian without a codec: the
# sender converts these rather than refusing (Deflated is one).
CONVERTIBLE: frozenset[str] = frozenset({DEFLATED_LE})
_AE_TITLE = re.compile(r"(?=[^\\]*[^\s\\]$)(?=[^\s\\])[ -~]{1,16}")


class DicomSendError(TransferError):
    """A send that cannot start or go on; ``str()`` says what to check."""


def check_ae_title(title: str, what: str = "AE title") -> str:
    """XNAT's AE title rule: 1-16 printable ASCII, no backslash, no edge spaces."""
    if not _AE_TITLE.fullmatch(title):
        raise ValueError(
            f"{what} {title!r}: 1 to 16 printable ASCII characters, "
            "no backslash, no leading or trailing space"
        )
    return title


@dataclass(frozen=True)
class DicomDestination:
    """A DICOM receiver: called AE title, host, port, and the AE title we call as."""

    ae: str
    host: str
    port: int
    calling_ae: str = "XNAT_TUI"

    def __post_init__(self) -> None:
        check_ae_title(self.ae, "called AE title")
        check_ae_title(self.calling_ae, "calling AE title")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port {self.port}: must be 1..65535")
        if not self.host:
            raise ValueError("no host")

    @classmethod
    def parse(cls, text: str, calling_ae: str = "XNAT_TUI") -> DicomDestination:
        """``AE@HOST:PORT`` (IPv6 hosts in brackets: ``XNAT@[::1]:8104``)."""
        m = re.fullmatch(r"(?P<ae>[^@]+)@(?P<host>\[[^\]]+\]|[^:@\[\]]+):(?P<port>\d{1,5})", text)
        if m is None:
            raise ValueError(f"{text!r}: expected AE@HOST:PORT, e.g. XNAT@127.0.0.1:8104")
        host = m["host"].strip("[]")
        return cls(ae=m["ae"], host=host, port=int(m["port"]), calling_ae=calling_ae)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.ae}@{host}:{self.port}"

    def to_params(self) -> dict[str, Any]:
        return {"ae": self.ae, "host": self.host, "port": self.port, "calling_ae": self.calling_ae}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> DicomDestination:
        return cls(
            ae=str(params["ae"]),
            host=str(params["host"]),
            port=int(params["port"]),
            calling_ae=str(params.get("calling_ae") or "XNAT_TUI"),
        )


# ---- what a file needs ------------------------------------------------------------------


@dataclass(frozen=True)
class FileInfo:
    sop_class: str
    sop_instance: str
    transfer_syntax: str
    # Part 10 file with the meta elements pynetdicom's chunked send needs.
    streamable: bool


_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN"})
_LONG_VRS |= {b"UR", b"UT", b"UV"}
# Enough of a file's start for any ordinary File Meta group.
META_HEAD = 8192


def read_meta(head: bytes) -> tuple[dict[int, bytes], int] | None:
    """The File Meta group of a Part 10 file from its first bytes, by hand (pydicom
    takes ~100 µs a file, more than sending a small instance): element number -> raw
    value, and the offset where the data set starts. None when ``head`` is not a
    Part 10 file or its meta group does not end inside ``head``."""
    if len(head) < 132 or head[128:132] != b"DICM":
        return None
    values: dict[int, bytes] = {}
    pos, end = 132, len(head)
    while pos + 8 <= end:
        group, elem = struct.unpack_from("<HH", head, pos)
        if group != 0x0002:
            return values, pos
        vr = head[pos + 4 : pos + 6]
        if vr in _LONG_VRS:
            if pos + 12 > end:
                return None
            length, start = struct.unpack_from("<I", head, pos + 8)[0], pos + 12
        else:
            length, start = struct.unpack_from("<H", head, pos + 6)[0], pos + 8
        values[elem] = head[start : start + length]
        pos = start + length
    return (values, pos) if pos == end and values else None


def meta_text(values: dict[int, bytes], elem: int) -> str:
    return values.get(elem, b"").decode("ascii", "replace").strip(" \0")


def scanned_infos(files: Iterable[Any]) -> dict[str, FileInfo]:
    """path -> FileInfo from the scanner's file records (``dicom.model.FileRef``), for
    the Part 10 files whose meta named all three UIDs; others are read when sent."""
    out: dict[str, FileInfo] = {}
    for f in files:
        if f.part10 and f.sop_class_uid and f.sop_instance_uid and f.transfer_syntax:
            out[f.path_str] = FileInfo(f.sop_class_uid, f.sop_instance_uid, f.transfer_syntax, True)
    return out


def read_info(path: Path) -> FileInfo:
    """SOP class/instance and transfer syntax from the file meta (headers as fallback)."""
    with path.open("rb") as fh:
        head = fh.read(META_HEAD)
    parsed = read_meta(head)
    if parsed is not None:
        values, _offset = parsed
        sop_class, sop_instance, ts = (meta_text(values, e) for e in (0x0002, 0x0003, 0x0010))
        if sop_class and sop_instance and ts:
            return FileInfo(sop_class, sop_instance, ts, True)
    return _read_info_pydicom(path)


def _read_info_pydicom(path: Path) -> FileInfo:
    from pydicom import dcmread
    from pydicom.dataset import FileMetaDataset
    from pydicom.filereader import read_file_meta_info

    try:
        meta = read_file_meta_info(path)
    except Exception:
        meta = FileMetaDataset()
    sop_class = str(meta.get("MediaStorageSOPClassUID", ""))
    sop_instance = str(meta.get("MediaStorageSOPInstanceUID", ""))
    ts = str(meta.get("TransferSyntaxUID", ""))
    streamable = bool(sop_class and sop_instance and ts)
    if not streamable:
        ds = dcmread(path, stop_before_pixels=True, force=True)
        sop_class = sop_class or str(ds.get("SOPClassUID", ""))
        sop_instance = sop_instance or str(ds.get("SOPInstanceUID", ""))
        if not ts:
            ts = EXPLICIT_LE if not ds.is_implicit_VR else IMPLICIT_LE
            if not ds.is_little_endian:
                ts = EXPLICIT_BE
    if not sop_class or not sop_instance:
        raise DicomSendError(f"{path}: no SOP Class UID or SOP Instance UID; cannot be sent")
    return FileInfo(sop_class, sop_instance, ts, streamable)


def sent_syntax(ts: str) -> str:
    """The transfer syntax an instance goes out in (Deflated is sent inflated)."""
    return EXPLICIT_LE if ts in CONVERTIBLE else ts


def unsendable(infos: Iterable[tuple[Path | str, FileInfo]]) -> list[str]:
    """Files whose transfer syntax the receiver refuses and pydicom cannot convert."""
    return [
        f"{path}: transfer syntax {uid_name(info.transfer_syntax)} is not accepted by "
        "XNAT's receiver and cannot be converted here"
        for path, info in infos
        if sent_syntax(info.transfer_syntax) not in XNAT_TRANSFER_SYNTAXES
    ]


def contexts_for(infos: Iterable[FileInfo]) -> list[tuple[str, str]]:
    """One presentation context per (SOP class, transfer syntax) the files need.

    One syntax per context, so the receiver cannot pick another syntax than the one a
    file is in (the file's bytes go out unchanged)."""
    pairs = sorted({(i.sop_class, sent_syntax(i.transfer_syntax)) for i in infos})
    if len(pairs) > MAX_CONTEXTS:
        raise DicomSendError(
            f"these files need {len(pairs)} presentation contexts (SOP class x transfer "
            f"syntax); one association carries at most {MAX_CONTEXTS}: send fewer kinds "
            "of files at once"
        )
    return pairs


# ---- statuses -----------------------------------------------------------------------------

_STATUS_TEXT = {
    0x0000: "success",
    0xB000: "warning: coercion of data elements",
    0xB006: "warning: elements discarded",
    0xB007: "warning: data set does not match SOP class",
    0x0117: "failure: invalid SOP instance",
    0x0122: "failure: SOP class not supported",
    0x0124: "failure: not authorised",
    0x0210: "failure: duplicate invocation",
    0x0211: "failure: unrecognised operation",
    0x0212: "failure: mistyped argument",
}


def describe_status(status: int) -> str:
    if status in _STATUS_TEXT:
        return f"0x{status:04X} {_STATUS_TEXT[status]}"
    if 0xA700 <= status <= 0xA7FF:
        return f"0x{status:04X} failure: out of resources (the receiver could not store it)"
    if 0xA900 <= status <= 0xA9FF:
        return f"0x{status:04X} failure: data set does not match SOP class"
    if 0xC000 <= status <= 0xCFFF:
        return f"0x{status:04X} failure: cannot understand (the receiver refused the object)"
    if 0xB000 <= status <= 0xBFFF:
        return f"0x{status:04X} warning"
    return f"0x{status:04X} failure"


def is_stored(status: int) -> bool:
    """Success and the three warnings: the receiver has the instance."""
    return status == 0x0000 or status in (0xB000, 0xB006, 0xB007) or 0xB000 <= status <= 0xBFFF


# ---- associations -------------------------------------------------------------------------


@dataclass
class StoreResult:
    status: int | None  # None: no response (the association dropped or timed out)
    message: str


def open_link(
    destination: DicomDestination,
    contexts: Sequence[tuple[str, str]],
    *,
    timeout: float = 30.0,
) -> Link:
    """Associate with the receiver (``cstore_link``); raises DicomSendError that says
    what to check."""
    from xnat_tui.transfer.cstore_link import open_link as associate

    return associate(destination, contexts, timeout=timeout)


def uid_name(uid: str) -> str:
    """A UID's name from pydicom's dictionary ("MR Image Storage"), for messages: loaded
    only when one is shown, so a send that goes well never imports pydicom."""
    from pydicom.uid import UID

    return str(UID(uid).name)


def in_memory(path: Path, data: bytes | None, changes: dict[str, str]) -> Dataset:
    """The copy to send: the file (or its anonymized bytes) with routing written in,
    inflated when Deflated. Never written back to disk."""
    import io

    from pydicom import dcmread
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    ds = dcmread(io.BytesIO(data) if data is not None else path, force=True)
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        ds.file_meta = meta = FileMetaDataset()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if str(meta.TransferSyntaxUID) in CONVERTIBLE:
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds
