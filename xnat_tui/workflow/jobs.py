"""Every workflow's engine speaks one protocol, so the Transfers panel and
``xnat-tui transfers`` drive uploads, DICOM sends, downloads and copies alike.

Each workflow module registers a factory for its kinds with :func:`register`; the app
and ``transfers resume/retry`` look the engine up by the journalled job's kind. An
engine adopts only jobs of its own kinds (the journal is shared).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from xnat_tui.config import Config
from xnat_tui.transfer.events import EventStream, JobProgress
from xnat_tui.transfer.journal import Journal
from xnat_tui.transfer.kinds import JobKind
from xnat_tui.transfer.types import JobState
from xnat_tui.workflow.login import Connection


class JobEngine(Protocol):
    """What the panel, the CLI's progress reporter and ``transfers`` need of an engine."""

    journal: Journal

    def subscribe(self) -> EventStream: ...
    async def start(self, *, resume: bool = True) -> list[str]: ...
    def snapshot(self) -> list[JobProgress]: ...
    def adopt(self, job_id: str) -> bool: ...
    def pause(self, job_id: str | None = None) -> list[str]: ...
    def resume(self, job_id: str | None = None) -> list[str]: ...
    def cancel(self, job_id: str | None = None) -> list[str]: ...
    async def retry(self, job_id: str | None = None) -> list[str]: ...
    async def wait(self, job_ids: Iterable[str] | None = None) -> dict[str, JobState]: ...
    async def close(self) -> None: ...


# Builds the engine that runs journalled jobs of some kinds for one logged-in server.
EngineBuilder = Callable[[Connection, Journal, Config], Awaitable[JobEngine]]

_BUILDERS: dict[JobKind, EngineBuilder] = {}


def register(kinds: Iterable[JobKind], builder: EngineBuilder) -> None:
    for kind in kinds:
        _BUILDERS[kind] = builder


def builder_for(kind: JobKind) -> EngineBuilder:
    """The registered factory; importing the workflow modules registers them all."""
    _load_workflows()
    try:
        return _BUILDERS[kind]
    except KeyError:
        raise LookupError(f"no engine runs {kind} jobs in this version") from None


def _load_workflows() -> None:
    # Imported here, not at the top: each workflow module imports this one to register.
    import importlib

    for name in ("upload", "send", "download", "copy"):
        try:
            importlib.import_module(f"xnat_tui.workflow.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"xnat_tui.workflow.{name}":
                raise
