"""Value types shared by the planner, the engine, the journal and their callers.

Everything here is plain data: the TUI and the CLI build requests from these and
render snapshots of them; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path


class Destination(StrEnum):
    """Where a committed session ends up.

    ``PROJECT`` leaves the choice to the project's prearchive code (0 → prearchive,
    4/5 → archive), exactly like the Desktop Client.
    """

    PROJECT = "project"
    PREARCHIVE = "prearchive"
    ARCHIVE = "archive"


class Overwrite(StrEnum):
    """What may happen to an existing session with the same label (import ``overwrite=``)."""

    NONE = "none"
    APPEND = "append"
    DELETE = "delete"


class Compression(StrEnum):
    """Zip entry method: stored zip64 (fast links) or zip32 deflate level 1 (slow links)."""

    STORED = "stored"
    DEFLATE = "deflate"


class JobState(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    COMMITTING = "committing"
    VERIFYING = "verifying"
    PAUSED = "paused"
    VERIFIED = "verified"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.VERIFIED, JobState.FAILED, JobState.CANCELLED)

    @property
    def active(self) -> bool:
        """The engine works on it without being asked (resume picks these up)."""
        return self in (
            JobState.QUEUED,
            JobState.SENDING,
            JobState.COMMITTING,
            JobState.VERIFYING,
        )


class SeriesState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"  # the server acknowledged the whole zip (prearchive URI received)
    FAILED = "failed"
    EMPTY = "empty"  # the server accepted the zip but kept nothing (import filter)


@dataclass(frozen=True)
class AnonOptions:
    """The Basic Profile's retain options (the other profiles ignore them)."""

    retain_dates: bool = False
    retain_uids: bool = False
    retain_device: bool = False

    def toggled(self, name: str) -> AnonOptions:
        """The same options with ``name`` (e.g. ``"retain_dates"``) flipped."""
        values = self.to_dict()
        if name not in values:
            raise ValueError(f"unknown Basic Profile option {name!r}")
        values[name] = not values[name]
        return AnonOptions(**values)

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> AnonOptions:
        """From :meth:`to_dict`'s form (as journalled); unknown keys are ignored."""
        return cls(**{k: bool(data.get(k, False)) for k in cls().to_dict()})

    def to_dict(self) -> dict[str, bool]:
        return {
            "retain_dates": self.retain_dates,
            "retain_uids": self.retain_uids,
            "retain_device": self.retain_device,
        }

    def key(self) -> str:
        """Stable text naming the options that are on ('' when none)."""
        return ",".join(k for k, v in self.to_dict().items() if v)

    def for_profile(self, profile: str) -> AnonOptions:
        """Only ``basic`` has options: anything else normalises to the defaults."""
        return self if profile == "basic" else AnonOptions()


class SourceFile:
    """One local DICOM file as the scanner saw it (size/mtime detect later changes).

    Immutable, compared like a dataclass; ``path`` is built on first use: a plan of
    10,000 files handed on from the scan (as text) must not parse 10,000 ``Path``
    objects that a send never looks at (~60 ms between the scan and the first
    instance sent)."""

    __slots__ = ("_path", "mtime", "size", "sop_instance_uid")

    def __init__(
        self, path: Path | str, size: int, mtime: float = 0.0, sop_instance_uid: str = ""
    ) -> None:
        set_ = object.__setattr__
        set_(self, "_path", path)
        set_(self, "size", size)
        set_(self, "mtime", mtime)
        set_(self, "sop_instance_uid", sop_instance_uid)

    _path: Path | str
    size: int
    mtime: float
    sop_instance_uid: str

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"SourceFile is immutable (cannot set {name})")

    @property
    def path(self) -> Path:
        p = self._path
        if isinstance(p, str):
            p = Path(p)
            object.__setattr__(self, "_path", p)
        return p

    @property
    def path_str(self) -> str:
        """The path as text, without building a ``Path``."""
        p = self._path
        return p if isinstance(p, str) else str(p)

    def _key(self) -> tuple[object, ...]:
        return (self.path, self.size, self.mtime, self.sop_instance_uid)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SourceFile):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"SourceFile(path={self.path!r}, size={self.size!r}, mtime={self.mtime!r}, "
            f"sop_instance_uid={self.sop_instance_uid!r})"
        )


@dataclass
class SourceSeries:
    series_instance_uid: str
    series_number: int | None
    description: str = ""
    modality: str = ""
    files: list[SourceFile] = field(default_factory=list)
    # DICOM keyword → value of the first file (for series import filters).
    headers: Mapping[str, str] = field(default_factory=dict)
    # Why its pixels may carry identifying text (burned-in annotation); empty: no known risk.
    burned_in: tuple[str, ...] = ()

    @property
    def file_count(self) -> int:
        return len(self.files)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


@dataclass
class SourceSession:
    """A local session (one StudyInstanceUID) ready to be planned.

    ``attributes`` holds DICOM keyword → text value (PatientID, PatientName, StudyDate,
    AccessionNumber, Modality, StudyDescription...) for label templates; ``routing``
    holds routing proposals (project/subject/session) found in the headers.
    Build one from the scanner's model with :func:`xnat_tui.transfer.source.from_dicom`.
    """

    study_instance_uid: str
    series: list[SourceSeries]
    attributes: Mapping[str, str] = field(default_factory=dict)
    routing: Mapping[str, str] = field(default_factory=dict)
    root: Path | None = None

    @property
    def file_count(self) -> int:
        return sum(s.file_count for s in self.series)

    @property
    def size(self) -> int:
        return sum(s.size for s in self.series)
