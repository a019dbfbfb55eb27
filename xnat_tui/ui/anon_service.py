"""What the anonymization screens call: scripts for a profile, one sample per series, diffs.

No Textual here, so the logic is tested without a terminal. The screens run
:func:`fetch_server_scripts` in an async worker (it is network I/O on the App's loop)
and :meth:`PreviewComputer.compute` in a thread worker (it reads DICOM headers and runs
the DicomEdit engine, both blocking).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset

from xnat_tui.dicom.dicomedit import (
    PROFILES,
    AnonymizationError,
    Anonymizer,
    BurnedInVerdict,
    RequiredVariable,
    Script,
    ScriptError,
    TagChange,
    burned_in_verdict,
    required_variables,
    scripts_for_profile,
    server_scripts,
)
from xnat_tui.dicom.dicomedit.preview import preview_dataset, read_header
from xnat_tui.dicom.model import Scan, Session
from xnat_tui.transfer.anon import ScriptSource
from xnat_tui.transfer.types import AnonOptions

__all__ = [
    "PROFILES",
    "PROFILE_SUMMARY",
    "AnonChoice",
    "PreviewComputer",
    "PreviewRequest",
    "PreviewResult",
    "SeriesPreview",
    "SeriesSample",
    "ServerScript",
    "ServerScripts",
    "build_scripts",
    "burned_in_exclusions",
    "burned_in_warnings",
    "fetch_server_scripts",
    "needed_variables",
    "next_profile",
    "series_samples",
    "variable_problem",
]

PROFILE_SUMMARY = {
    "none": "nothing changes here; the server applies its own site and project scripts",
    "xnat": "the project's site then project script, run here (the server does not re-run them)",
    "basic": "DICOM PS3.15 Basic Profile, run here",
}


def next_profile(profile: str, step: int = 1) -> str:
    i = PROFILES.index(profile) if profile in PROFILES else 0
    return PROFILES[(i + step) % len(PROFILES)]


@dataclass(frozen=True)
class ServerScript:
    """One of the server's anon scripts as fetched: ``scope`` is "site" or "project P"."""

    scope: str
    contents: str
    enabled: bool


@dataclass(frozen=True)
class ServerScripts:
    """What the server told us about a project's anon scripts.

    ``unreadable`` lists scripts the user may not read: the xnat profile cannot run
    what it cannot see, so it must not be used then (the server would skip them too,
    because the upload asks it not to anonymize).
    """

    scripts: tuple[ServerScript, ...] = ()
    unreadable: tuple[str, ...] = ()


async def fetch_server_scripts(client: ScriptSource, project: str) -> ServerScripts:
    """The project's site and project scripts (site first), enabled or not, as XNAT has them."""
    settings = await client.project_settings(project)
    return ServerScripts(
        scripts=tuple(
            ServerScript(a.scope, a.contents, a.enabled)
            for a in (settings.site_anon, settings.project_anon)
            if a is not None
        ),
        unreadable=tuple(w for w in settings.warnings if "anon script" in w),
    )


def build_scripts(
    profile: str, server: Sequence[ServerScript] | None, options: AnonOptions
) -> list[Script]:
    """The scripts the upload would run on this machine (ScriptError if one is refused)."""
    parsed: list[Script] = []
    if profile == "xnat":
        parsed = server_scripts([(s.scope, s.contents, s.enabled) for s in server or ()])
    return scripts_for_profile(
        profile,
        server_scripts=parsed,
        retain_dates=options.retain_dates,
        retain_uids=options.retain_uids,
        retain_device=options.retain_device,
    )


async def needed_variables(
    client: ScriptSource, project: str, profile: str, options: AnonOptions | None = None
) -> list[RequiredVariable]:
    """Variables to ask the user for before queueing an upload with ``profile``.

    Only ``xnat`` fetches anything (the built-in profiles use project/subject/session
    only). Raises ScriptError when the project's scripts cannot run here, so the
    caller can refuse to queue rather than upload half-anonymized data.
    """
    if profile != "xnat":
        return []
    fetched = await fetch_server_scripts(client, project)
    scripts = build_scripts(profile, fetched.scripts, options or AnonOptions())
    return [r for r in required_variables(scripts) if not r.hidden]


# ---- variables -----------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def variable_problem(value: str) -> str | None:
    """Why ``value`` cannot be given to a script as a variable (None when it can)."""
    if not value.strip():
        return "a value is required"
    if _CONTROL.search(value):
        return "control characters (tabs, line breaks) are not allowed"
    if "\\" in value:
        return "a backslash would split the value into several DICOM values"
    return None


# ---- samples -------------------------------------------------------------------------


@dataclass(frozen=True)
class SeriesSample:
    """The file that stands for a series in the preview (its lowest InstanceNumber)."""

    series_uid: str
    label: str  # XNAT's scan id (SeriesNumber)
    description: str
    modality: str
    file_count: int
    path: Path | None
    scan: Scan = field(compare=False, repr=False)

    def burned_in(self, profile: str) -> BurnedInVerdict:
        return burned_in_verdict(self.scan, profile)


def series_samples(session: Session) -> list[SeriesSample]:
    out: list[SeriesSample] = []
    for scan in session.sorted_scans():
        files = sorted(
            scan.files,
            key=lambda f: (f.instance_number is None, f.instance_number or 0, f.path_str),
        )
        out.append(
            SeriesSample(
                series_uid=scan.series_instance_uid,
                label=scan.label,
                description=scan.series_description,
                modality=scan.modality,
                file_count=scan.file_count,
                path=files[0].path if files else None,
                scan=scan,
            )
        )
    return out


def burned_in_exclusions(session: Session, profile: str) -> dict[str, str]:
    """Series to leave out by default under ``profile`` (uid -> reason); the user may re-add.

    Under ``basic`` every series that may carry text in its pixels; under the other
    profiles none (they are only warned about, see :func:`burned_in_warnings`).
    """
    out: dict[str, str] = {}
    for scan in session.sorted_scans():
        verdict = burned_in_verdict(scan, profile)
        if verdict.action == "exclude":
            out[scan.series_instance_uid] = "burned-in text risk: " + "; ".join(verdict.reasons)
    return out


def burned_in_warnings(session: Session, profile: str) -> dict[str, str]:
    """Every series that may carry identifying text in its pixels (uid -> reason)."""
    out: dict[str, str] = {}
    for scan in session.sorted_scans():
        verdict = burned_in_verdict(scan, profile)
        if verdict.flagged:
            out[scan.series_instance_uid] = "; ".join(verdict.reasons)
    return out


# ---- previews ------------------------------------------------------------------------


@dataclass(frozen=True)
class PreviewRequest:
    """Everything a preview depends on; equal requests give equal results (cache key)."""

    profile: str
    options: AnonOptions = AnonOptions()
    server: tuple[ServerScript, ...] | None = None
    variables: tuple[tuple[str, str], ...] = ()

    @classmethod
    def make(
        cls,
        profile: str,
        *,
        options: AnonOptions | None = None,
        server: Sequence[ServerScript] | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> PreviewRequest:
        opts = options if profile == "basic" and options is not None else AnonOptions()
        return cls(
            profile=profile,
            options=opts,
            server=tuple(server) if profile == "xnat" and server is not None else None,
            variables=tuple(sorted((variables or {}).items())),
        )


@dataclass
class SeriesPreview:
    series_uid: str
    changes: list[TagChange] = field(default_factory=list)
    error: str = ""

    def counts(self) -> dict[str, int]:
        out = {"removed": 0, "changed": 0, "added": 0}
        for c in self.changes:
            out[c.kind] += 1
        return out


@dataclass
class PreviewResult:
    request: PreviewRequest
    # (name, sha256) of each script run, in order.
    scripts: list[tuple[str, str]] = field(default_factory=list)
    required: list[RequiredVariable] = field(default_factory=list)
    missing: list[RequiredVariable] = field(default_factory=list)
    series: dict[str, SeriesPreview] = field(default_factory=dict)
    # The scripts were refused as a whole: nothing was previewed.
    error: str = ""
    cancelled: bool = False


@dataclass(frozen=True)
class AnonChoice:
    """What the user settled on in the preview: hand it to the upload (profile + variables)."""

    profile: str
    options: AnonOptions
    variables: dict[str, str]  # only the script's own; project/subject/session come per job
    script_hashes: tuple[str, ...] = ()


class PreviewComputer:
    """Computes previews; headers read once are kept, so switching profile re-reads nothing.

    Called from a thread worker. The header cache is only ever filled with whole
    datasets that are never modified (the engine works on a deep copy).
    """

    def __init__(self) -> None:
        self._headers: dict[Path, Dataset] = {}

    def header(self, path: Path) -> Dataset:
        ds = self._headers.get(path)
        if ds is None:
            ds = read_header(path)
            if "SOPInstanceUID" not in ds:
                # force=True reads anything; a file changed since the scan is not a preview.
                raise ValueError("no longer a DICOM instance (changed since the scan?)")
            self._headers[path] = ds
        return ds

    def compute(
        self,
        samples: Sequence[SeriesSample],
        request: PreviewRequest,
        base_variables: Mapping[str, str],
        cancelled: Callable[[], bool] = lambda: False,
    ) -> PreviewResult:
        """Diff one sample per series; per-series failures are kept, not raised."""
        result = PreviewResult(request)
        variables = dict(base_variables)
        variables.update(request.variables)
        try:
            scripts = build_scripts(request.profile, request.server, request.options)
            # Refuses, e.g., lookup[] without a table: also before any file is read.
            anonymizer = Anonymizer(scripts, variables)
        except (ScriptError, ValueError) as exc:
            result.error = str(exc)
            return result
        result.scripts = [(s.name, s.sha256) for s in scripts]
        result.required = required_variables(scripts)
        result.missing = [r for r in result.required if r.name not in variables]
        for sample in samples:
            if cancelled():
                result.cancelled = True
                return result
            item = SeriesPreview(sample.series_uid)
            result.series[sample.series_uid] = item
            if sample.path is None:
                item.error = "this series has no files"
                continue
            try:
                ds = self.header(sample.path)
            except Exception as exc:
                item.error = f"cannot read {sample.path}: {exc}"
                continue
            try:
                item.changes = preview_dataset(anonymizer, ds)
            except AnonymizationError as exc:
                item.error = str(exc)
        return result
