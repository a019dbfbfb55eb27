"""Upload engine: journal, plan types, packer, scheduler, verifier (no Textual).

Plans are built by the application layer (``xnat_tui.workflow``: its ``UploadSession``
makes the requests and runs the planner for the TUI and the CLI alike). Given a plan::

    engine = TransferEngine(port, journal, concurrency=4)   # port: any ServerPort
    await engine.start()                         # resumes unfinished jobs of this server
    events = engine.subscribe()                  # JobStateChanged, SeriesStateChanged,
                                                 # ProgressTick, EngineMessage
    ids = await engine.submit(plan)
    states = await engine.wait(ids)
    await engine.close()
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xnat_tui.transfer.engine import TransferEngine, TransformFactory
    from xnat_tui.transfer.events import (
        EngineMessage,
        Event,
        EventStream,
        JobProgress,
        JobStateChanged,
        ProgressTick,
        SeriesStateChanged,
    )
    from xnat_tui.transfer.journal import JobRecord, Journal, JournalError, SeriesRecord
    from xnat_tui.transfer.packer import FileTransform, SeriesPacker
    from xnat_tui.transfer.plan import (
        DroppedSeries,
        JobRequest,
        Plan,
        PlanIssue,
        PlannedJob,
        Verdict,
    )
    from xnat_tui.transfer.retry import RetryPolicy
    from xnat_tui.transfer.server import (
        CommitOutcome,
        ProjectInfo,
        RemoteFile,
        RemoteSession,
        ServerPort,
        SourceChanged,
        TransferError,
    )
    from xnat_tui.transfer.types import (
        Compression,
        Destination,
        JobState,
        Overwrite,
        SeriesState,
        SourceFile,
        SourceSeries,
        SourceSession,
    )
    from xnat_tui.transfer.verifier import Receipt, ScanCheck

# Loaded on first use (PEP 562): a command that needs one module of the package, such
# as ``xnat-tui send`` its journal, does not import the upload engine and aiohttp.
_LAZY = {
    "TransferEngine": "engine",
    "TransformFactory": "engine",
    "EngineMessage": "events",
    "Event": "events",
    "EventStream": "events",
    "JobProgress": "events",
    "JobStateChanged": "events",
    "ProgressTick": "events",
    "SeriesStateChanged": "events",
    "JobRecord": "journal",
    "Journal": "journal",
    "JournalError": "journal",
    "SeriesRecord": "journal",
    "FileTransform": "packer",
    "SeriesPacker": "packer",
    "DroppedSeries": "plan",
    "JobRequest": "plan",
    "Plan": "plan",
    "PlanIssue": "plan",
    "PlannedJob": "plan",
    "Verdict": "plan",
    "RetryPolicy": "retry",
    "CommitOutcome": "server",
    "ProjectInfo": "server",
    "RemoteFile": "server",
    "RemoteSession": "server",
    "ServerPort": "server",
    "SourceChanged": "server",
    "TransferError": "server",
    "Compression": "types",
    "Destination": "types",
    "JobState": "types",
    "Overwrite": "types",
    "SeriesState": "types",
    "SourceFile": "types",
    "SourceSeries": "types",
    "SourceSession": "types",
    "Receipt": "verifier",
    "ScanCheck": "verifier",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "CommitOutcome",
    "Compression",
    "Destination",
    "DroppedSeries",
    "EngineMessage",
    "Event",
    "EventStream",
    "FileTransform",
    "JobProgress",
    "JobRecord",
    "JobRequest",
    "JobState",
    "JobStateChanged",
    "Journal",
    "JournalError",
    "Overwrite",
    "Plan",
    "PlanIssue",
    "PlannedJob",
    "ProgressTick",
    "ProjectInfo",
    "Receipt",
    "RemoteFile",
    "RemoteSession",
    "RetryPolicy",
    "ScanCheck",
    "SeriesPacker",
    "SeriesRecord",
    "SeriesState",
    "SeriesStateChanged",
    "ServerPort",
    "SourceChanged",
    "SourceFile",
    "SourceSeries",
    "SourceSession",
    "TransferEngine",
    "TransferError",
    "TransformFactory",
    "Verdict",
]
