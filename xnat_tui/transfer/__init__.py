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
