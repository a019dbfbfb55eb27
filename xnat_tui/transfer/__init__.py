"""Upload engine: journal, plan, packer, scheduler, verifier (no Textual).

Plans are built by the application layer (``xnat_tui.workflow.planner``). Typical use
(CLI and TUI alike)::

    port = XnatPort(client)                      # or any ServerPort
    planner = Planner(port, journal)             # xnat_tui.workflow.planner
    requests = await planner.build_requests(sessions, project="P",
                                            subject_template="{PatientID}",
                                            session_template="{subject}_{Modality}_{n}")
    plan = await planner.plan(requests)          # nothing sent yet; show plan.to_dict()
    engine = TransferEngine(port, journal, concurrency=4)
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
