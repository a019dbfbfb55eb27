"""DICOM-zip import pipeline (xnat-api.md §5.3), in two phases.

Phase 1 (``extract``, a worker thread, no database): read the uploaded archive entry by
entry with the strict reader, stage each entry's bytes to a file under the data dir,
read its header, resolve the project (parameter, else DICOM routing §8.1, else
Unassigned), apply the site and project series import filters (§7.4), check the SOP
UIDs, and work out subject, session label, scan and file name. Phase 2 (``commit``,
on the sandbox's single writer thread, so concurrent uploads of one session cannot race) groups
instances by (project, StudyInstanceUID, label) into prearchive rows and moves the
staged files into place.

Errors carry XNAT's messages: per-entry problems (``unable to read DICOM object X``,
``object X contains no SOP Class UID``) may be skipped with ``Ignore-Unparsable``; a
broken archive structure (``unable to read data from file``) may not. Instances read
before an error stay imported, as in XNAT.

Phase 1 runs under an ``ImportGuard`` (``limits``): uploads that inflate past the
server's ``ImportLimits`` or nest archives too deep fail with ``413``/``400`` naming the
limit (never ignorable), and a cancelled guard stops the reading within one chunk
(``ImportCancelled``, after removing the staging folder).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tarfile
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from xnat_tui.dicom.dicomedit import AnonymizationError, Anonymizer
from xnat_tui.dicom.routing import Identifiers, RuleSet, identify
from xnat_tui.sandbox.filters import SeriesFilter
from xnat_tui.sandbox.limits import (
    GunzipStream,
    ImportCancelled,
    ImportGuard,
    LimitExceeded,
)
from xnat_tui.sandbox.prearchive_store import (
    CODE_NAMES,
    PrearcFile,
    PrearchiveStore,
    PrearcSession,
    make_timestamp,
    path_segment,
)
from xnat_tui.sandbox.zipread import EntryStream, Readable, ZipFormatError, ZipStreamReader

_COPY = 1 << 20
_LABEL_BAD = re.compile(r"[^\w-]", re.ASCII)
_FILE_BAD = re.compile(r"[^\w.\-]", re.ASCII)


class ImportError_(Exception):
    """An import failure answered with ``status`` and XNAT's ``message``."""

    def __init__(self, status: int, message: str, *, ignorable: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.ignorable = ignorable


def client_error(message: str) -> ImportError_:
    return ImportError_(400, message)


@dataclass(frozen=True)
class ProjectView:
    id: str
    prearchive_code: int
    filter: SeriesFilter | None = None


@dataclass
class ImportContext:
    """What phase 1 may know about the server: a snapshot taken on the event loop."""

    readable: dict[str, ProjectView]  # id → project the user may read
    aliases: dict[str, str] = field(default_factory=dict)  # alias → id (readable only)
    site_filter: SeriesFilter | None = None
    site_anon: Anonymizer | None = None  # the enabled site-wide anon script
    # Custom routing rules (§8.2: site dicom/*Rules or a DICOM receiver's expressions),
    # tried before the fixed extractors.
    rules: RuleSet = field(default_factory=RuleSet)

    def lookup(self, id_or_alias: str | None) -> ProjectView | None:
        if not id_or_alias:
            return None
        view = self.readable.get(id_or_alias)
        if view is None and id_or_alias in self.aliases:
            view = self.readable.get(self.aliases[id_or_alias])
        return view


@dataclass
class ImportOptions:
    project: str | None = None  # PROJECT_ID
    subject: str | None = None  # SUBJECT_ID
    label: str | None = None  # EXPT_LABEL
    timestamp: str | None = None  # PREARC_TIMESTAMP
    folder: str | None = None  # PREARC_SESSION_FOLDER
    visit: str = ""
    subtype: str = ""
    source: str = ""
    timezone: str = ""
    prevent_anon: bool = False
    prevent_auto_commit: bool = False
    auto_archive: bool = False  # AA / auto-archive
    rename: bool = False
    ignore_unparsable: bool = False
    single_study: bool = False  # DICOM-zip into an explicitly named prearchive session


@dataclass
class Instance:
    entry_name: str
    staged: Path
    size: int
    md5: str
    project: str  # "" = Unassigned
    project_code: int | None
    subject: str
    label: str
    folder: str
    study_uid: str
    series_uid: str
    series_number: str
    scan: str
    series_description: str
    modality: str
    sop_class_uid: str
    sop_instance_uid: str
    patient_id: str
    patient_name: str
    scan_date: str
    scan_time: str
    dicom_aa: bool | None
    file_name: str


@dataclass
class Extraction:
    instances: list[Instance] = field(default_factory=list)
    failure: ImportError_ | None = None
    last_ignored: ImportError_ | None = None


# ---- archive format ------------------------------------------------------------------


_FORMATS = (
    ("zip", re.compile(r"\.z(ip|ar)$")),
    ("tar", re.compile(r"\.[tx]ar$")),
    ("tgz", re.compile(r"\.t(ar\.)?gz$")),
    ("gz", re.compile(r"\.gz$")),
)


def archive_format(name: str) -> str | None:
    """``Format.getFormat``: by file name only, and case-sensitive as XNAT's regexes are
    (``X.ZIP`` and ``.tar.bz2`` are UNKNOWN; a lone ``.gz`` is GZ, which DICOM-zip
    refuses)."""
    for fmt, pattern in _FORMATS:
        if pattern.search(name):
            return fmt
    return None


# ---- DICOM header helpers ------------------------------------------------------------


def read_header(path: Path) -> Dataset:
    """The header (no pixels) or InvalidDicomError, like dcm4che's DicomInputStream."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except InvalidDicomError:
        # Raw datasets without preamble are valid DICOM; accept them only when the
        # first element looks like a real group, so junk files still fail.
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        tags = list(ds.keys())
        if not tags or tags[0].group not in (0x0002, 0x0008):
            raise InvalidDicomError("not a DICOM object") from None
    return ds


def text(ds: Dataset, tag: int) -> str | None:
    """A header value as XNAT's dcm4che renders it; None when absent."""
    if tag not in ds:
        return None
    value = ds[tag].value
    if value is None:
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    if isinstance(value, bytes):
        return value.decode("latin-1", errors="replace").strip("\x00 ")
    return str(value).strip()


def to_label_chars(value: str) -> str:
    """``Labels.toLabelChars``: ``[^\\w-]`` → ``_``."""
    return _LABEL_BAD.sub("_", value)


def identifiers(ds: Dataset, ctx: ImportContext) -> Identifiers:
    """§8.1/§8.2 through the one routing parser (``dicom.routing.identify``)."""
    return identify(lambda tag: text(ds, tag), ctx.rules, lambda c: ctx.lookup(c) is not None)


def scan_subdir(series_number: str, series_uid: str) -> str:
    """``Restructurer.determineScanSubdir``: the series number, else from the UID."""
    if series_number.startswith("+"):
        series_number = "_" + series_number[1:]
    if series_number:
        return _FILE_BAD.sub("_", series_number)
    if series_uid:
        return hashlib.sha1(series_uid.encode()).hexdigest()[:8]
    return "1"


def generated_name(ds: Dataset, scan: str) -> str:
    """Server-chosen file name (XNAT's SOP-hash namer): stable for a SOP instance."""
    sop = f"{text(ds, 0x00080016) or ''}{text(ds, 0x00080018) or ''}"
    digest = hashlib.sha1(sop.encode()).hexdigest()[:12]
    instance = text(ds, 0x00200013) or "0"
    return f"{scan}.{_FILE_BAD.sub('_', instance)}.{digest}.dcm"


def _dicom_date(value: str | None) -> str:
    if value and len(value) >= 8 and value[:8].isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:8]}"
    return ""


def _dicom_time(value: str | None) -> str:
    if not value:
        return ""
    digits = value.replace(":", "")
    hh, mm, ss = digits[0:2], digits[2:4] or "00", digits[4:6] or "00"
    frac = digits.split(".", 1)[1] if "." in digits else ""
    if not (hh.isdigit() and mm.isdigit() and ss.isdigit()):
        return ""
    ms = (frac + "000")[:3] if frac.isdigit() else "000"
    return f"{hh}:{mm}:{ss}.{ms}"


# ---- phase 1 ----------------------------------------------------------------------------


class Extractor:
    """Reads one upload into staged instances (runs in a worker thread)."""

    def __init__(
        self,
        ctx: ImportContext,
        opts: ImportOptions,
        staging: Path,
        guard: ImportGuard | None = None,
    ) -> None:
        self.ctx = ctx
        self.opts = opts
        self.staging = staging
        self.guard = guard or ImportGuard()
        self.result = Extraction()
        self._n = 0

    def run(self, upload: Path, name: str) -> Extraction:
        self.staging.mkdir(parents=True, exist_ok=True)
        fmt = archive_format(name)
        if fmt is None or fmt == "gz":
            label = "GZ" if fmt == "gz" else "UNKNOWN"
            self.result.failure = ImportError_(400, f"Unsupported format {label}", ignorable=False)
            return self.result
        try:
            with upload.open("rb") as fh:
                self._archive(fh, fmt, 1)
        except ImportError_ as exc:
            self.result.failure = exc
        except LimitExceeded as exc:
            self.result.failure = ImportError_(exc.status, exc.message, ignorable=False)
        except (ZipFormatError, tarfile.TarError, EOFError, OSError, ValueError) as exc:
            self.result.failure = ImportError_(
                400, f"unable to read data from file: {exc}", ignorable=False
            )
        except ImportCancelled:
            self._abandon()
            raise
        return self.result

    def run_single(self, upload: Path, name: str) -> Extraction:
        """gradual-DICOM: the body is one DICOM object."""
        self.staging.mkdir(parents=True, exist_ok=True)
        try:
            with upload.open("rb") as fh:
                self._entry(name, fh)
        except ImportError_ as exc:
            self.result.failure = exc
        except LimitExceeded as exc:
            self.result.failure = ImportError_(exc.status, exc.message, ignorable=False)
        except ImportCancelled:
            self._abandon()
            raise
        return self.result

    def _abandon(self) -> None:
        """Stopped: nothing of this upload is kept (its request is gone)."""
        self.result.instances.clear()
        shutil.rmtree(self.staging, ignore_errors=True)

    def _archive(self, stream: Readable, fmt: str, depth: int) -> None:
        self.guard.nested(depth)
        self.guard.check()
        if fmt == "zip":
            reader = ZipStreamReader(stream, self.guard.zip_progress)
            while (entry := reader.next_entry()) is not None:
                self.guard.check()
                if entry.is_dir:
                    continue
                self._guarded(entry.name, EntryStream(reader), depth)
            return
        if fmt == "tgz":
            # Inflated here, under the guard, rather than inside tarfile ("r|gz").
            stream = GunzipStream(stream, self.guard)
        with tarfile.open(fileobj=stream, mode="r|") as tar:  # type: ignore[call-overload]
            for member in tar:
                self.guard.check()
                if not member.isfile():
                    continue
                fh = tar.extractfile(member)
                if fh is not None:
                    self._guarded(member.name, fh, depth)

    def _guarded(self, name: str, stream: Readable, depth: int) -> None:
        try:
            nested = archive_format(name)
            if nested == "gz":
                # A single gzip inside: "Unsupported format GZ", skipped only when
                # Ignore-Unparsable is on (xnat-api-2.md §C.3).
                raise client_error("Unsupported format GZ")
            if nested is not None:
                try:
                    self._archive(stream, nested, depth + 1)
                except (ZipFormatError, tarfile.TarError, EOFError, OSError, ValueError) as exc:
                    raise client_error(f"unable to read data from file: {exc}") from exc
                return
            self._entry(name, stream)
        except ImportError_ as exc:
            if self.opts.ignore_unparsable and exc.ignorable:
                self.result.last_ignored = exc
                return
            raise

    def _stage(self, name: str, stream: Readable) -> tuple[Path, int, str]:
        self._n += 1
        path = self.staging / f"{self._n:06d}.dcm"
        digest = hashlib.md5()
        size = 0
        guard = self.guard
        try:
            with path.open("wb") as out:
                while chunk := stream.read(_COPY):
                    digest.update(chunk)
                    size += len(chunk)
                    guard.staged(name, size)
                    out.write(chunk)
        except (ZipFormatError, EOFError, tarfile.TarError, zlib.error) as exc:
            path.unlink(missing_ok=True)
            raise client_error(f"unable to read DICOM object {name}") from exc
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise ImportError_(507, f"unable to store DICOM object {name}: {exc}") from exc
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path, size, digest.hexdigest()

    def _entry(self, name: str, stream: Readable) -> None:
        staged, size, md5 = self._stage(name, stream)
        try:
            self._instance(name, staged, size, md5)
        except ImportError_:
            staged.unlink(missing_ok=True)
            raise
        except Exception as exc:
            # A value pydicom cannot decode: dcm4che fails such objects on read.
            staged.unlink(missing_ok=True)
            raise client_error(f"unable to read DICOM object {name}") from exc
        except BaseException:
            staged.unlink(missing_ok=True)
            raise

    def _instance(self, name: str, staged: Path, size: int, md5: str) -> None:
        try:
            ds = read_header(staged)
        except Exception as exc:
            raise client_error(f"unable to read DICOM object {name}") from exc
        opts, ctx = self.opts, self.ctx
        ids = identifiers(ds, ctx)
        view = ctx.lookup(opts.project) or ctx.lookup(ids.project)
        values: dict[int, str | None] = {}
        filters = [f for f in (ctx.site_filter, view.filter if view else None) if f is not None]
        for flt in filters:
            for tag in flt.tags:
                values.setdefault(tag, text(ds, tag))
        if not all(flt.accepts(values) for flt in filters):
            staged.unlink(missing_ok=True)
            return
        sop_class = text(ds, 0x00080016) or ""
        sop_instance = text(ds, 0x00080018) or ""
        if not sop_class:
            raise client_error(f"object {name} contains no SOP Class UID")
        if not sop_instance:
            raise client_error(f"object {name} contains no SOP Instance UID")
        label = opts.label if opts.label is not None else (ids.session or "dicom_upload")
        subject = opts.subject if opts.subject is not None else ids.subject
        series_number = text(ds, 0x00200011) or ""
        series_uid = text(ds, 0x0020000E) or ""
        scan = scan_subdir(series_number, series_uid)
        base = os.path.basename(name.replace("\\", "/"))
        clean = _FILE_BAD.sub("_", base).lstrip(".")
        file_name = generated_name(ds, scan) if opts.rename or not clean else clean
        study_uid = text(ds, 0x0020000D) or ""
        scan_date = _dicom_date(text(ds, 0x00080020))
        scan_time = _dicom_time(text(ds, 0x00080030))
        dicom_aa = ids.auto_archive
        if ctx.site_anon is not None and not opts.prevent_anon:
            # XNAT files the instance under its received identity, then applies the site
            # script to the stored file; the file record reflects what is on disk.
            variables = {
                "project": view.id if view else "",
                "subject": subject,
                "session": opts.folder or label,
            }
            size, md5, ds = self._anonymize(name, staged, ctx.site_anon, variables)
            sop_class = text(ds, 0x00080016) or sop_class
            sop_instance = text(ds, 0x00080018) or sop_instance
            series_uid = text(ds, 0x0020000E) or series_uid
        self.result.instances.append(
            Instance(
                entry_name=name,
                staged=staged,
                size=size,
                md5=md5,
                project=view.id if view else "",
                project_code=view.prearchive_code if view else None,
                subject=subject,
                label=label,
                folder=path_segment(opts.folder or label),
                study_uid=study_uid,
                series_uid=series_uid,
                series_number=series_number,
                scan=scan,
                series_description=text(ds, 0x0008103E) or "",
                modality=text(ds, 0x00080060) or "",
                sop_class_uid=sop_class,
                sop_instance_uid=sop_instance,
                patient_id=text(ds, 0x00100020) or "",
                patient_name=text(ds, 0x00100010) or "",
                scan_date=scan_date,
                scan_time=scan_time,
                dicom_aa=dicom_aa,
                file_name=file_name,
            )
        )

    @staticmethod
    def _anonymize(
        name: str, staged: Path, anon: Anonymizer, variables: dict[str, str]
    ) -> tuple[int, str, Dataset]:
        try:
            data = anon.anonymize_file(staged, variables)
        except AnonymizationError as exc:
            # GradualDicomImporter.handleAnonymizationError: a server error, not ignorable.
            raise ImportError_(500, str(exc), ignorable=False) from exc
        staged.write_bytes(data)
        return len(data), hashlib.md5(data).hexdigest(), read_header(staged)


def extract(
    upload: Path,
    name: str,
    ctx: ImportContext,
    opts: ImportOptions,
    staging: Path,
    guard: ImportGuard | None = None,
) -> Extraction:
    return Extractor(ctx, opts, staging, guard).run(upload, name)


def extract_single(
    upload: Path,
    name: str,
    ctx: ImportContext,
    opts: ImportOptions,
    staging: Path,
    guard: ImportGuard | None = None,
) -> Extraction:
    return Extractor(ctx, opts, staging, guard).run_single(upload, name)


# ---- phase 2 ----------------------------------------------------------------------------


def _autoarchive_name(inst: Instance, opts: ImportOptions) -> str:
    if opts.auto_archive:
        return "AutoArchive"
    if not inst.project:
        return "Manual"
    if inst.dicom_aa is not None:
        return "AutoArchive" if inst.dicom_aa else "Manual"
    return CODE_NAMES.get(inst.project_code or 0, "Manual")


def commit(pre: PrearchiveStore, extraction: Extraction, opts: ImportOptions) -> list[str]:
    """Place staged instances into prearchive sessions; returns their URIs in order.

    Callers run it on the single writer thread (``writer.WRITER``), one import at a
    time, so two uploads of the same study cannot both create a row for it."""
    uris: list[str] = []
    sessions: dict[tuple[str, str, str], PrearcSession] = {}
    try:
        for inst in extraction.instances:
            key = (inst.project, inst.study_uid, inst.label)
            s = sessions.get(key)
            if s is None:
                s = _session_for(pre, inst, opts)
                sessions[key] = s
            _place(pre, s, inst)
            if s.url not in uris:
                uris.append(s.url)
        for s in sessions.values():
            pre.touch(s.id)
    finally:
        for inst in extraction.instances:
            inst.staged.unlink(missing_ok=True)
    return uris


def _session_for(pre: PrearchiveStore, inst: Instance, opts: ImportOptions) -> PrearcSession:
    if opts.timestamp and opts.folder:
        named = pre.find(
            inst.project or "Unassigned", path_segment(opts.timestamp), path_segment(opts.folder)
        )
        if named is not None and opts.single_study and named.tag and named.tag != inst.study_uid:
            raise client_error(
                f"The prearchive session {named.url} already contains the study "
                f"{named.tag}; refusing to merge study {inst.study_uid} into it."
            )
    existing = pre.find_receiving_target(inst.project, inst.study_uid, inst.label)
    if existing is not None:
        if existing.status == "BUILDING":
            pre.set_status(existing.id, "RECEIVING_INTERRUPT")
        elif existing.status not in ("RECEIVING", "RECEIVING_INTERRUPT"):
            pre.set_status(existing.id, "RECEIVING")
        refreshed = pre.get(existing.id)
        assert refreshed is not None
        return refreshed
    timestamp = path_segment(opts.timestamp) if opts.timestamp else make_timestamp()
    folder = pre.free_folder(inst.project, timestamp, inst.folder)
    s = pre.create(
        project=inst.project,
        timestamp=timestamp,
        folder=folder,
        name=inst.label,
        subject=inst.subject,
        tag=inst.study_uid,
        scan_date=inst.scan_date,
        scan_time=inst.scan_time,
        autoarchive=_autoarchive_name(inst, opts),
        prevent_anon=opts.prevent_anon,
        prevent_auto_commit=opts.prevent_auto_commit,
        source=opts.source,
        visit=opts.visit,
        protocol=opts.subtype,
        timezone=opts.timezone,
    )
    pre.log(s.id, f"Created by upload of {inst.entry_name}")
    return s


def _place(pre: PrearchiveStore, s: PrearcSession, inst: Instance) -> None:
    """Move one staged file into the session; a re-sent SOP instance replaces itself."""
    name = inst.file_name
    same_sop = pre.find_instance(s.id, inst.sop_instance_uid)
    if same_sop is not None and same_sop.scan == inst.scan:
        name = same_sop.name
    else:
        clash = pre.file_named(s.id, inst.scan, name)
        if clash is not None and clash.sop_instance_uid != inst.sop_instance_uid:
            name = (
                f"{inst.scan}.{hashlib.sha1(inst.sop_instance_uid.encode()).hexdigest()[:12]}.dcm"
            )
        if same_sop is not None:  # moved to another scan: drop the stale copy
            pre.file_path(s, same_sop).unlink(missing_ok=True)
            pre.remove_file(s.id, same_sop.scan, same_sop.name)
    record = PrearcFile(
        scan=inst.scan,
        name=name,
        sop_instance_uid=inst.sop_instance_uid,
        sop_class_uid=inst.sop_class_uid,
        series_uid=inst.series_uid,
        series_number=inst.series_number,
        series_description=inst.series_description,
        modality=inst.modality,
        patient_id=inst.patient_id,
        patient_name=inst.patient_name,
        size=inst.size,
        md5=inst.md5,
    )
    target = pre.file_path(s, record)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(inst.staged, target)
    pre.add_file(s.id, record)


def staging_dir(data_dir: Path) -> Path:
    return data_dir / "tmp" / f"import-{uuid.uuid4().hex}"
