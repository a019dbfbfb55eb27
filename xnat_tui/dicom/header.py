"""Read just enough of one file to place it: the fast header path and its pydicom fallback.

The fast path reads the first few KiB, walks the element headers of the common
encodings (explicit and implicit VR little endian, with or without preamble and
meta group) and decodes only the tags the scanner needs; bulky elements (private
vendor blocks, sequences with a length) are skipped by seeking, never read. It
stops at Pixel Data, whose offset and length reveal truncated files. Anything
unusual (big endian, deflated, odd encodings, tags out of order) goes to pydicom.

Both paths are bounded, so a hostile or damaged file costs well under a second
instead of a parse of the whole file: zero bytes where an element header belongs
(a sparse or zero-filled file) end the header at once, and at most ``MAX_HEADER``
bytes are read element by element (values skipped by seeking do not count). A file
whose header stops being readable after its identifying tags is still placed, with
what was read.

This module must stay importable without pydicom: workers only import it when a
file actually needs the fallback, which keeps process start-up cheap.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Mapping
from typing import Any

from xnat_tui.dicom.model import ProblemKind

# Values are returned as text; these keys carry what is not a DICOM keyword.
TS_KEY = "_ts"  # transfer syntax UID ("" for a bare dataset read as implicit VR LE)
PART10_KEY = "_part10"  # "1" with preamble+meta, "0" for a bare dataset
META_SOP_CLASS_KEY = "_meta_sop_class"
PIXEL_KEY = "_pixel"  # "offset:length" of Pixel Data, length -1 when encapsulated
VIA_KEY = "_via"  # "fast", "pydicom", or PARTIAL (header read up to MAX_HEADER only)
PARTIAL = "partial"  # Pixel Data not reached within MAX_HEADER: its place is unknown
ZEROS_KEY = "_zeros"  # offset where zero bytes replace the rest of the header

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
_DEFLATED = "1.2.840.10008.1.2.1.99"
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"

# (tag) -> (keyword, VR). Everything the scanner, the checks and the routing need,
# all at the top level of the dataset and before Pixel Data.
DEFAULT_TAGS: dict[int, tuple[str, str]] = {
    0x00080005: ("SpecificCharacterSet", "CS"),
    0x00080008: ("ImageType", "CS"),
    0x00080016: ("SOPClassUID", "UI"),
    0x00080018: ("SOPInstanceUID", "UI"),
    0x00080020: ("StudyDate", "DA"),
    0x00080021: ("SeriesDate", "DA"),
    0x00080030: ("StudyTime", "TM"),
    0x00080031: ("SeriesTime", "TM"),
    0x00080050: ("AccessionNumber", "SH"),
    0x00080060: ("Modality", "CS"),
    0x00080064: ("ConversionType", "CS"),
    0x00080070: ("Manufacturer", "LO"),
    0x00080080: ("InstitutionName", "LO"),
    0x00080090: ("ReferringPhysicianName", "PN"),
    0x00081030: ("StudyDescription", "LO"),
    0x0008103E: ("SeriesDescription", "LO"),
    0x00081090: ("ManufacturerModelName", "LO"),
    0x00100010: ("PatientName", "PN"),
    0x00100020: ("PatientID", "LO"),
    0x00100030: ("PatientBirthDate", "DA"),
    0x00100040: ("PatientSex", "CS"),
    0x00101010: ("PatientAge", "AS"),
    0x001021B0: ("AdditionalPatientHistory", "LT"),
    0x00104000: ("PatientComments", "LT"),
    0x00180015: ("BodyPartExamined", "CS"),
    0x00181030: ("ProtocolName", "LO"),
    0x0020000D: ("StudyInstanceUID", "UI"),
    0x0020000E: ("SeriesInstanceUID", "UI"),
    0x00200010: ("StudyID", "SH"),
    0x00200011: ("SeriesNumber", "IS"),
    0x00200013: ("InstanceNumber", "IS"),
    0x00280002: ("SamplesPerPixel", "US"),
    0x00280004: ("PhotometricInterpretation", "CS"),
    0x00280008: ("NumberOfFrames", "IS"),
    0x00280010: ("Rows", "US"),
    0x00280011: ("Columns", "US"),
    0x00280100: ("BitsAllocated", "US"),
    0x00280301: ("BurnedInAnnotation", "CS"),
    0x00324000: ("StudyComments", "LT"),
}
REQUIRED = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")

PIXEL_DATA = 0x7FE00010
# Float, Double Float and (integer) Pixel Data: an image has at most one of them.
_PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, PIXEL_DATA})
FIRST_READ = 8192
# Bytes read element by element before the header is given up (values skipped by a
# seek, such as big private blocks, do not count). Real headers need a few KiB, the
# largest (functional groups of enhanced multi-frame images, RT structure sets,
# references to thousands of images) some MiB, with their identifying tags near the
# start. The bound caps a crafted file of tiny elements at about 5 s in the fast
# path; zero-filled files stop at their first zero element header.
MAX_HEADER = 64 << 20
_ZERO_HEADER = bytes(8)  # tag (0000,0000), length 0: never an element of a stored file
_LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
_VALID_VRS = _LONG_VRS | frozenset(
    {
        b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT",
        b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
    }
)  # fmt: skip
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_TAG = struct.Struct("<HH")
_EXPLICIT = struct.Struct("<HH2sH")
_IMPLICIT = struct.Struct("<HHI")
_MAX_DEPTH = 12
_MAX_VALUE = 1 << 20  # no attribute we read is anywhere near 1 MiB in a sane file
_UNDEFINED = 0xFFFFFFFF
_ITEM = 0xFFFEE000
_ITEM_END = 0xFFFEE00D
_SEQ_END = 0xFFFEE0DD

# SpecificCharacterSet terms decodable with one Python codec (no ISO 2022 escapes).
_SIMPLE_CHARSETS = {
    "": "latin_1",  # pydicom's default when the tag is absent
    "ISO_IR 6": "latin_1",
    "ISO_IR 100": "latin_1",
    "ISO_IR 101": "iso8859_2",
    "ISO_IR 109": "iso8859_3",
    "ISO_IR 110": "iso8859_4",
    "ISO_IR 144": "iso8859_5",
    "ISO_IR 127": "iso8859_6",
    "ISO_IR 126": "iso8859_7",
    "ISO_IR 138": "iso8859_8",
    "ISO_IR 148": "iso8859_9",
    "ISO_IR 203": "iso8859_15",
    "ISO_IR 166": "iso8859_11",
    "ISO_IR 192": "utf_8",
    "GB18030": "gb18030",
    "GBK": "gbk",
}


class HeaderError(Exception):
    """A file that cannot be placed; ``kind`` is a ``ProblemKind`` value."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


class NeedFallback(Exception):
    """The fast path does not handle this encoding; ask pydicom."""


class _Truncated(Exception):
    pass


class _Zeros(Exception):
    """Zero bytes where an element header should start (zero-filled or sparse file)."""

    def __init__(self, pos: int) -> None:
        super().__init__(pos)
        self.pos = pos


class _TooLong(Exception):
    """``MAX_HEADER`` bytes read without reaching Pixel Data."""


def _zeros_detail(pos: int) -> str:
    return (
        f"not a valid DICOM dataset: zero bytes instead of DICOM header elements from "
        f"byte {pos:,} on (a zero-filled or sparse file?)"
    )


def zeros_tail_detail(pos: int) -> str:
    return (
        f"zero bytes instead of DICOM elements from byte {pos:,} on: the rest of the file "
        f"was never written (cut short)"
    )


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB"


def _too_long_detail(missing: list[str], limit: int = 0) -> str:
    return (
        f"no {', '.join(missing)} in the first {_size(limit or MAX_HEADER)} of DICOM header "
        f"elements: not read further (damaged, or not a DICOM file we can read)"
    )


class _Reader:
    """Random access to a file through one small window, refilled by seeking."""

    __slots__ = ("f", "size", "data", "start", "bytes_read")

    def __init__(self, f: Any, size: int, first: bytes) -> None:
        self.f = f
        self.size = size
        self.data = first
        self.start = 0
        self.bytes_read = len(first)

    def get(self, pos: int, n: int) -> bytes:
        off = pos - self.start
        if off >= 0 and off + n <= len(self.data):
            return self.data[off : off + n]
        if pos + n > self.size:
            raise _Truncated
        if self.bytes_read >= MAX_HEADER:
            raise _TooLong  # checked per refill (8 KiB), never per element
        self.f.seek(pos)
        self.data = self.f.read(max(n, FIRST_READ))
        self.start = pos
        self.bytes_read += len(self.data)
        if len(self.data) < n:
            raise _Truncated  # the file shrank while we read it
        return self.data[:n]


def _skip_sequence(r: _Reader, pos: int, explicit: bool, depth: int) -> int:
    """Skip an undefined-length sequence starting at its first item; return the end."""
    if depth > _MAX_DEPTH:
        raise NeedFallback
    while True:
        hdr = r.get(pos, 8)
        group, elem = _TAG.unpack_from(hdr)
        tag = group << 16 | elem
        length = _U32.unpack_from(hdr, 4)[0]
        if hdr == _ZERO_HEADER:
            raise _Zeros(pos)
        pos += 8
        if tag == _SEQ_END:
            return pos
        if tag != _ITEM:
            raise NeedFallback
        if length != _UNDEFINED:
            pos += length
            continue
        pos = _skip_item(r, pos, explicit, depth + 1)


def _skip_item(r: _Reader, pos: int, explicit: bool, depth: int) -> int:
    while True:
        tag, vr, length, vpos = _element_header(r, pos, explicit)
        if tag == _ITEM_END:
            return vpos
        if tag >> 16 == 0xFFFE:
            # An item or sequence delimiter where an element should be: the item's own
            # delimiter is missing. Never valid; pydicom decides (it refuses such files).
            raise NeedFallback
        if tag == 0 and length == 0:
            raise _Zeros(pos)  # implicit VR: else the walk would crawl through them all
        if length == _UNDEFINED:
            pos = _skip_sequence(r, vpos, explicit and vr != b"UN", depth + 1)
        else:
            pos = vpos + length


def _element_header(r: _Reader, pos: int, explicit: bool) -> tuple[int, bytes, int, int]:
    hdr = r.get(pos, 8)
    group, elem = _TAG.unpack_from(hdr)
    tag = group << 16 | elem
    if group == 0xFFFE:  # item / delimiters: always 4-byte length, no VR
        return tag, b"", _U32.unpack_from(hdr, 4)[0], pos + 8
    if not explicit:
        return tag, b"", _U32.unpack_from(hdr, 4)[0], pos + 8
    vr = hdr[4:6]
    if vr in _LONG_VRS:
        return tag, vr, _U32.unpack_from(r.get(pos + 8, 4))[0], pos + 12
    if vr not in _VALID_VRS:
        if hdr == _ZERO_HEADER:
            raise _Zeros(pos)
        raise NeedFallback  # not the encoding we assumed (or garbage: pydicom decides)
    return tag, vr, _U16.unpack_from(hdr, 6)[0], pos + 8


def _parse_dataset(
    r: _Reader,
    pos: int,
    explicit: bool,
    want: Mapping[int, tuple[str, str]],
    raw: dict[int, bytes],
) -> tuple[int, int] | None:
    """Collect wanted top-level values; return Pixel Data (offset, length) if any."""
    last_tag = -1
    size = r.size
    explicit_unpack = _EXPLICIT.unpack_from
    implicit_unpack = _IMPLICIT.unpack_from
    u32 = _U32.unpack_from
    while pos < size:
        data = r.data
        off = pos - r.start
        if off >= 0 and off + 12 <= len(data):
            # Common case, decoded straight from the window (this loop is the hot spot).
            if explicit:
                group, elem, vr, length = explicit_unpack(data, off)
                if vr in _LONG_VRS:
                    length = u32(data, off + 8)[0]
                    vpos = pos + 12
                elif vr in _VALID_VRS:
                    vpos = pos + 8
                elif data[off : off + 8] == _ZERO_HEADER:
                    raise _Zeros(pos)
                else:
                    raise NeedFallback
            else:
                group, elem, length = implicit_unpack(data, off)
                vr = b""
                vpos = pos + 8
            tag = group << 16 | elem
        else:
            if pos + 8 > size:
                raise _Truncated
            tag, vr, length, vpos = _element_header(r, pos, explicit)
        if tag <= last_tag:
            if tag == 0 and length == 0:
                raise _Zeros(pos - 8 if last_tag == 0 else pos)
            raise NeedFallback  # out of order: pydicom copes, we must not guess
        last_tag = tag
        if tag >= 0x7FE00000 and tag != 0xFFFCFFFC:
            if tag in _PIXEL_TAGS:
                return vpos, (-1 if length == _UNDEFINED else length)
            if tag > PIXEL_DATA:
                return None  # later groups: nothing we need, and no pixels
            # (7FE0,0000) group length, extended offset table: skipped like any other
        if length == _UNDEFINED:
            pos = _skip_sequence(r, vpos, explicit and vr != b"UN", 0)
            continue
        if tag in want:
            if length > _MAX_VALUE:
                keyword = want[tag][0]
                raise HeaderError(ProblemKind.CORRUPT, f"{keyword} claims {length:,} bytes")
            voff = vpos - r.start
            if voff >= 0 and voff + length <= len(r.data):
                raw[tag] = r.data[voff : voff + length]
            else:
                raw[tag] = r.get(vpos, length)
        elif vpos + length > size:
            raise _Truncated
        pos = vpos + length
    return None


def _decode_text(data: bytes, charset: str) -> str:
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        pass
    terms = [t.strip() for t in charset.split("\\")]
    codec = _SIMPLE_CHARSETS.get(terms[0]) if len(terms) == 1 else None
    if codec is not None:
        return data.decode(codec, errors="replace")
    return _decode_iso2022(data, charset)


def _decode_iso2022(data: bytes, charset: str) -> str:
    """pydicom's decoder: code extensions, escape sequences, per-delimiter resets."""
    from pydicom import charset as dicom_charset

    terms = [t.strip() for t in charset.split("\\")]
    delims: set[int] = dicom_charset.TEXT_VR_DELIMS  # type: ignore[attr-defined]
    return dicom_charset.decode_bytes(data, dicom_charset.convert_encodings(terms), delims)


_STRIP_BOTH = frozenset({"CS", "IS", "DS", "DA", "TM", "AS"})
_SINGLE_VALUED = frozenset({"PN", "LT", "ST", "UT"})  # backslash is an ordinary character


def _values(raw: Mapping[int, bytes], want: Mapping[int, tuple[str, str]]) -> dict[str, str]:
    charset = ""
    if 0x00080005 in raw:
        charset = raw[0x00080005].decode("ascii", errors="replace").strip("\0 ")
    # ISO 2022 code extensions switch character sets with ESC sequences inside
    # 7-bit text (JIS X 0208, KS X 1001...): ASCII-looking bytes still need decoding.
    escapes = "2022" in charset
    out: dict[str, str] = {}
    for tag, data in raw.items():
        keyword, vr = want[tag]
        if vr == "US":
            if len(data) >= 2:
                out[keyword] = str(_U16.unpack_from(data)[0])
            continue
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            text = _decode_text(data, charset)
        else:
            if escapes and "\x1b" in text:
                text = _decode_iso2022(data, charset)
        if vr == "UI":
            value = text.rstrip("\0 ").strip()
        elif vr == "PN":
            value = text.rstrip("\0 ")
            if "=" in value:
                # pydicom drops empty trailing component groups ("Yamada^Tarou==")
                value = "\\".join(v.rstrip("=") for v in value.split("\\"))
        elif vr in _SINGLE_VALUED:
            value = text.rstrip("\0 ")
        elif "\\" in text:
            if vr in _STRIP_BOTH:
                value = "\\".join(p.strip("\0 ") for p in text.split("\\"))
            else:
                value = "\\".join(p.rstrip("\0 ") for p in text.split("\\"))
        elif vr in _STRIP_BOTH:
            value = text.strip("\0 ")
        else:
            value = text.rstrip("\0 ")
        if value:
            out[keyword] = value
    return out


def _ts_is_explicit(ts: str) -> bool:
    if ts == IMPLICIT_LE:
        return False
    if ts in (EXPLICIT_LE, "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.1.98"):
        return True
    if ts.startswith("1.2.840.10008.1.2.4."):
        return True  # JPEG family, JPEG 2000, MPEG, HTJ2K: explicit LE + encapsulated pixels
    raise NeedFallback  # big endian, deflated, private syntaxes


def _looks_explicit(r: _Reader, pos: int) -> bool:
    """Guess the VR encoding of a dataset without meta, as pydicom does."""
    return r.get(pos, 6)[4:6] in _VALID_VRS


def fast_header(
    f: Any, size: int, want: Mapping[int, tuple[str, str]] = DEFAULT_TAGS
) -> tuple[dict[str, str], int]:
    """Parse the header from an open binary file; return (values, bytes read).

    Raises ``HeaderError`` for files that are definitely not usable and
    ``NeedFallback`` when pydicom should decide.
    """
    first = f.read(FIRST_READ)
    r = _Reader(f, size, first)
    values: dict[str, str] = {}
    raw: dict[int, bytes] = {}
    try:
        if len(first) >= 132 and first[128:132] == b"DICM":
            values[PART10_KEY] = "1"
            pos = 132
            if len(first) >= 138 and (
                first[132:134] != b"\x02\x00" or first[136:138] not in _VALID_VRS
            ):
                if first[132:140] == _ZERO_HEADER:
                    raise _Zeros(132)
                raise NeedFallback  # no regular meta header: garbage, or an odd writer
        elif first[:4] == b"DICM":
            raise HeaderError(
                ProblemKind.NOT_DICOM, "starts with 'DICM' but the 128-byte preamble is missing"
            )
        elif len(first) >= 8 and _U16.unpack_from(first)[0] in (0x0002, 0x0008):
            values[PART10_KEY] = "0"  # bare dataset, as some old exporters write
            pos = 0
        elif len(first) >= 8 and first[:2] in (b"\x00\x02", b"\x00\x08"):
            raise NeedFallback  # bare big-endian dataset
        else:
            raise HeaderError(ProblemKind.NOT_DICOM, describe_non_dicom(first, size))

        ts = ""
        meta: dict[int, bytes] = {}
        while pos + 8 <= r.size and _U16.unpack_from(r.get(pos, 2))[0] == 0x0002:
            tag, _vr, length, vpos = _element_header(r, pos, True)
            if length == _UNDEFINED:
                raise NeedFallback
            if tag in (0x00020002, 0x00020003, 0x00020010):
                meta[tag] = r.get(vpos, length)
            elif vpos + length > r.size:
                raise _Truncated
            pos = vpos + length
        if values[PART10_KEY] == "1" and pos >= r.size:
            raise HeaderError(
                ProblemKind.TRUNCATED,
                "file ends inside the DICOM meta header: missing StudyInstanceUID, "
                "SeriesInstanceUID, SOPInstanceUID (cannot be placed in a session)",
            )
        if 0x00020002 in meta:
            values[META_SOP_CLASS_KEY] = meta[0x00020002].decode("ascii", "replace").strip("\0 ")
        if 0x00020010 in meta:
            ts = meta[0x00020010].decode("ascii", "replace").strip("\0 ")
            explicit = _ts_is_explicit(ts)
        elif values[PART10_KEY] == "1" and meta:
            raise NeedFallback  # meta without a transfer syntax: let pydicom guess
        else:
            explicit = _looks_explicit(r, pos)
            ts = EXPLICIT_LE if explicit else IMPLICIT_LE
        values[TS_KEY] = ts
        if values.get(META_SOP_CLASS_KEY) == DICOMDIR_SOP_CLASS:
            return values, r.bytes_read

        via = "fast"
        try:
            pixel = _parse_dataset(r, pos, explicit, want, raw)
        except _Zeros as exc:
            # The header ends in zeros: what came before still places the file, which
            # is reported as cut short; with nothing usable, it is reported as corrupt.
            if not _has_required(raw, want):
                raise
            pixel = None
            values[ZEROS_KEY] = str(exc.pos)
        except _TooLong:
            if not _has_required(raw, want):
                raise
            pixel, via = None, PARTIAL
        values.update(_values(raw, want))
        if pixel is not None:
            values[PIXEL_KEY] = f"{pixel[0]}:{pixel[1]}"
    except _Truncated:
        raise HeaderError(ProblemKind.TRUNCATED, "file ends inside the DICOM header") from None
    except _Zeros as exc:
        raise HeaderError(ProblemKind.CORRUPT, _zeros_detail(exc.pos)) from None
    except _TooLong:
        found = _values(raw, want)
        missing = [k for k in REQUIRED if not found.get(k)]
        raise HeaderError(ProblemKind.CORRUPT, _too_long_detail(missing)) from None
    values[VIA_KEY] = via
    return values, r.bytes_read


def _has_required(raw: Mapping[int, bytes], want: Mapping[int, tuple[str, str]]) -> bool:
    found = {want[tag][0] for tag, data in raw.items() if data.strip(b"\0 ")}
    return all(k in found for k in REQUIRED)


def _pydicom_str(value: Any) -> str:
    from pydicom.multival import MultiValue

    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(_pydicom_str(v) for v in value)
    if isinstance(value, bytes):
        return value.decode("latin_1").rstrip("\0 ")
    return str(value).strip("\0 ") if not isinstance(value, str) else value.rstrip("\0 ")


class _Bounded:
    """The file as pydicom sees it in ``pydicom_header``: reads are counted, and past
    ``limit`` bytes, or at a run of all-zero element headers, reading stops with an
    exception (pydicom would otherwise parse a 2 GB zero-filled file 8 bytes at a
    time, for about 20 minutes). Seeks are free: values pydicom defers cost nothing."""

    __slots__ = ("f", "name", "limit", "count", "tripped", "_zero_run", "_zero_at")

    def __init__(self, f: Any, name: str, limit: int) -> None:
        self.f = f
        self.name = name
        self.limit = limit
        self.count = 0
        # What stopped the read: pydicom turns some exceptions into its own (an
        # OSError for an item header it cannot read), so the caller looks here.
        self.tripped: _Zeros | _TooLong | None = None
        self._zero_run = 0
        self._zero_at = 0

    def read(self, n: int | None = -1) -> bytes:
        room = self.limit - self.count + 1
        pos = self.f.tell()
        data: bytes = self.f.read(room if n is None or n < 0 or n > room else n)
        self.count += len(data)
        if self.count > self.limit:
            self.tripped = _TooLong()
            raise self.tripped
        if n == 8 and data == _ZERO_HEADER:
            if self._zero_run == 0:
                self._zero_at = pos
            self._zero_run += 1
            if self._zero_run >= 16:  # never in a real file: element headers are not zero
                self.tripped = _Zeros(self._zero_at)
                raise self.tripped
        else:
            self._zero_run = 0
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return int(self.f.seek(offset, whence))

    def tell(self) -> int:
        return int(self.f.tell())


def _hard_limit() -> int:
    return MAX_HEADER + MAX_HEADER // 4


def _opened(path: str, fileobj: Any) -> Any:
    """The file to read: ``fileobj`` (an archive member, left open, from its start) or
    ``path`` opened here."""
    if fileobj is None:
        return open(path, "rb")  # noqa: SIM115 - used as a context manager
    fileobj.seek(0)
    return contextlib.nullcontext(fileobj)


def pydicom_header(
    path: str,
    want: Mapping[int, tuple[str, str]] = DEFAULT_TAGS,
    *,
    force: bool = False,
    fileobj: Any = None,
) -> tuple[dict[str, str], int]:
    """The slow, tolerant path: pydicom reads the header (meta + dataset, no pixels).

    Bounded like the fast path: it stops at Pixel Data, or after ``MAX_HEADER`` bytes
    read (keeping what was read when that places the file), and at most a quarter
    more inside a sequence; values over 1 MiB are skipped by seeking, never read.
    """
    import logging
    import warnings

    from pydicom.dataelem import RawDataElement
    from pydicom.errors import InvalidDicomError
    from pydicom.filereader import read_partial

    # pydicom logs what it tolerates; those are our findings to report, not log lines
    # on the user's terminal (or inside the TUI). Silence it for this call only.
    logger = logging.getLogger("pydicom")
    saved_level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    values: dict[str, str] = {VIA_KEY: "pydicom"}
    bounded: _Bounded | None = None
    stopped = False
    zeros_at = -1
    pixel = ""

    def stop_when(tag: int, _vr: str | None, length: int) -> bool:
        nonlocal stopped, zeros_at, pixel
        if tag in _PIXEL_TAGS:
            if bounded is not None:  # called with the file just past the element header
                pixel = f"{bounded.tell()}:{-1 if length == _UNDEFINED else length}"
            return True
        if tag == 0 and length == 0 and bounded is not None:
            zeros_at = bounded.tell() - 8  # the dataset ends in zeros (see fast_header)
            return True
        if bounded is not None and bounded.count > MAX_HEADER:
            stopped = True
            return True
        return False

    try:
        with warnings.catch_warnings(), _opened(path, fileobj) as f:
            warnings.simplefilter("ignore")
            bounded = _Bounded(f, path, _hard_limit())
            ds = read_partial(bounded, stop_when, defer_size=_MAX_VALUE, force=force)  # type: ignore[arg-type]
            meta = getattr(ds, "file_meta", None)
            if meta is not None:
                ts = meta.get("TransferSyntaxUID")
                if ts:
                    values[TS_KEY] = str(ts)
                if len(meta):  # a file meta group was read: the key says so, even empty
                    values[META_SOP_CLASS_KEY] = str(meta.get("MediaStorageSOPClassUID") or "")
            if TS_KEY not in values:
                # No transfer syntax in the file: the encoding pydicom found (big
                # endian is always explicit VR).
                implicit, little = getattr(ds, "original_encoding", (None, None))
                if implicit is None:
                    implicit, little = ds.is_implicit_VR, ds.is_little_endian
                values[TS_KEY] = (
                    (IMPLICIT_LE if implicit else EXPLICIT_LE) if little else EXPLICIT_BE
                )
            # A deflated dataset is read from an inflated copy: no offsets in the file.
            if pixel and values[TS_KEY] != _DEFLATED:
                values[PIXEL_KEY] = pixel
            values[PART10_KEY] = "1" if getattr(ds, "preamble", None) is not None else "0"
            for tag, (keyword, _vr) in want.items():
                if tag not in ds:
                    continue
                raw_elem = ds.get_item(tag)
                if isinstance(raw_elem, RawDataElement) and raw_elem.value is None:
                    continue  # deferred: over 1 MiB, no value we read is that long
                elem = ds[tag]
                if elem.value is None:
                    continue
                text = _pydicom_str(elem.value)
                if text != "":
                    values[keyword] = text
            stray = _stray_delimiter(ds)
            if stray:
                raise HeaderError(ProblemKind.CORRUPT, stray)
            missing = [k for k in REQUIRED if not values.get(k)]
            if zeros_at >= 0:
                if missing:
                    raise HeaderError(ProblemKind.CORRUPT, _zeros_detail(zeros_at))
                values[ZEROS_KEY] = str(zeros_at)
            if stopped:
                if missing:
                    raise HeaderError(ProblemKind.CORRUPT, _too_long_detail(missing))
                values[VIA_KEY] = PARTIAL
    except HeaderError:
        raise
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on garbage
        tripped = bounded.tripped if bounded is not None else None
        if isinstance(tripped, _Zeros):
            raise HeaderError(ProblemKind.CORRUPT, _zeros_detail(tripped.pos)) from None
        if isinstance(tripped, _TooLong):
            detail = _too_long_detail(list(REQUIRED), _hard_limit())
            raise HeaderError(ProblemKind.CORRUPT, detail) from None
        if isinstance(exc, InvalidDicomError):
            raise HeaderError(ProblemKind.NOT_DICOM, f"pydicom: {exc}") from None
        if isinstance(exc, OSError):
            raise HeaderError(ProblemKind.CORRUPT, f"read error: {exc}") from None
        raise HeaderError(ProblemKind.CORRUPT, f"{type(exc).__name__}: {exc}") from None
    finally:
        logger.setLevel(saved_level)
    return values, bounded.count if bounded is not None else 0


def _stray_delimiter(ds: Any, depth: int = 0) -> str:
    """Why the items of ``ds``'s sequences are malformed ('' when they are not).

    pydicom reads a sequence item whose delimiter is missing by swallowing what follows
    (the next item, the sequence's end) as elements of the item; it refuses the file
    only when those are converted, which a header read never does. An item or delimiter
    tag among an item's elements is that case: the file cannot be read fully.
    """
    from pydicom.sequence import Sequence

    for elem in ds.elements():
        tag = int(elem.tag)
        if depth and tag >> 16 == 0xFFFE:
            return (
                f"a sequence item lacks its delimiter: ({tag >> 16:04X},{tag & 0xFFFF:04X}) "
                "appears among its elements (the file cannot be read as DICOM)"
            )
        if isinstance(elem.value, Sequence):
            for item in elem.value:
                found = _stray_delimiter(item, depth + 1)
                if found:
                    return found
    return ""


_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a ZIP archive (upload it as an archive instead)"),
    (b"\x1f\x8b", "a gzip file (e.g. .dcm.gz or .tar.gz: decompress or upload as an archive)"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x89PNG", "a PNG image"),
    (b"%PDF", "a PDF document"),
    (b"\xd0\xcf\x11\xe0", "an Office/Thumbs.db compound file"),
    (b"ustar", "a tar archive"),
    (b"BZh", "a bzip2 file"),
    (b"\xfd7zXZ", "an xz file"),
    (b"7z\xbc\xaf", "a 7-zip archive"),
    (b"\x00\x00\x00\x01Bud1", "a macOS .DS_Store file"),
    (b"\x5c\x01\x00\x00", "a NIfTI-1 image"),
)


def describe_non_dicom(head: bytes, size: int) -> str:
    """A helpful one-liner on what a non-DICOM file probably is."""
    for magic, what in _MAGIC:
        if head.startswith(magic) or (magic == b"ustar" and head[257:262] == magic):
            return f"not DICOM: {what}"
    sample = head[:512]
    if sample and all(32 <= b < 127 or b in (9, 10, 13) for b in sample):
        return "not DICOM: a text file"
    if size < 132:
        return f"not DICOM: only {size} bytes, too short for a DICOM header"
    return "not DICOM: no 'DICM' marker at byte 128"


_SEQ_END_HEADER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
_SEQ_END_TAG = _SEQ_END_HEADER[:4]


def fragments_problem(f: Any, offset: int, size: int) -> str | None:
    """Why encapsulated Pixel Data whose first item starts at ``offset`` is cut short,
    or None when its fragments end with their sequence delimiter inside the file.

    Usually one read: the delimiter is the last 8 bytes of the file. When something
    follows the pixels (padding, a signature) the item headers are walked. Should
    they not be items at all, the delimiter's bytes are searched for after the
    pixels, as pydicom's full read does.
    """
    if size >= offset + 8:
        f.seek(size - 8)
        if f.read(8) == _SEQ_END_HEADER:
            return None
    pos = offset
    while pos + 8 <= size:
        f.seek(pos)
        hdr = f.read(8)
        if len(hdr) < 8:
            break
        group, elem, length = _IMPLICIT.unpack(hdr)
        tag = group << 16 | elem
        if tag == _SEQ_END:
            return trailing_problem(f, pos + 8, size, EXPLICIT_LE)
        if tag != _ITEM or length == _UNDEFINED:
            return None if _find(f, _SEQ_END_TAG, offset, size) else _CUT_FRAGMENTS
        pos += 8 + length
    return _CUT_FRAGMENTS


_CUT_FRAGMENTS = (
    "compressed Pixel Data stops inside its fragments (no sequence delimiter): "
    "the file was cut short"
)


def _find(f: Any, needle: bytes, start: int, end: int) -> bool:
    chunk = 1 << 20
    pos = start
    tail = b""
    while pos < end:
        f.seek(pos)
        data = f.read(min(chunk, end - pos))
        if not data:
            return False
        if needle in tail + data:
            return True
        tail = data[-(len(needle) - 1) :]
        pos += len(data)
    return False


_MAX_TRAILING = 64
_BIG_EXPLICIT = struct.Struct(">HH2sH")


def trailing_problem(f: Any, pos: int, size: int, ts: str) -> str | None:
    """Why the elements after the pixels (trailing padding, private blocks) are cut
    short, or None. Rarely anything is there; a few element headers at most are read.
    When unsure (sequences, a deflated dataset, many elements) it says nothing."""
    if pos >= size or ts == _DEFLATED:
        return None
    explicit = ts != IMPLICIT_LE
    big = ts == EXPLICIT_BE
    for _ in range(_MAX_TRAILING):
        if pos >= size:
            return None
        f.seek(pos)
        hdr = f.read(12)
        if len(hdr) < 8:
            return _CUT_TRAILING
        if explicit:
            group, elem, vr, length = (_BIG_EXPLICIT if big else _EXPLICIT).unpack_from(hdr)
            if group == 0xFFFE:
                return None  # an item or delimiter out here: pydicom decides, not us
            if vr in _LONG_VRS:
                if len(hdr) < 12:
                    return _CUT_TRAILING
                length = struct.unpack_from(">I" if big else "<I", hdr, 8)[0]
                vpos = pos + 12
            elif vr in _VALID_VRS:
                vpos = pos + 8
            else:
                return None
        else:
            length = _U32.unpack_from(hdr, 4)[0]
            vpos = pos + 8
        if length == _UNDEFINED:
            return None
        pos = vpos + length
        if pos > size:
            return _CUT_TRAILING
    return None


_CUT_TRAILING = (
    "an element after Pixel Data (trailing padding, a private block) stops before its "
    "declared end: the file was cut short"
)
