"""Client-side anonymization for uploads: one Anonymizer per (project, profile, options).

Profiles (``--anon``): ``none`` sends files as they are (the server applies its own
site script on import); ``xnat`` applies the server's site then project scripts here
(and asks the server not to apply them again, like the Desktop Client); ``basic``
applies the built-in DICOM Basic Profile with the job's retain options. The transform
runs in the packer thread and is deterministic, so a re-sent series carries identical
bytes.

Fail closed: under ``xnat`` a script the user cannot read or that is outside the
supported subset refuses the job before any byte is sent — the upload asks the server
not to anonymize, so skipping a script would land identifying data on the server.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from xnat_tui.dicom.processes import usable_stderr
from xnat_tui.transfer.journal import JobRecord
from xnat_tui.transfer.server import TransferError
from xnat_tui.transfer.types import AnonOptions

# The DicomEdit package (~40 ms with pydicom loaded), the process pool and the packer
# are imported where used: a send or upload with --anon none never needs them, yet
# every command that sends builds an AnonymizerSet.
if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

    from xnat_tui.dicom.dicomedit import Anonymizer, RequiredVariable, Script
    from xnat_tui.transfer.packer import FileTransform
    from xnat_tui.xnat.models import ProjectSettings


class ScriptSource(Protocol):
    """Where a project's anonymization scripts come from (an ``XnatClient``)."""

    async def project_settings(self, project: str) -> ProjectSettings: ...


AnonKey = tuple[str, str, str]
"""(project, profile, options key)."""

# Anonymizers known to each worker process, installed by the pool's initializer.
_WORKER_ANONS: dict[AnonKey, Anonymizer] = {}


def _init_worker(anons: dict[AnonKey, Anonymizer]) -> None:
    _WORKER_ANONS.clear()
    _WORKER_ANONS.update(anons)


def _anonymize_in_worker(key: AnonKey, data: bytes, variables: dict[str, str]) -> bytes:
    return _WORKER_ANONS[key].anonymize_bytes(data, variables)


def _key(project: str, profile: str, options: AnonOptions) -> AnonKey:
    return (project, profile, options.for_profile(profile).key())


class AnonymizationRefused(TransferError):
    """The chosen anonymization cannot run as the server would: nothing may be sent."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retriable=False)


def unreadable_scripts(warnings: Iterable[str]) -> list[str]:
    """The anon scripts ``project_settings`` could not read (its warnings name them)."""
    return [w for w in warnings if "anon script" in w]


def script_problems(settings: Any) -> tuple[list[str], list[Script]]:
    """Why the ``xnat`` profile cannot run a project's scripts here, and the scripts.

    ``settings`` is a ``ProjectSettings``. Problems name the script and the reason.
    """
    project = getattr(settings, "project", "")
    problems = [
        f"project {project}: the {w.split(':', 1)[0]} cannot be read by this user "
        f"({w.split(':', 1)[-1].split(';')[0].strip()}), so it cannot be applied here; "
        "ask an administrator for read access, or upload with --anon none (the server "
        "then anonymizes) or --anon basic"
        for w in unreadable_scripts(getattr(settings, "warnings", ()))
    ]
    from xnat_tui.dicom.dicomedit import server_scripts

    scripts: list[Script] = []
    for a in (settings.site_anon, settings.project_anon):
        if a is None:
            continue
        try:
            scripts += server_scripts([(a.scope, a.contents, a.enabled)])
        except Exception as exc:
            problems.append(
                f"project {project}: the {a.scope} anon script cannot be applied here: {exc}; "
                "upload with --anon none to let the server run it"
            )
    return problems, scripts


class AnonymizerSet:
    """Prepared once (scripts fetched and parsed) before the engine sends anything.

    pydicom work holds the GIL, so it runs in a small process pool (spawned, never
    forked from a process with threads): the event loop — the TUI's too — stays
    responsive and several series are anonymized on several cores.
    """

    def __init__(self, workers: int | None = None) -> None:
        self._anons: dict[AnonKey, Anonymizer] = {}
        # (project, profile) -> why its scripts cannot run here (fail closed).
        self._refused: dict[tuple[str, str], str] = {}
        self._workers = workers or max(1, min(4, os.cpu_count() or 1))
        self._pool: ProcessPoolExecutor | None = None
        self._pool_keys: frozenset[AnonKey] = frozenset()
        self._lock = threading.Lock()

    def add(
        self,
        project: str,
        profile: str,
        site_project_scripts: list[Script],
        options: AnonOptions | None = None,
    ) -> None:
        from xnat_tui.dicom.dicomedit import Anonymizer, scripts_for_profile

        opts = (options or AnonOptions()).for_profile(profile)
        scripts = scripts_for_profile(
            profile,
            server_scripts=site_project_scripts,
            retain_dates=opts.retain_dates,
            retain_uids=opts.retain_uids,
            retain_device=opts.retain_device,
        )
        self._anons[_key(project, profile, opts)] = Anonymizer(scripts, {"project": project})

    async def prepare(
        self,
        client: ScriptSource,
        project: str,
        profile: str,
        options: AnonOptions | None = None,
    ) -> None:
        """Fetch and parse what ``profile`` needs for ``project`` (from an XnatClient).

        Raises :class:`AnonymizationRefused` (and remembers why, so :meth:`transform_for`
        refuses the project's jobs too) when a script of the ``xnat`` profile cannot be
        read or is outside the supported DicomEdit subset.
        """
        opts = (options or AnonOptions()).for_profile(profile)
        if profile in ("", "none") or _key(project, profile, opts) in self._anons:
            return
        if profile == "basic":
            self.add(project, profile, [], opts)
            return
        if profile != "xnat":
            raise AnonymizationRefused(f"unknown anonymization profile {profile!r}")
        refused = self._refused.get((project, profile))
        if refused:
            raise AnonymizationRefused(refused)
        settings = await client.project_settings(project)
        problems, scripts = script_problems(settings)
        if problems:
            message = "; ".join(problems)
            self._refused[(project, profile)] = message
            raise AnonymizationRefused(message)
        self.add(project, profile, scripts, opts)

    async def prepare_job(self, client: ScriptSource, job: JobRecord) -> None:
        await self.prepare(client, job.project, job.anonymization, job.anon_options)

    def required(
        self, project: str, profile: str, options: AnonOptions | None = None
    ) -> list[RequiredVariable]:
        """Variables the prepared scripts need from the user (hidden ones excluded)."""
        anon = self._anons.get(_key(project, profile, (options or AnonOptions())))
        if anon is None:
            return []
        from xnat_tui.dicom.dicomedit import required_variables

        return [r for r in required_variables(anon.scripts) if not r.hidden]

    def pool(self) -> ProcessPoolExecutor:
        """The worker pool, (re)built when anonymizers were added since it started."""
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import resource_tracker

        with self._lock:
            keys = frozenset(self._anons)
            if self._pool is None or keys != self._pool_keys:
                if self._pool is not None:
                    self._pool.shutdown(wait=False, cancel_futures=False)
                # Inside the TUI sys.stderr has no descriptor, and the resource tracker
                # that spawned workers need would fail to start ("fds_to_keep").
                with usable_stderr():
                    resource_tracker.ensure_running()
                self._pool = ProcessPoolExecutor(
                    self._workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_init_worker,
                    initargs=(dict(self._anons),),
                )
                self._pool_keys = keys
            return self._pool

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None

    def transform_for(self, job: JobRecord) -> FileTransform | None:
        """The job's packer hook; raises (the series fails, nothing sent) if it cannot run."""
        if job.anonymization in ("", "none"):
            return None
        refused = self._refused.get((job.project, job.anonymization))
        if refused:
            raise AnonymizationRefused(refused)
        key = _key(job.project, job.anonymization, job.anon_options)
        anon = self._anons.get(key)
        if anon is None and job.anonymization == "basic":
            self.add(job.project, "basic", [], job.anon_options)  # needs nothing from a server
            anon = self._anons[key]
        if anon is None:
            raise AnonymizationRefused(
                f"anonymization {job.anonymization!r} for {job.project} was not prepared "
                "(its scripts could not be fetched); nothing was sent"
            )
        if anon.is_identity:
            return None
        from xnat_tui.dicom.dicomedit import required_variables

        variables = job_variables(job)
        needed = [r for r in required_variables(anon.scripts) if not r.hidden]
        missing = [r.name for r in needed if r.name not in variables]
        if missing:
            raise AnonymizationRefused(
                f"the anonymization script needs a value for {', '.join(missing)}; nothing was sent"
            )
        return AnonTransform(self, key, anon, variables)


def job_variables(job: JobRecord) -> dict[str, str]:
    """The user's variables plus project/subject/session, which always come from the job."""
    out = dict(job.anon_variables)
    out.update({"project": job.project, "subject": job.subject, "session": job.label})
    return out


def missing_variables(
    required: list[RequiredVariable], given: Mapping[str, str]
) -> list[RequiredVariable]:
    from xnat_tui.dicom.dicomedit import BUILTIN_VARIABLES

    return [r for r in required if r.name not in given and r.name not in BUILTIN_VARIABLES]


class AnonTransform:
    """The packer's per-file hook; ``script_hashes`` go into the job's receipt."""

    def __init__(
        self,
        owner: AnonymizerSet,
        key: AnonKey,
        anon: Anonymizer,
        variables: dict[str, str],
    ) -> None:
        self.owner = owner
        self.key = key
        self.anon = anon
        self.variables = variables
        self.script_hashes = anon.script_hashes

    def __call__(self, path: Path, data: bytes) -> bytes:
        # Called from the packer's thread; blocks only that thread. The pool's module
        # is loaded by then (pool() imports it), so this import is a dict look-up.
        from concurrent.futures.process import BrokenProcessPool

        try:
            future = self.owner.pool().submit(_anonymize_in_worker, self.key, data, self.variables)
        except (BrokenProcessPool, RuntimeError):
            return self.anon.anonymize_bytes(data, self.variables)
        try:
            return future.result()
        except BrokenProcessPool:
            return self.anon.anonymize_bytes(data, self.variables)
