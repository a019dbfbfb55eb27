"""Client-side anonymization for uploads: one Anonymizer per (project, profile).

Profiles (``--anon``): ``none`` sends files as they are (the server applies its own
site script on import); ``xnat`` applies the server's site then project scripts here
(and asks the server not to apply them again, like the Desktop Client); ``basic``
applies the built-in DICOM Basic Profile. The transform runs in the packer thread and
is deterministic, so a re-sent series carries identical bytes.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from xnat_tui.dicom.dicomedit import Anonymizer, Script, scripts_for_profile, server_scripts
from xnat_tui.transfer.journal import JobRecord
from xnat_tui.transfer.packer import FileTransform
from xnat_tui.transfer.server import TransferError

# Anonymizers known to each worker process, installed by the pool's initializer.
_WORKER_ANONS: dict[tuple[str, str], Anonymizer] = {}


def _init_worker(anons: dict[tuple[str, str], Anonymizer]) -> None:
    _WORKER_ANONS.clear()
    _WORKER_ANONS.update(anons)


def _anonymize_in_worker(key: tuple[str, str], data: bytes, variables: dict[str, str]) -> bytes:
    return _WORKER_ANONS[key].anonymize_bytes(data, variables)


class AnonymizerSet:
    """Prepared once (scripts fetched and parsed) before the engine starts.

    pydicom work holds the GIL, so it runs in a small process pool (spawned, never
    forked from a process with threads): the event loop — the TUI's too — stays
    responsive and several series are anonymized on several cores.
    """

    def __init__(self, workers: int | None = None) -> None:
        self._anons: dict[tuple[str, str], Anonymizer] = {}
        self._workers = workers or max(1, min(4, os.cpu_count() or 1))
        self._pool: ProcessPoolExecutor | None = None
        self._pool_keys: frozenset[tuple[str, str]] = frozenset()
        self._lock = threading.Lock()

    def add(self, project: str, profile: str, site_project_scripts: list[Script]) -> None:
        scripts = scripts_for_profile(profile, server_scripts=site_project_scripts)
        self._anons[(project, profile)] = Anonymizer(scripts, {"project": project})

    async def prepare(self, client: object, project: str, profile: str) -> None:
        """Fetch and parse the project's scripts (``xnat`` profile) from an XnatClient."""
        if (project, profile) in self._anons or profile in ("", "none"):
            return
        scripts: list[Script] = []
        if profile == "xnat":
            settings = await client.project_settings(project)  # type: ignore[attr-defined]
            items = [
                (a.scope, a.contents, a.enabled)
                for a in (settings.site_anon, settings.project_anon)
                if a is not None
            ]
            try:
                scripts = server_scripts(items)
            except Exception as exc:
                raise TransferError(
                    f"project {project}: its anonymization script cannot be applied here: {exc}"
                ) from exc
        self.add(project, profile, scripts)

    def pool(self) -> ProcessPoolExecutor:
        """The worker pool, (re)built when anonymizers were added since it started."""
        with self._lock:
            keys = frozenset(self._anons)
            if self._pool is None or keys != self._pool_keys:
                if self._pool is not None:
                    self._pool.shutdown(wait=False, cancel_futures=False)
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
        if job.anonymization in ("", "none"):
            return None
        key = (job.project, job.anonymization)
        anon = self._anons.get(key)
        if anon is None:
            raise TransferError(
                f"anonymization {job.anonymization!r} for {job.project} was not prepared"
            )
        if anon.is_identity:
            return None
        variables = {"project": job.project, "subject": job.subject, "session": job.label}
        return AnonTransform(self, key, anon, variables)


class AnonTransform:
    """The packer's per-file hook; ``script_hashes`` go into the job's receipt."""

    def __init__(
        self,
        owner: AnonymizerSet,
        key: tuple[str, str],
        anon: Anonymizer,
        variables: dict[str, str],
    ) -> None:
        self.owner = owner
        self.key = key
        self.anon = anon
        self.variables = variables
        self.script_hashes = anon.script_hashes

    def __call__(self, path: Path, data: bytes) -> bytes:
        # Called from the packer's thread; blocks only that thread.
        try:
            future = self.owner.pool().submit(_anonymize_in_worker, self.key, data, self.variables)
        except (BrokenProcessPool, RuntimeError):
            return self.anon.anonymize_bytes(data, self.variables)
        try:
            return future.result()
        except BrokenProcessPool:
            return self.anon.anonymize_bytes(data, self.variables)
