"""DICOM C-STORE, the sending side: destinations, presentation contexts, associations
and per-instance statuses, on pynetdicom (xnat-api-2.md §D).

Blocking by nature (pynetdicom runs its own socket thread per association); the send
engine (``transfer.cstore_engine``) calls :meth:`Link.store` from a worker thread and
journals each acknowledgement on its event loop before the next instance goes out.

Files the sender does not change (no anonymization, no routing, a transfer syntax the
receiver takes) are streamed from disk as they are (pynetdicom's chunked send): the
receiver gets byte for byte the data set the file holds. Changed copies are built in
memory and never written back to the user's files.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filereader import read_file_meta_info
from pydicom.uid import UID, ExplicitVRLittleEndian
from pynetdicom import AE, _config, evt
from pynetdicom.association import Association

from xnat_tui.transfer.server import TransferError

# Send files from disk without decoding them (byte-identical, constant memory).
_config.STORE_SEND_CHUNKED_DATASET = True

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
MAX_CONTEXTS = 128  # PS3.8: presentation context IDs are odd numbers 1..255
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


def read_info(path: Path) -> FileInfo:
    """SOP class/instance and transfer syntax from the file meta (headers as fallback)."""
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


def unsendable(infos: Iterable[tuple[Path, FileInfo]]) -> list[str]:
    """Files whose transfer syntax the receiver refuses and pydicom cannot convert."""
    return [
        f"{path}: transfer syntax {UID(info.transfer_syntax).name} is not accepted by "
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


@dataclass
class _Negotiation:
    reject: tuple[int, int, int] | None = None  # result, source, diagnostic
    answered: bool = False


@dataclass
class StoreResult:
    status: int | None  # None: no response (the association dropped or timed out)
    message: str


@dataclass
class Link:
    """One established association (use from one thread at a time)."""

    assoc: Association
    destination: DicomDestination
    accepted: set[tuple[str, str]] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def alive(self) -> bool:
        return bool(self.assoc.is_established)

    def store(self, payload: Path | Dataset, sop_class: str, ts: str) -> StoreResult:
        if (sop_class, ts) not in self.accepted:
            return StoreResult(
                None,
                f"the receiver accepted no presentation context for {UID(sop_class).name} "
                f"in {UID(ts).name}",
            )
        try:
            rsp = self.assoc.send_c_store(payload)
        except (RuntimeError, ValueError, AttributeError, OSError) as exc:
            return StoreResult(None, f"not sent: {exc}")
        if rsp is None or "Status" not in rsp:
            why = "the association was aborted" if not self.alive else "no response in time"
            return StoreResult(None, f"no C-STORE response ({why})")
        status = int(rsp.Status)
        comment = str(rsp.get("ErrorComment", "") or "")
        text = describe_status(status) + (f" ({comment})" if comment else "")
        return StoreResult(status, text)

    def release(self) -> None:
        if self.assoc.is_established:
            self.assoc.release()


def open_link(
    destination: DicomDestination,
    contexts: Sequence[tuple[str, str]],
    *,
    timeout: float = 30.0,
    max_pdu: int = 0,
) -> Link:
    """Associate with the receiver; raises DicomSendError that says what to check."""
    ae = AE(ae_title=destination.calling_ae)
    ae.acse_timeout = timeout
    ae.dimse_timeout = timeout
    ae.network_timeout = timeout
    ae.connection_timeout = timeout
    ae.maximum_pdu_size = max_pdu
    for sop_class, ts in contexts:
        ae.add_requested_context(sop_class, [ts])
    seen = _Negotiation()

    def on_acse(event: Any) -> None:
        prim = event.primitive
        seen.answered = True
        result = getattr(prim, "result", None)
        if result in (1, 2):
            seen.reject = (int(result), int(prim.result_source), int(prim.diagnostic))

    assoc = ae.associate(
        destination.host,
        destination.port,
        ae_title=destination.ae,
        max_pdu=max_pdu,
        evt_handlers=[(evt.EVT_ACSE_RECV, on_acse)],
    )
    if assoc.is_established:
        # pynetdicom leaves Nagle on: each small PDU then waits for the peer's delayed
        # ACK (~40-90 ms an instance on loopback). A C-STORE is request/response.
        with contextlib.suppress(AttributeError, OSError):
            assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # type: ignore[union-attr]
        accepted = {
            (str(cx.abstract_syntax), str(cx.transfer_syntax[0])) for cx in assoc.accepted_contexts
        }
        return Link(assoc, destination, accepted)
    raise DicomSendError(_explain_failure(destination, seen, assoc, timeout))


def _explain_failure(
    destination: DicomDestination, seen: _Negotiation, assoc: Association, timeout: float
) -> str:
    where = str(destination)
    if seen.reject is not None:
        result, source, diagnostic = seen.reject
        hint = _REJECT_HINTS.get((source, diagnostic), f"source {source}, reason {diagnostic}")
        hint = hint.format(
            calling=destination.calling_ae,
            called=destination.ae,
            hostport=f"{destination.host}:{destination.port}",
        )
        kind = "permanently" if result == 1 else "for now"
        return f"{where}: association rejected {kind}: {hint}"
    if seen.answered and assoc.is_aborted:
        return (
            f"{where}: the receiver accepted none of the presentation contexts offered "
            "(SOP classes / transfer syntaxes it does not store)"
        )
    # No answer at all: find out whether anything listens there.
    try:
        with socket.create_connection((destination.host, destination.port), timeout=timeout):
            pass
    except ConnectionRefusedError:
        return (
            f"{where}: connection refused: nothing listens on port {destination.port} of "
            f"{destination.host}; check the port and that the receiver is running"
        )
    except TimeoutError:
        return (
            f"{where}: timed out after {timeout:g} s connecting; check the host, the port "
            "and any firewall in between"
        )
    except OSError as exc:
        return f"{where}: cannot connect: {exc.strerror or exc}"
    return (
        f"{where}: the port is open but no association answer came within {timeout:g} s; "
        "is it a DICOM receiver?"
    )


def in_memory(path: Path, data: bytes | None, changes: dict[str, str]) -> Dataset:
    """The copy to send: the file (or its anonymized bytes) with routing written in,
    inflated when Deflated. Never written back to disk."""
    import io

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
