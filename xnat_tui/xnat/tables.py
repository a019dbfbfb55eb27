"""XNAT's ``{"ResultSet": {"Result": [...]}}`` tables → typed rows (xnat-api.md §1.3)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from xnat_tui.xnat.errors import ProtocolError
from xnat_tui.xnat.models import (
    Experiment,
    PrearchiveEntry,
    PrearchiveScan,
    Project,
    ProjectRef,
    RemoteFile,
    RemoteScan,
    Resource,
    Subject,
    parse_int,
)

Row = Mapping[str, str]


def rows(payload: Any, where: str = "") -> list[Row]:
    """Rows of a JSON table, every cell a string (XNAT sends strings; be lenient anyway)."""
    try:
        result = payload["ResultSet"]["Result"]
    except (KeyError, TypeError):
        raise ProtocolError(
            f"Unexpected reply{' from ' + where if where else ''}: not an XNAT result table."
        ) from None
    if not isinstance(result, list):
        raise ProtocolError(f"Unexpected reply{' from ' + where if where else ''}: bad table.")
    out: list[Row] = []
    for item in result:
        if isinstance(item, dict):
            out.append(
                MappingProxyType({str(k): "" if v is None else str(v) for k, v in item.items()})
            )
    return out


def _get(row: Row, *keys: str) -> str:
    """First present key, case-insensitively (XNAT's column spelling varies by handler)."""
    for key in keys:
        if key in row:
            return row[key]
    lowered = {k.lower(): v for k, v in row.items()}
    for key in keys:
        if key.lower() in lowered:
            return lowered[key.lower()]
    return ""


def _bool(value: str) -> bool:
    return value.strip().lower() in ("true", "1", "yes")


def project_ref(row: Row) -> ProjectRef:
    return ProjectRef(id=_get(row, "id", "ID"), secondary_id=_get(row, "secondary_id"))


def project(row: Row) -> Project:
    pid = _get(row, "ID", "id")
    return Project(
        id=pid,
        secondary_id=_get(row, "secondary_ID"),
        name=_get(row, "name"),
        description=_get(row, "description"),
        pi_firstname=_get(row, "pi_firstname"),
        pi_lastname=_get(row, "pi_lastname"),
        uri=_get(row, "URI") or f"/data/projects/{pid}",
        raw=row,
    )


def subject(row: Row) -> Subject:
    return Subject(
        id=_get(row, "ID"),
        label=_get(row, "label"),
        project=_get(row, "project"),
        insert_date=_get(row, "insert_date"),
        insert_user=_get(row, "insert_user"),
        uri=_get(row, "URI"),
        raw=row,
    )


def experiment(row: Row) -> Experiment:
    return Experiment(
        id=_get(row, "ID", "xnat:subjectassessordata/id"),
        label=_get(row, "label"),
        project=_get(row, "project"),
        subject_id=_get(row, "subject_ID"),
        subject_label=_get(row, "subject_label"),
        date=_get(row, "date"),
        modality=_get(row, "modality"),
        xsi_type=_get(row, "xsiType"),
        study_uid=_get(row, "UID", "study_instance_uid", "xnat:imagesessiondata/uid"),
        insert_date=_get(row, "insert_date"),
        uri=_get(row, "URI"),
        raw=row,
    )


def scan(row: Row) -> RemoteScan:
    return RemoteScan(
        id=_get(row, "ID"),
        type=_get(row, "type"),
        series_description=_get(row, "series_description"),
        xsi_type=_get(row, "xsiType"),
        quality=_get(row, "quality"),
        uri=_get(row, "URI"),
        raw=row,
    )


def resource(row: Row) -> Resource:
    return Resource(
        label=_get(row, "label"),
        id=_get(row, "xnat_abstractresource_id"),
        file_count=parse_int(_get(row, "file_count")),
        file_size=parse_int(_get(row, "file_size")),
        format=_get(row, "format"),
        content=_get(row, "content"),
        raw=row,
    )


def remote_file(row: Row) -> RemoteFile:
    return RemoteFile(
        name=_get(row, "Name"),
        size=parse_int(_get(row, "Size")),
        uri=_get(row, "URI"),
        digest=_get(row, "digest").lower(),
        collection=_get(row, "collection"),
        raw=row,
    )


def prearchive_entry(row: Row) -> PrearchiveEntry:
    return PrearchiveEntry(
        project=_get(row, "project") or "Unassigned",
        timestamp=_get(row, "timestamp"),
        folder_name=_get(row, "folderName"),
        name=_get(row, "name"),
        subject=_get(row, "subject"),
        tag=_get(row, "tag"),
        status=_get(row, "status"),
        url=_get(row, "url"),
        scan_date=_get(row, "scan_date"),
        scan_time=_get(row, "scan_time"),
        uploaded=_get(row, "uploaded"),
        lastmod=_get(row, "lastmod"),
        autoarchive=_get(row, "autoarchive"),
        source=_get(row, "SOURCE"),
        prevent_anon=_bool(_get(row, "prevent_anon")),
        prevent_auto_commit=_bool(_get(row, "prevent_auto_commit")),
        visit=_get(row, "VISIT"),
        protocol=_get(row, "PROTOCOL"),
        timezone=_get(row, "TIMEZONE"),
        raw=row,
    )


def prearchive_scan(row: Row) -> PrearchiveScan:
    return PrearchiveScan(
        id=_get(row, "ID"),
        series_description=_get(row, "series_description"),
        xsi_type=_get(row, "xsiType"),
        raw=row,
    )
