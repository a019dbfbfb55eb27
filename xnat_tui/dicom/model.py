"""Typed model of what a scan finds: sessions (studies), scans (series), files, problems.

Sessions are keyed by StudyInstanceUID, scans by SeriesInstanceUID, exactly as XNAT
groups an upload. The upload engine, the TUI and the sandbox all code against these
names, so fields are only ever added, never renamed.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

Severity = Literal["info", "warning", "error"]


class ProblemKind:
    """Stable identifiers for ``Problem.kind`` (shown in the UI and in ``--json``)."""

    # Per file.
    NOT_DICOM = "not-dicom"
    JUNK = "junk"  # hidden/system files: .DS_Store, Thumbs.db, ._resource forks
    UNREADABLE = "unreadable"  # permission denied, vanished during the scan, I/O error
    EMPTY = "empty"  # zero bytes
    TRUNCATED = "truncated"  # file ends before the header or pixel data it declares
    CORRUPT = "corrupt"  # parse error
    INCOMPLETE = "incomplete"  # parses, but a required UID is missing
    DICOMDIR = "dicomdir"  # media directory: skipped, never uploaded
    SYMLINK_LOOP = "symlink-loop"  # directory already visited (loop or second path to it)
    # Duplicates across files.
    DUPLICATE_IDENTICAL = "duplicate-identical"  # same SOPInstanceUID, same bytes
    DUPLICATE_CONFLICT = "duplicate-conflict"  # same SOPInstanceUID, different content
    # Per session / scan consistency.
    MULTIPLE_PATIENTS = "multiple-patients"  # several PatientIDs/PatientNames in one study
    MIXED_MODALITY = "mixed-modality"  # one series, several modalities
    DUPLICATE_SERIES_NUMBER = "duplicate-series-number"  # two series share a SeriesNumber
    INSTANCE_GAP = "instance-gap"  # InstanceNumber sequence has holes
    BURNED_IN_PHI = "burned-in-phi"  # BurnedInAnnotation=YES, SC/US/OT, dose screens
    # Not about a file: a configured routing pattern that cannot be used.
    CONFIG = "config"


@dataclass(frozen=True, slots=True)
class Problem:
    """Something the user should know about; never stops the scan.

    ``path`` is the file (or the session root / series folder for grouped checks);
    ``detail`` is a sentence a user can act on.
    """

    path: str
    kind: str
    detail: str
    severity: Severity = "warning"

    def to_json(self) -> dict[str, str]:
        return {
            "path": self.path,
            "kind": self.kind,
            "detail": self.detail,
            "severity": self.severity,
        }


@dataclass(frozen=True, slots=True)
class RoutingProposal:
    """Project/subject/session labels suggested by the DICOM itself.

    ``source`` says where it came from, e.g. ``"PatientComments"`` (XNAT's
    ``Project: P Subject: S Session: E`` form) or ``"pattern:StudyDescription"``
    (a configured site pattern). Any of the three may be empty when the source names
    only some of them.
    """

    project: str
    subject: str
    session: str
    source: str

    def to_json(self) -> dict[str, str]:
        return {
            "project": self.project,
            "subject": self.subject,
            "session": self.session,
            "source": self.source,
        }


class FileRef:
    """One DICOM instance on disk, as read from its header.

    A plain slotted class rather than a dataclass so that ``path`` can be built
    lazily: a scan of a million files must not pay for a million ``Path`` parses
    up front. Construct it like a dataclass (keywords), compare it like one.
    """

    __slots__ = (
        "_path",
        "size",
        "mtime",
        "sop_instance_uid",
        "transfer_syntax",
        "sop_class_uid",
        "study_instance_uid",
        "series_instance_uid",
        "instance_number",
        "modality",
        "part10",
    )

    def __init__(
        self,
        path: Path | str,
        size: int,
        mtime: float,
        sop_instance_uid: str,
        transfer_syntax: str,  # "" when unknown
        sop_class_uid: str = "",
        study_instance_uid: str = "",
        series_instance_uid: str = "",
        instance_number: int | None = None,
        modality: str = "",
        # True when the file has the 128-byte preamble + "DICM" + meta group (Part 10).
        part10: bool = True,
    ) -> None:
        self._path: Path | str = path
        self.size = size
        self.mtime = mtime
        self.sop_instance_uid = sop_instance_uid
        self.transfer_syntax = transfer_syntax
        self.sop_class_uid = sop_class_uid
        self.study_instance_uid = study_instance_uid
        self.series_instance_uid = series_instance_uid
        self.instance_number = instance_number
        self.modality = modality
        self.part10 = part10

    @property
    def path(self) -> Path:
        p = self._path
        if isinstance(p, str):
            p = self._path = Path(p)
        return p

    @path.setter
    def path(self, value: Path | str) -> None:
        self._path = value

    @property
    def path_str(self) -> str:
        """The path as text, without building a ``Path`` (cheap for bulk work)."""
        p = self._path
        return p if isinstance(p, str) else str(p)

    def _key(self) -> tuple[object, ...]:
        return (
            self.path_str,
            self.size,
            self.mtime,
            self.sop_instance_uid,
            self.transfer_syntax,
            self.sop_class_uid,
            self.study_instance_uid,
            self.series_instance_uid,
            self.instance_number,
            self.modality,
            self.part10,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FileRef):
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]  # mutable, like a dataclass

    def __repr__(self) -> str:
        return (
            f"FileRef(path={self.path_str!r}, size={self.size}, "
            f"sop_instance_uid={self.sop_instance_uid!r}, "
            f"instance_number={self.instance_number})"
        )


_SIZE = operator.attrgetter("size")
_INSTANCE = operator.attrgetter("instance_number")
_STAMP_NAME = operator.itemgetter(0)
_STAMP_SIZE = operator.itemgetter(1)
_FAST_ORDER = operator.attrgetter("instance_number", "_path")
_BIG = 1 << 62

# What the files of one folder share: (transfer syntax, SOP class, study UID,
# series UID, modality, part10).
Shared = tuple[str, str, str, str, str, bool]


class PendingFiles:
    """The files of one folder answered by the rescan cache, as columns.

    Their ``FileRef`` objects are built on first use (``build()``), so a rescan that
    only needs counts, sizes and instance numbers (the CLI, the TUI's session list)
    does not pay for 10^5 objects. Built once; the scan and the batch that carry the
    chunk then share the same objects.
    """

    __slots__ = ("prefix", "stamps", "sops", "insts", "shared", "refs")

    def __init__(
        self,
        prefix: str,
        stamps: Sequence[tuple[str, int, int]],
        sops: Sequence[str],
        insts: Sequence[int],
        shared: Shared,
    ) -> None:
        self.prefix = prefix
        self.stamps = stamps
        self.sops = sops
        self.insts = insts
        self.shared = shared
        self.refs: list[FileRef] | None = None

    def __len__(self) -> int:
        return len(self.sops)

    @property
    def size(self) -> int:
        total: int = sum(map(_STAMP_SIZE, self.stamps))
        return total

    def first(self) -> tuple[int, str]:
        """(InstanceNumber, path) of the file that sorts first."""
        inst, name = min(zip(self.insts, map(_STAMP_NAME, self.stamps), strict=True))
        return inst, self.prefix + name

    def build(self) -> list[FileRef]:
        if self.refs is None:
            ts, sop_class, study_uid, series_uid, modality, part10 = self.shared
            prefix = self.prefix
            new_ref = FileRef
            self.refs = [
                new_ref(
                    prefix + name,
                    size,
                    mtime_ns / 1e9,
                    sop,
                    ts,
                    sop_class,
                    study_uid,
                    series_uid,
                    inst,
                    modality,
                    part10,
                )
                for (name, size, mtime_ns), sop, inst in zip(
                    self.stamps, self.sops, self.insts, strict=True
                )
            ]
        return self.refs


class FileChunk(Protocol):
    """Files whose ``FileRef`` objects are built on first use: ``PendingFiles`` (the
    rescan cache) or ``memo.PackedFiles`` (the tree memo)."""

    def __len__(self) -> int: ...

    @property
    def size(self) -> int: ...

    @property
    def insts(self) -> Sequence[int]: ...

    def first(self) -> tuple[int, str]: ...

    def build(self) -> list[FileRef]: ...


def file_order(f: FileRef) -> tuple[int, str]:
    """How a scan's files are ordered: by InstanceNumber (none last), then path."""
    return (_BIG if f.instance_number is None else f.instance_number, f.path_str)


class Scan:
    """One series (XNAT scan), keyed by SeriesInstanceUID.

    Built and compared like a dataclass. ``files`` is a plain list; files answered
    by the rescan cache join it when it is first read (see ``PendingFiles``), while
    ``file_count``, ``size`` and ``instance_numbers`` never need them built.
    """

    __slots__ = (
        "series_instance_uid",
        "study_instance_uid",
        "series_number",
        "series_description",
        "modality",
        "sop_class_uid",
        "_files",
        "problems",
        "modalities",
        "fields",
        "_pending",
        "_sort_on_build",
    )

    def __init__(
        self,
        series_instance_uid: str,
        study_instance_uid: str = "",
        series_number: int | None = None,
        series_description: str = "",
        modality: str = "",
        sop_class_uid: str = "",
        files: list[FileRef] | None = None,
        problems: list[Problem] | None = None,
        # Every Modality value seen in this series (more than one is reported).
        modalities: set[str] | None = None,
        # Keyword values of the first file that are useful in labels and filters
        # (ImageType, BodyPartExamined, ProtocolName, BurnedInAnnotation...).
        fields: dict[str, str] | None = None,
    ) -> None:
        self.series_instance_uid = series_instance_uid
        self.study_instance_uid = study_instance_uid
        self.series_number = series_number
        self.series_description = series_description
        self.modality = modality
        self.sop_class_uid = sop_class_uid
        self._files: list[FileRef] = files if files is not None else []
        self.problems: list[Problem] = problems if problems is not None else []
        self.modalities: set[str] = modalities if modalities is not None else set()
        self.fields: dict[str, str] = fields if fields is not None else {}
        self._pending: list[FileChunk] | None = None
        self._sort_on_build = False

    @property
    def files(self) -> list[FileRef]:
        pending = self._pending
        if pending:
            self._pending = None
            for chunk in pending:
                self._files.extend(chunk.build())
            if self._sort_on_build:
                self._sort(self._files)
        return self._files

    @files.setter
    def files(self, value: list[FileRef]) -> None:
        self._files = value
        self._pending = None

    def add_pending(self, chunk: FileChunk) -> None:
        """Files from the rescan cache, built when ``files`` is first read."""
        if self._pending is None:
            self._pending = [chunk]
        else:
            self._pending.append(chunk)

    def sort_files(self) -> None:
        """Sort by InstanceNumber, then path (now, or when the files are built)."""
        if self._pending:
            self._sort_on_build = True
        else:
            self._sort(self._files)

    @staticmethod
    def _sort(files: list[FileRef]) -> None:
        try:
            # C-level key; equal to file_order whenever it does not raise (a None
            # InstanceNumber next to a number, or a Path next to a str, does).
            files.sort(key=_FAST_ORDER)
        except TypeError:
            files.sort(key=file_order)

    def first_path(self) -> str | None:
        """The path of the file that sorts first, without building pending files."""
        pending = self._pending
        if not pending:
            return self._files[0].path_str if self._files else None
        candidates = [c.first() for c in pending]
        candidates += [file_order(f) for f in self._files]
        return min(candidates)[1]

    @property
    def file_count(self) -> int:
        n = len(self._files)
        if self._pending:
            n += sum(map(len, self._pending))
        return n

    @property
    def size(self) -> int:
        total: int = sum(map(_SIZE, self._files))
        if self._pending:
            total += sum(c.size for c in self._pending)
        return total

    @property
    def instance_numbers(self) -> list[int]:
        # map/attrgetter: C loops, this runs on every scan of 10^5 files.
        numbers = list(map(_INSTANCE, self._files))
        if None in numbers:
            numbers = [n for n in numbers if n is not None]
        for chunk in self._pending or ():
            numbers.extend(chunk.insts)
        numbers.sort()
        return numbers

    def _key(self) -> tuple[object, ...]:
        return (
            self.series_instance_uid,
            self.study_instance_uid,
            self.series_number,
            self.series_description,
            self.modality,
            self.sop_class_uid,
            self.files,
            self.problems,
            self.modalities,
            self.fields,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Scan):
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]  # mutable, like a dataclass

    def __repr__(self) -> str:
        return (
            f"Scan(series_instance_uid={self.series_instance_uid!r}, "
            f"series_number={self.series_number!r}, "
            f"series_description={self.series_description!r}, "
            f"modality={self.modality!r}, file_count={self.file_count})"
        )

    @property
    def label(self) -> str:
        """XNAT's scan ID is the SeriesNumber; fall back to the UID tail."""
        if self.series_number is not None:
            return str(self.series_number)
        return self.series_instance_uid.rsplit(".", 1)[-1]

    def to_json(self) -> dict[str, Any]:
        return {
            "series_instance_uid": self.series_instance_uid,
            "series_number": self.series_number,
            "series_description": self.series_description,
            "modality": self.modality,
            "sop_class_uid": self.sop_class_uid,
            "file_count": self.file_count,
            "size": self.size,
            "problems": [p.to_json() for p in self.problems],
        }


@dataclass(slots=True)
class Session:
    """One study (XNAT image session), keyed by StudyInstanceUID."""

    study_instance_uid: str
    patient_id: str = ""
    patient_name: str = ""
    study_date: str = ""
    study_time: str = ""
    study_description: str = ""
    accession_number: str = ""
    # Sorted distinct modalities of the scans; ``modality`` is the primary one
    # (MR > PT > CT > ... > SR/OT/SC), which decides the XNAT session type.
    modalities: list[str] = field(default_factory=list)
    modality: str = ""
    # Deepest folder containing every file of the session.
    root: Path | None = None
    routing: list[RoutingProposal] = field(default_factory=list)
    scans: dict[str, Scan] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    # DICOM keyword -> value of the first file, for label templates
    # ("{PatientID}_{StudyDate}"): PatientID, PatientName, StudyDate, StudyTime,
    # StudyDescription, AccessionNumber, Modality, StudyID, PatientBirthDate,
    # PatientSex, InstitutionName, ReferringPhysicianName, ...
    fields: dict[str, str] = field(default_factory=dict)
    # Every PatientID / PatientName seen in this study (more than one is a problem).
    patient_ids: set[str] = field(default_factory=set)
    patient_names: set[str] = field(default_factory=set)

    @property
    def file_count(self) -> int:
        return sum(s.file_count for s in self.scans.values())

    @property
    def size(self) -> int:
        return sum(s.size for s in self.scans.values())

    @property
    def files(self) -> list[FileRef]:
        return [f for s in self.scans.values() for f in s.files]

    @property
    def routing_proposal(self) -> RoutingProposal | None:
        """The proposal to use by default (first in precedence order)."""
        return self.routing[0] if self.routing else None

    def sorted_scans(self) -> list[Scan]:
        """Scans in the order XNAT shows them: by SeriesNumber, then UID."""
        return sorted(
            self.scans.values(),
            key=lambda s: (s.series_number is None, s.series_number or 0, s.series_instance_uid),
        )

    def to_json(self) -> dict[str, Any]:
        proposal = self.routing_proposal
        return {
            "study_instance_uid": self.study_instance_uid,
            "patient_id": self.patient_id,
            "patient_name": self.patient_name,
            "study_date": self.study_date,
            "study_time": self.study_time,
            "study_description": self.study_description,
            "accession_number": self.accession_number,
            "modalities": list(self.modalities),
            "modality": self.modality,
            "root": str(self.root) if self.root is not None else None,
            "routing": proposal.to_json() if proposal else None,
            "routing_proposals": [r.to_json() for r in self.routing],
            "file_count": self.file_count,
            "size": self.size,
            "scans": [s.to_json() for s in self.sorted_scans()],
            "problems": [p.to_json() for p in self.problems]
            + [p.to_json() for s in self.sorted_scans() for p in s.problems],
        }


# Which modality names the XNAT session when a study mixes several
# (e.g. PET/CT is a PET session, an MR with an SR report is an MR session).
MODALITY_PRECEDENCE: tuple[str, ...] = (
    "PT",
    "MR",
    "CT",
    "NM",
    "US",
    "XA",
    "RF",
    "MG",
    "CR",
    "DX",
    "IO",
    "ES",
    "XC",
    "OP",
    "OPT",
    "ECG",
    "EEG",
    "RTIMAGE",
    "SEG",
    "RTSTRUCT",
    "RTPLAN",
    "RTDOSE",
    "REG",
    "SC",
    "SR",
    "KO",
    "PR",
    "DOC",
    "OT",
)


def primary_modality(modalities: set[str] | list[str]) -> str:
    """The modality that decides the XNAT session type; "" if none known."""
    present = {m for m in modalities if m}
    for m in MODALITY_PRECEDENCE:
        if m in present:
            return m
    return min(present) if present else ""


@dataclass(frozen=True, slots=True)
class ScanProgress:
    """Counters of a running scan, sent with every batch (cheap to copy)."""

    files_seen: int = 0  # regular files found by the walk so far
    files_parsed: int = 0  # files whose header was examined (DICOM or not)
    files_dicom: int = 0  # usable DICOM instances so far
    files_cached: int = 0  # answered from the rescan cache, not re-read
    bytes_read: int = 0  # bytes actually read from disk for headers
    problems: int = 0
    elapsed: float = 0.0  # seconds since the scan started
    walk_done: bool = False  # the directory walk has finished (files_seen is final)

    @property
    def rate(self) -> float:
        """Files examined per second."""
        return self.files_parsed / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def fraction(self) -> float | None:
        """0..1 once the walk is done (the total is known), else None."""
        if not self.walk_done:
            return None
        return self.files_parsed / self.files_seen if self.files_seen else 1.0

    def to_json(self) -> dict[str, Any]:
        return {
            "files_seen": self.files_seen,
            "files_parsed": self.files_parsed,
            "files_dicom": self.files_dicom,
            "files_cached": self.files_cached,
            "bytes_read": self.bytes_read,
            "problems": self.problems,
            "elapsed": round(self.elapsed, 3),
            "rate": round(self.rate, 1),
        }


class ScanBatch:
    """What a scan found since the previous batch.

    ``sessions`` are the live Session objects touched by this batch; they keep
    growing until the final ``ScanSummary``. Only read them between two steps of the
    scan iterator (the scan is suspended then), never from another thread.
    ``files`` (the new files) is built on first read for folders answered by the
    rescan cache; ``file_count`` never builds them.
    """

    __slots__ = ("_files", "_chunks", "problems", "sessions", "progress")

    def __init__(
        self,
        files: list[FileRef],
        problems: list[Problem],  # file-level problems found in this batch
        sessions: list[Session],
        progress: ScanProgress,
        chunks: Sequence[FileChunk] | None = None,
    ) -> None:
        self._files = files
        self._chunks = chunks
        self.problems = problems
        self.sessions = sessions
        self.progress = progress

    @property
    def files(self) -> list[FileRef]:
        if self._chunks:
            chunks, self._chunks = self._chunks, None
            for chunk in chunks:
                self._files.extend(chunk.build())
        return self._files

    @files.setter
    def files(self, value: list[FileRef]) -> None:
        self._files = value
        self._chunks = None

    @property
    def file_count(self) -> int:
        return len(self._files) + sum(map(len, self._chunks or ()))

    def __repr__(self) -> str:
        return (
            f"ScanBatch(files={self.file_count}, problems={len(self.problems)}, "
            f"sessions={len(self.sessions)}, progress={self.progress!r})"
        )


@dataclass(slots=True)
class ScanSummary:
    """The end of a scan: every session with its checks done, and the totals."""

    sessions: list[Session]
    problems: list[Problem]  # file-level problems (not DICOM, unreadable, DICOMDIR...)
    progress: ScanProgress
    cancelled: bool = False
    roots: list[Path] = field(default_factory=list)
    # The tree was exactly as at the last scan, whose result this is (see memo.py).
    reused: bool = False

    @property
    def all_problems(self) -> list[Problem]:
        out = list(self.problems)
        for s in self.sessions:
            out.extend(s.problems)
            for sc in s.scans.values():
                out.extend(sc.problems)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "sessions": [s.to_json() for s in self.sessions],
            "problems": [p.to_json() for p in self.problems],
            "stats": {
                **self.progress.to_json(),
                "sessions": len(self.sessions),
                "scans": sum(len(s.scans) for s in self.sessions),
                "cancelled": self.cancelled,
                "reused": self.reused,
            },
        }


ScanEvent = ScanBatch | ScanSummary
