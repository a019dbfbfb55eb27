"""Archive a prearchive session into the sandbox store (xnat-api.md §5.5).

``archive(store, pre, session, options) -> str`` moves the session's files into
``archive/<P>/arc001/<LABEL>/SCANS/<scan>/DICOM/``, creates the subject (matched
case-insensitively, as XNAT-2865) and the experiment (xsiType from the modality), one
scan per series (ID = SeriesNumber) with a ``DICOM`` resource whose files carry MD5
digests, then deletes the prearchive row. It returns the archive URI
``/archive/projects/P/subjects/S/experiments/E``.

Merging into an existing session of the same label follows ``PrearcSessionArchiver``:
the checks run before anything is written, and each failure is an ``ArchiveError``
with XNAT's message and status (409 for the conflicts, which the caller turns into a
CONFLICT row; anything else leaves an ERROR row).
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from xnat_tui.dicom.dicomedit import AnonymizationError, Anonymizer, ScriptError, server_scripts
from xnat_tui.sandbox.config_routes import config_contents
from xnat_tui.sandbox.prearchive_store import (
    PrearcFile,
    PrearchiveStore,
    PrearcSession,
    path_segment,
)
from xnat_tui.sandbox.store import Store, StoreError

log = logging.getLogger(__name__)

SESSION_TYPES = {
    "MR": "xnat:mrSessionData",
    "CT": "xnat:ctSessionData",
    "PT": "xnat:petSessionData",
    "US": "xnat:usSessionData",
    "CR": "xnat:crSessionData",
    "DX": "xnat:dxSessionData",
    "MG": "xnat:mgSessionData",
    "NM": "xnat:nmSessionData",
    "XA": "xnat:xaSessionData",
    "RF": "xnat:rfSessionData",
    "OPT": "xnat:optSessionData",
    "ECG": "xnat:ecgSessionData",
    "IO": "xnat:ioSessionData",
    "ES": "xnat:esSessionData",
}
SCAN_TYPES = {
    "MR": "xnat:mrScanData",
    "CT": "xnat:ctScanData",
    "PT": "xnat:petScanData",
    "US": "xnat:usScanData",
    "CR": "xnat:crScanData",
    "DX": "xnat:dxScanData",
    "MG": "xnat:mgScanData",
    "NM": "xnat:nmScanData",
    "XA": "xnat:xaScanData",
    "RF": "xnat:rfScanData",
    "OPT": "xnat:optScanData",
    "ECG": "xnat:ecgScanData",
    "SC": "xnat:scScanData",
    "SR": "xnat:srScanData",
}
OTHER_SESSION = "xnat:otherDicomSessionData"
OTHER_SCAN = "xnat:otherDicomScanData"
# Objects that never decide what kind of session it is.
_SECONDARY = {"SR", "PR", "KO", "OT", "SC", "REG", "SEG", "RTSTRUCT", "DOC"}

CONFLICT = 409
UNASSIGNED_ARCHIVE = "Cannot archive sessions from the Unassigned folder."


class ArchiveError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class ArchiveOptions:
    user: str
    override: bool = False  # overrideExceptions (overwrite=delete|override)
    allow_merge: bool = False  # allowSessionMerge (any overwrite value)
    overwrite_files: bool = False
    project: str | None = None  # dest / explicit overrides
    subject: str | None = None
    label: str | None = None


@dataclass
class PrearcScan:
    scan: str
    series_uid: str
    series_description: str
    modality: str
    files: list[PrearcFile]

    @property
    def xsi_type(self) -> str:
        return SCAN_TYPES.get(self.modality, OTHER_SCAN)


def session_modality(files: list[PrearcFile]) -> str:
    counts = Counter(f.modality for f in files if f.modality)
    if "PT" in counts:
        return "PT"
    primary = [m for m, _ in counts.most_common() if m not in _SECONDARY]
    if primary:
        return primary[0]
    return counts.most_common(1)[0][0] if counts else "OT"


def session_xsi_type(files: list[PrearcFile]) -> str:
    return SESSION_TYPES.get(session_modality(files), OTHER_SESSION)


def scans_of(files: list[PrearcFile]) -> list[PrearcScan]:
    by_scan: dict[str, PrearcScan] = {}
    for f in files:
        summary = by_scan.get(f.scan)
        if summary is None:
            summary = PrearcScan(f.scan, f.series_uid, f.series_description, f.modality, [])
            by_scan[f.scan] = summary
        summary.files.append(f)
    return sorted(by_scan.values(), key=lambda s: (0, int(s.scan)) if s.scan.isdigit() else (1, 0))


def anonymizer_for(store: Store, project: str | None) -> Anonymizer | None:
    """The enabled site (project=None) or project anon script, ready to run."""
    path = "script" if project is None else f"projects/{project}"
    contents = config_contents(store, "anon", path, project)
    if not contents:
        return None
    name = "site" if project is None else f"project {project}"
    try:
        scripts = server_scripts([(name, contents, True)])
    except ScriptError as exc:
        log.warning("ignoring the %s anon script: %s", name, exc)
        return None
    return Anonymizer(scripts, {"project": project or ""}) if scripts else None


def archive_uri(project: str, subject: str, label: str) -> str:
    return f"/archive/projects/{project}/subjects/{subject}/experiments/{label}"


def archive(store: Store, pre: PrearchiveStore, s: PrearcSession, opts: ArchiveOptions) -> str:
    """Archive ``s``; on failure the row becomes CONFLICT (409) or ERROR and it raises."""
    pre.set_status(s.id, "ARCHIVING")
    try:
        uri = _archive(store, pre, s, opts)
    except ArchiveError as exc:
        pre.set_status(s.id, "CONFLICT" if exc.status == CONFLICT else "ERROR")
        pre.log(s.id, exc.message)
        raise
    except (OSError, StoreError, sqlite3.Error) as exc:
        pre.set_status(s.id, "ERROR")
        pre.log(s.id, str(exc))
        raise ArchiveError(500, str(exc)) from exc
    pre.delete(s)
    return uri


def _archive(store: Store, pre: PrearchiveStore, s: PrearcSession, opts: ArchiveOptions) -> str:
    project = opts.project or s.project
    if not project:
        raise ArchiveError(400, UNASSIGNED_ARCHIVE)
    if store.get_project(project) is None:
        raise ArchiveError(404, f"The requested project {project} does not exist.")
    label = path_segment(opts.label or s.name)
    subject_label = opts.subject if opts.subject is not None else s.subject
    if not subject_label:
        raise ArchiveError(400, "Unable to identify the subject of this session.")
    files = pre.files(s.id)
    if not files:
        raise ArchiveError(400, "The session contains no files to archive.")
    xsi_type = session_xsi_type(files)
    scans = scans_of(files)
    if s.autoarchive == "AutoArchiveOverwrite":
        opts = replace(opts, overwrite_files=True)  # PrearcSession.isOverwriteFiles
    existing = store.find_experiment(project, label)
    if existing is not None and str(existing["label"]) != label:
        existing = None  # matched by accession ID, not by label
    subject_row = store.find_subject_ci(project, subject_label)
    if existing is not None:
        _check_merge(store, existing, subject_row, s, scans, xsi_type, opts, label)
    if not s.prevent_anon:
        _project_anon(store, pre, s, files, project, subject_label, label)
    with store.lock:
        if subject_row is None:
            subject_id = store.create_subject(project, subject_label, opts.user)
            subject_name = subject_label
        else:
            subject_id, subject_name = str(subject_row["id"]), str(subject_row["label"])
        modality = session_modality(files)
        first = files[0]
        if existing is None:
            experiment_id = store.create_experiment(
                project,
                subject_id,
                label,
                xsi_type,
                opts.user,
                date=s.scan_date,
                time=s.scan_time.split(".")[0],
                uid=s.tag,
                modality=modality,
                dcm_patient_id=first.patient_id,
                dcm_patient_name=first.patient_name,
            )
        else:
            experiment_id = str(existing["id"])
            if opts.override and s.tag and s.tag != existing["uid"]:
                store.update_experiment(experiment_id, uid=s.tag)
    # Files one statement at a time: holding the store lock for thousands of moves
    # would stall every request on the event loop meanwhile.
    session_root = store.experiment_dir(project, label)
    for scan in scans:
        _archive_scan(store, pre, s, experiment_id, session_root, scan, opts)
    return archive_uri(project, subject_name, label)


def _project_anon(
    store: Store,
    pre: PrearchiveStore,
    s: PrearcSession,
    files: list[PrearcFile],
    project: str,
    subject: str,
    label: str,
) -> None:
    """Apply the project anon script to every file, all or nothing."""
    anon = anonymizer_for(store, project)
    if anon is None:
        return
    variables = {"project": project, "subject": subject, "session": label}
    done: list[tuple[PrearcFile, str]] = []
    try:
        for f in files:
            path = pre.file_path(s, f)
            data = anon.anonymize_file(path, variables)
            tmp = str(path) + ".anon"
            with open(tmp, "wb") as out:
                out.write(data)
            done.append((f, tmp))
            f.size, f.md5 = len(data), hashlib.md5(data).hexdigest()
    except AnonymizationError as exc:
        for _, tmp in done:
            os.unlink(tmp)
        raise ArchiveError(500, f"Project anonymization failed: {exc}") from exc
    for f, tmp in done:
        os.replace(tmp, pre.file_path(s, f))


def _check_merge(
    store: Store,
    existing: sqlite3.Row,
    subject_row: sqlite3.Row | None,
    s: PrearcSession,
    scans: list[PrearcScan],
    xsi_type: str,
    opts: ArchiveOptions,
    label: str,
) -> None:
    if not opts.allow_merge:
        raise ArchiveError(CONFLICT, "Session already exists, retry with overwrite enabled")
    if str(existing["xsi_type"]) != xsi_type:
        raise ArchiveError(
            CONFLICT,
            "Invalid modification of session modality via archive process.  "
            "Data may require a manual merge.",
        )
    if subject_row is None or str(subject_row["id"]) != str(existing["subject_id"]):
        raise ArchiveError(
            CONFLICT,
            "Invalid modification of session subject via archive process.: "
            f"{label} Already Exists for another Subject",
        )
    if not opts.override and existing["uid"] and s.tag and existing["uid"] != s.tag:
        raise ArchiveError(CONFLICT, "Invalid modification of session UID via archive process.")
    if opts.override:
        return
    archived = store.list_scans(str(existing["id"]))
    by_id = {str(r["scan_id"]): r for r in archived}
    by_uid = {str(r["uid"]): str(r["scan_id"]) for r in archived if r["uid"]}
    for scan in scans:
        row = by_id.get(scan.scan)
        if row is not None and row["uid"] and scan.series_uid and row["uid"] != scan.series_uid:
            raise ArchiveError(
                CONFLICT,
                f"Session already contains a scan ({scan.scan}) with the same number, "
                "but a different UID.",
            )
        other = by_uid.get(scan.series_uid)
        if other is not None and other != scan.scan:
            raise ArchiveError(
                CONFLICT,
                "Session already contains a scan with the same UID, but a different "
                f"number ({other}).",
            )
        if row is not None and not opts.overwrite_files:
            resource = store.find_resource(str(existing["id"]), int(row["pk"]), "DICOM")
            if resource is None:
                continue
            for f in scan.files:
                if store.get_file(int(resource["id"]), f.name) is not None:
                    raise ArchiveError(
                        CONFLICT,
                        f"Session already contains the file {scan.scan}/DICOM/{f.name}; "
                        "retry with overwrite_files=true.",
                    )


def _archive_scan(
    store: Store,
    pre: PrearchiveStore,
    s: PrearcSession,
    experiment_id: str,
    session_root: os.PathLike[str],
    scan: PrearcScan,
    opts: ArchiveOptions,
) -> None:
    scan_pk = store.add_scan(
        experiment_id,
        scan.scan,
        type=scan.series_description,
        series_description=scan.series_description,
        xsi_type=scan.xsi_type,
        uid=scan.series_uid,
        modality=scan.modality,
    )
    if opts.override:
        store.update_scan(
            scan_pk,
            uid=scan.series_uid,
            series_description=scan.series_description,
            type=scan.series_description,
        )
    resource = store.get_or_create_resource(experiment_id, scan_pk, "DICOM")
    target_dir = os.path.join(session_root, "SCANS", scan.scan, "DICOM")
    os.makedirs(target_dir, exist_ok=True)
    for f in scan.files:
        target = os.path.join(target_dir, f.name)
        os.replace(pre.file_path(s, f), target)
        store.add_file(
            resource,
            f.name,
            Path(target),
            size=f.size,
            digest=f.md5,
            file_format="DICOM",
            file_content="RAW",
        )
    count, _size = store.resource_stats(resource)
    store.update_scan(scan_pk, frames=str(count))
