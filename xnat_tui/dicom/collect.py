"""Group examined files into sessions and scans, then run the consistency checks.

The result does not depend on the order files arrive in or on the folder layout:
session and scan attributes come from a representative file chosen by a content key
(lowest SeriesNumber/InstanceNumber/SOPInstanceUID), duplicates keep the file with the
smallest path, and everything is sorted at the end.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from xnat_tui.dicom.archives import SEP, common
from xnat_tui.dicom.checks import check_scan, check_session, compare_duplicates
from xnat_tui.dicom.header import PART10_KEY, TS_KEY
from xnat_tui.dicom.model import (
    FileRef,
    PendingFiles,
    Problem,
    ProblemKind,
    RoutingProposal,
    Scan,
    Session,
    Severity,
    primary_modality,
)
from xnat_tui.dicom.routing import PatternLike, propose, routing_keywords
from xnat_tui.dicom.worker import Record, Row, compact

# Keyword values copied into Session.fields (for label templates and routing).
SESSION_FIELDS: tuple[str, ...] = (
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
    "StudyDate",
    "StudyTime",
    "StudyDescription",
    "StudyID",
    "AccessionNumber",
    "Modality",
    "InstitutionName",
    "ReferringPhysicianName",
    "Manufacturer",
    "ManufacturerModelName",
    "BodyPartExamined",
    "PatientComments",
    "StudyComments",
    "AdditionalPatientHistory",
    "StudyInstanceUID",
)
SCAN_FIELDS: tuple[str, ...] = (
    "SeriesDescription",
    "SeriesNumber",
    "SeriesDate",
    "SeriesTime",
    "Modality",
    "ImageType",
    "ProtocolName",
    "BodyPartExamined",
    "BurnedInAnnotation",
    "ConversionType",
    "SOPClassUID",
    "Manufacturer",
    "ManufacturerModelName",
    "Rows",
    "Columns",
    "NumberOfFrames",
)

_SEVERITY: dict[str, Severity] = {
    ProblemKind.JUNK: "info",
    ProblemKind.NOT_DICOM: "info",
    ProblemKind.DICOMDIR: "info",
    ProblemKind.SYMLINK_LOOP: "info",
    ProblemKind.EMPTY: "warning",
    ProblemKind.UNREADABLE: "error",
    ProblemKind.TRUNCATED: "error",
    ProblemKind.CORRUPT: "error",
    ProblemKind.INCOMPLETE: "error",
}
_DICOM_SUFFIXES = (".dcm", ".dicom", ".ima", ".dc3")
_BIG = 1 << 62
_NO_RANK = (_BIG + 1, 0, "")


def file_problem(path: str, kind: str, detail: str) -> Problem:
    severity = _SEVERITY.get(kind, "warning")
    if kind == ProblemKind.NOT_DICOM and path.lower().endswith(_DICOM_SUFFIXES):
        severity = "warning"  # named like DICOM but isn't: worth a look
    return Problem(path=path, kind=kind, detail=detail, severity=severity)


def _int(text: str | None) -> int | None:
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        try:
            return int(float(text.split("\\", 1)[0]))
        except ValueError:
            return None


class Collector:
    """Accumulates records; ``finish()`` returns sorted, checked sessions."""

    def __init__(self, routing_patterns: Sequence[PatternLike] = ()) -> None:
        self.routing_patterns = list(routing_patterns)
        extra = sorted(routing_keywords(self.routing_patterns) - set(SESSION_FIELDS))
        self._session_keys = SESSION_FIELDS + tuple(extra)
        self.sessions: dict[str, Session] = {}
        # A check could not read a file: the result holds only until it can.
        self.read_errors = False
        self.problems: list[Problem] = []
        self._session_rank: dict[str, tuple[int, int, str]] = {}
        self._scan_rank: dict[str, tuple[int, int, str]] = {}
        self._roots: dict[str, str] = {}
        # SOPInstanceUID -> its file, or the Scan whose pending (cached, not yet
        # built) files carry it; see _resolve.
        self._sops: dict[str, FileRef | Scan] = {}
        # SOPInstanceUID -> the other files carrying it (the kept one is in _sops).
        self._duplicates: dict[str, list[FileRef]] = {}
        self._intern = sys.intern

    def add(self, rec: Record) -> tuple[FileRef | None, Problem | None, Session | None]:
        """One record at a time (tests, small tools); scans use ``add_chunk``."""
        refs, problems, sessions = self.add_chunk(*compact([rec]))
        return (
            refs[0] if refs else None,
            problems[0] if problems else None,
            sessions[0] if sessions else None,
        )

    def add_chunk(
        self, contexts: Sequence[dict[str, str]], rows: Sequence[Row]
    ) -> tuple[list[FileRef], list[Problem], list[Session]]:
        """Add examined files; return the new files, problems and touched sessions.

        Work shared by a context (session/scan lookup, representative choice,
        patient and modality bookkeeping) is done once per context, not per file:
        this is what keeps a cached rescan of 10^5 files fast.
        """
        refs: list[FileRef] = []
        problems: list[Problem] = []
        groups: dict[int, list[Row]] = {}
        for row in rows:
            if row[3]:
                problem = file_problem(row[0], row[3], row[4])
                self.problems.append(problem)
                problems.append(problem)
            else:
                groups.setdefault(row[5], []).append(row)
        touched: dict[str, Session] = {}
        for ci, group in groups.items():
            files = [(r[0], r[1], r[2], r[6], r[7]) for r in group]
            session = self._add_group(contexts[ci], files, refs, None)
            touched[session.study_instance_uid] = session
        return refs, problems, list(touched.values())

    def add_folder(
        self,
        folder: str,
        contexts: Sequence[dict[str, str]],
        stamps: Sequence[tuple[str, int, int]],
        data: Sequence[tuple[str, str, int, str, str]] | None = None,
        *,
        uniform: int = -1,
        sops: Sequence[str] = (),
        insts: Sequence[int] = (),
    ) -> tuple[list[FileRef], list[PendingFiles], list[Problem], list[Session]]:
        """``add_chunk`` for a whole folder answered by the rescan cache.

        ``uniform`` >= 0 says every file is a usable instance of that context, with
        ``sops`` and ``insts`` as columns: the folder then joins its scan as one
        ``PendingFiles`` chunk (returned second) whose FileRefs are built on first
        use. Otherwise ``data`` holds (kind, detail, context, SOP UID, InstanceNumber).
        """
        prefix = os.path.join(folder, "")
        if uniform >= 0:
            added = self._add_bulk(contexts[uniform], folder, stamps, sops, insts)
            if added is not None:
                return [], [added[0]], [], [added[1]]
            data = [("", "", uniform, sop, str(n)) for sop, n in zip(sops, insts, strict=True)]
        assert data is not None
        rows: list[Row] = [
            (prefix + st[0], st[1], st[2], d[0], d[1], d[2], d[3], d[4], 0)
            for st, d in zip(stamps, data, strict=True)
        ]
        refs, problems, sessions = self.add_chunk(contexts, rows)
        return refs, [], problems, sessions

    def _add_group(
        self,
        values: dict[str, str],
        rows: list[tuple[str, int, int, str, str]],
        out: list[FileRef],
        folder: str | None,
    ) -> Session:
        session, scan, shared = self._context(values)
        ts, sop_class, study_uid, series_uid, modality, part10 = shared

        # This loop runs once per file (also for every cache hit on a rescan): keep it lean.
        best_inst, best_sop = _BIG + 1, ""
        folders: set[str] = set()
        if folder is not None:
            folders.add(folder)
            prefix = ""  # every path is in ``folder``: no per-file check
        else:
            prefix = "\0"
        sops = self._sops
        files = scan.files
        new_ref = FileRef
        for path, size, mtime_ns, sop, inst_text in rows:
            try:
                instance: int | None = int(inst_text)
            except ValueError:
                instance = _int(inst_text)
            ref = new_ref(
                path,
                size,
                mtime_ns / 1e9,
                sop,
                ts,
                sop_class,
                study_uid,
                series_uid,
                instance,
                modality,
                part10,
            )
            if prefix and (not path.startswith(prefix) or os.sep in path[len(prefix) :]):
                where = path.rpartition(os.sep)[0]
                if SEP in path[len(where) :]:
                    where = path.rpartition(SEP)[0]  # at the top of an archive
                folders.add(where)
                prefix = path[: len(where) + 1]
            first = sops.get(sop)
            if first is not None and not isinstance(first, FileRef):
                first = self._resolve(sop)
            if first is not None:
                self._duplicate(first, ref)
                continue
            sops[sop] = ref
            files.append(ref)
            out.append(ref)
            inst_key = _BIG if instance is None else instance
            if inst_key < best_inst or (inst_key == best_inst and sop < best_sop):
                best_inst, best_sop = inst_key, sop
        best = (best_inst, best_sop) if best_sop else None
        self._settle_group(session, scan, values, best, folders)
        return session

    def _context(
        self, values: dict[str, str]
    ) -> tuple[Session, Scan, tuple[str, str, str, str, str, bool]]:
        """The session and scan of a context, and the values its files share."""
        intern = self._intern
        study_uid = intern(values["StudyInstanceUID"])
        series_uid = intern(values["SeriesInstanceUID"])
        modality = intern(values.get("Modality", ""))
        ts = intern(values.get(TS_KEY, ""))
        sop_class = intern(values.get("SOPClassUID", ""))
        part10 = values.get(PART10_KEY, "1") == "1"

        session = self.sessions.get(study_uid)
        if session is None:
            session = self.sessions[study_uid] = Session(study_instance_uid=study_uid)
        scan = session.scans.get(series_uid)
        if scan is None:
            scan = session.scans[series_uid] = Scan(
                series_instance_uid=series_uid, study_instance_uid=study_uid
            )
        session.patient_ids.add(values.get("PatientID", ""))
        session.patient_names.add(values.get("PatientName", ""))
        scan.modalities.add(modality)
        return session, scan, (ts, sop_class, study_uid, series_uid, modality, part10)

    def _settle_group(
        self,
        session: Session,
        scan: Scan,
        values: dict[str, str],
        best: tuple[int, str] | None,
        folders: Iterable[str],
    ) -> None:
        """Representative choice (by content, not arrival order) and session root."""
        study_uid, series_uid = session.study_instance_uid, scan.series_instance_uid
        if best is not None:
            series_number = _int(values.get("SeriesNumber"))
            rank = (_BIG if series_number is None else series_number, best[0], best[1])
            if rank < self._session_rank.get(study_uid, _NO_RANK):
                self._session_rank[study_uid] = rank
                self._set_session_fields(session, values)
            if rank < self._scan_rank.get(series_uid, _NO_RANK):
                self._scan_rank[series_uid] = rank
                scan.series_number = series_number
                scan.series_description = values.get("SeriesDescription", "")
                scan.modality = self._intern(values.get("Modality", ""))
                scan.sop_class_uid = self._intern(values.get("SOPClassUID", ""))
                scan.fields = {k: values[k] for k in SCAN_FIELDS if k in values}
        for folder in folders:
            root = self._roots.get(study_uid)
            self._roots[study_uid] = folder if root is None else _common(root, folder)

    def _add_bulk(
        self,
        values: dict[str, str],
        folder: str,
        stamps: Sequence[tuple[str, int, int]],
        sops: Sequence[str],
        insts: Sequence[int],
    ) -> tuple[PendingFiles, Session] | None:
        """A cached folder of one series, without a step per file. None when it needs
        the general path: a SOPInstanceUID seen before or twice in the folder
        (duplicates are compared there)."""
        if not sops or len(set(sops)) != len(sops) or not self._sops.keys().isdisjoint(sops):
            return None
        session, scan, shared = self._context(values)
        chunk = PendingFiles(os.path.join(folder, ""), stamps, sops, insts, shared)
        scan.add_pending(chunk)
        self._sops.update(dict.fromkeys(sops, scan))
        # The lowest InstanceNumber, ties broken by SOP UID, without a tuple per file.
        low = min(insts)
        if insts.count(low) == 1:
            best = (low, sops[insts.index(low)])
        else:
            best = min(zip(insts, sops, strict=True))
        self._settle_group(session, scan, values, best, (folder,))
        return chunk, session

    def _resolve(self, sop: str) -> FileRef | None:
        """The file carrying ``sop``, building its scan's pending files if needed."""
        known = self._sops.get(sop)
        if not isinstance(known, Scan):
            return known
        for ref in known.files:  # builds them
            if self._sops.get(ref.sop_instance_uid) is known:
                self._sops[ref.sop_instance_uid] = ref
        found = self._sops[sop]
        assert isinstance(found, FileRef)
        return found

    def _duplicate(self, first: FileRef, ref: FileRef) -> None:
        if first.path_str == ref.path_str:
            return
        real = os.path.realpath(ref.path_str)
        if os.path.realpath(first.path_str) == real:
            # The same file reached twice (through a symlink): keep its real path
            # (else the smaller one), whichever came first: cached folders arrive
            # before files read anew.
            if ref.path_str == real or (first.path_str != real and ref.path_str < first.path_str):
                self._replace(first, ref)
            return
        # Keep the smaller path so the choice does not depend on walk order.
        keep, dup = (first, ref) if first.path_str <= ref.path_str else (ref, first)
        if keep is ref:
            self._replace(first, ref)
        self._duplicates.setdefault(keep.sop_instance_uid, []).append(dup)

    def _replace(self, old: FileRef, new: FileRef) -> None:
        self._sops[new.sop_instance_uid] = new
        self.sessions[old.study_instance_uid].scans[old.series_instance_uid].files.remove(old)
        self.sessions[new.study_instance_uid].scans[new.series_instance_uid].files.append(new)

    def _set_session_fields(self, session: Session, values: dict[str, str]) -> None:
        session.patient_id = values.get("PatientID", "")
        session.patient_name = values.get("PatientName", "")
        session.study_date = values.get("StudyDate", "")
        session.study_time = values.get("StudyTime", "")
        session.study_description = values.get("StudyDescription", "")
        session.accession_number = values.get("AccessionNumber", "")
        session.fields = {k: values[k] for k in self._session_keys if k in values}

    def finish(self, cancelled: Callable[[], bool] = lambda: False) -> list[Session]:
        """Run the checks and routing; return sessions sorted for display."""
        for sop, dups in self._duplicates.items():
            if cancelled():
                break
            keep = self._resolve(sop)
            assert keep is not None
            session = self.sessions[keep.study_instance_uid]
            for dup in sorted(dups, key=lambda f: f.path_str):
                problem, compared = compare_duplicates(keep, dup)
                session.problems.append(problem)
                self.read_errors = self.read_errors or not compared
        self._duplicates.clear()
        out = []
        for uid, session in list(self.sessions.items()):
            # A conflicting duplicate may have emptied the series it was first seen in.
            session.scans = {k: s for k, s in session.scans.items() if s.file_count}
            if not session.scans:
                del self.sessions[uid]
                continue
            for scan in session.scans.values():
                scan.sort_files()
                scan.problems = check_scan(scan, session)
            session.modalities = sorted({s.modality for s in session.scans.values() if s.modality})
            session.modality = primary_modality(session.modalities)
            session.fields["Modality"] = session.modality
            root = self._roots.get(uid)
            session.root = Path(root) if root is not None else None
            session.routing = propose(session.fields, self.routing_patterns)
            layout = xnat_layout_label(session)
            if layout is not None:
                session.routing.append(layout)
            duplicates = [p for p in session.problems if p.kind.startswith("duplicate-")]
            duplicates.sort(key=lambda p: (p.kind, p.path))  # independent of walk order
            session.problems = duplicates + check_session(session)
            out.append(session)
        out.sort(key=lambda s: (s.patient_id, s.study_date, s.study_time, s.study_instance_uid))
        self.problems.sort(key=lambda p: (p.path, p.kind))
        return out


_XNAT_SESSION = re.compile(r"(?:^|[/!])([^/!]+)/scans/[^/!]+/resources/DICOM/files/", re.I)


def xnat_layout_label(session: Session) -> RoutingProposal | None:
    """XNAT's own session layout ({session}/scans/{scan}/resources/DICOM/files/...):
    the session label is proposed from the session folder's name."""
    for scan in session.scans.values():
        first = scan.first_path()
        m = _XNAT_SESSION.search(first) if first else None
        if m is not None:
            return RoutingProposal("", "", m.group(1), "XNAT layout (folder name)")
    return None


def _common(a: str, b: str) -> str:
    # Most calls add a folder inside the root found so far: no need for commonpath
    # (~40 us a call, once per cached folder on a rescan).
    if b == a or b.startswith(a + os.sep):
        return a
    if SEP in a or SEP in b:
        return common(a, b)  # inside archives: '!' separates levels too
    try:
        return os.path.commonpath([a, b])
    except ValueError:  # different drives on Windows
        return a
