"""Typed results of client calls. Every row keeps ``raw`` (XNAT's own columns) for --json."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from xnat_tui.xnat.filters import SeriesImportFilter

Row = Mapping[str, str]


def _int(value: str | None) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def data_uri(uri: str) -> str:
    """``/prearchive/...`` or ``/archive/...`` as XNAT lists them → a ``/data/...`` path."""
    uri = uri.strip()
    if uri.startswith(("http://", "https://")):
        return uri
    if uri.startswith("/data/") or uri.startswith("/REST/"):
        return uri
    return "/data" + (uri if uri.startswith("/") else "/" + uri)


@dataclass(frozen=True)
class ExistingSession:
    """A session already in a project, as far as label checks need it."""

    label: str
    study_uid: str
    subject_label: str = ""
    project: str = ""


@dataclass(frozen=True)
class ProjectRef:
    """A project the user may upload to (``permissions=edit``)."""

    id: str
    secondary_id: str = ""


@dataclass(frozen=True)
class Project:
    id: str
    secondary_id: str = ""
    name: str = ""
    description: str = ""
    pi_firstname: str = ""
    pi_lastname: str = ""
    uri: str = ""
    raw: Row = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class AnonScript:
    scope: str  # "site" or "project P"
    contents: str
    enabled: bool


@dataclass(frozen=True)
class ProjectSettings:
    """Everything an uploader must respect for one project (xnat-api.md §7)."""

    project: str
    prearchive_code: int
    allow_create_subject: bool = True
    allow_bulk_upload: bool = True
    require_date: bool = False
    subject_labeling_scheme: str = "manual"
    session_labeling_scheme: str = "auto"
    site_filter: SeriesImportFilter | None = None
    project_filter: SeriesImportFilter | None = None
    site_anon: AnonScript | None = None
    project_anon: AnonScript | None = None
    tracers: tuple[str, ...] = ()
    # Settings the server would not let us read (defaults were assumed).
    warnings: tuple[str, ...] = ()

    @property
    def filters(self) -> tuple[SeriesImportFilter, ...]:
        return tuple(f for f in (self.site_filter, self.project_filter) if f is not None)


@dataclass(frozen=True)
class Subject:
    id: str
    label: str
    project: str = ""
    insert_date: str = ""
    insert_user: str = ""
    uri: str = ""
    raw: Row = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class SubjectResult:
    """Outcome of ``PUT .../subjects/LABEL``: 201 created, 200 already there."""

    id: str
    label: str
    created: bool


@dataclass(frozen=True)
class Experiment:
    id: str
    label: str
    project: str = ""
    subject_id: str = ""
    subject_label: str = ""
    date: str = ""
    modality: str = ""
    xsi_type: str = ""
    study_uid: str = ""
    insert_date: str = ""
    uri: str = ""
    raw: Row = field(default_factory=dict, compare=False, repr=False)

    @property
    def archive_uri(self) -> str:
        if self.project and self.subject_label:
            return (
                f"/data/archive/projects/{self.project}/subjects/{self.subject_label}"
                f"/experiments/{self.label}"
            )
        return f"/data/experiments/{self.id}"

    def as_existing(self) -> ExistingSession:
        return ExistingSession(self.label, self.study_uid, self.subject_label, self.project)


@dataclass(frozen=True)
class RemoteScan:
    """A scan of a session on the server (not ``dicom.model.Scan``, a local series)."""

    id: str
    type: str = ""
    series_description: str = ""
    xsi_type: str = ""
    quality: str = ""
    uri: str = ""
    raw: Row = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Resource:
    label: str
    id: str = ""
    file_count: int | None = None
    file_size: int | None = None
    format: str = ""
    content: str = ""
    raw: Row = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class RemoteFile:
    """One file of a resource; ``digest`` is XNAT's MD5 hex (empty when not computed)."""

    name: str
    size: int | None
    uri: str = ""
    digest: str = ""
    collection: str = ""
    raw: Row = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class PrearchiveEntry:
    project: str
    timestamp: str
    folder_name: str
    name: str
    subject: str = ""
    tag: str = ""  # StudyInstanceUID
    status: str = ""
    url: str = ""  # as XNAT lists it: /prearchive/projects/P/TS/FOLDER
    scan_date: str = ""
    scan_time: str = ""
    uploaded: str = ""
    lastmod: str = ""
    autoarchive: str = ""
    source: str = ""
    prevent_anon: bool = False
    prevent_auto_commit: bool = False
    visit: str = ""
    protocol: str = ""
    timezone: str = ""
    raw: Row = field(default_factory=dict, compare=False, repr=False)

    @property
    def uri(self) -> str:
        """The ``/data/...`` form every action takes."""
        if self.url:
            return data_uri(self.url)
        return f"/data/prearchive/projects/{self.project}/{self.timestamp}/{self.folder_name}"

    @property
    def study_uid(self) -> str:
        return self.tag

    @property
    def unassigned(self) -> bool:
        return self.project == "Unassigned"


@dataclass(frozen=True)
class PrearchiveScan:
    id: str
    series_description: str = ""
    xsi_type: str = ""
    raw: Row = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class ImportResult:
    """URIs the import service returned; empty when every file was filtered out."""

    uris: tuple[str, ...]
    status: int = 200

    @property
    def uri(self) -> str:
        return self.uris[0] if self.uris else ""

    @property
    def archived(self) -> bool:
        return bool(self.uris) and all("/archive/" in u for u in self.uris)


@dataclass(frozen=True)
class CommitResult:
    """``POST <prearchive uri>?action=commit``: 301 archived, 200 still in the prearchive."""

    archived: bool
    uri: str
    status: int


@dataclass(frozen=True)
class AliasToken:
    """``GET /data/services/tokens/issue``: use ``alias`` as user and ``secret`` as password."""

    alias: str
    secret: str = field(repr=False)
    # Epoch milliseconds as XNAT reports it; 0 when the server does not say.
    expires_ms: int = 0


@dataclass(frozen=True)
class ArchiveResult:
    uri: str
    status: int


def parse_int(value: str | None) -> int | None:
    return _int(value)
