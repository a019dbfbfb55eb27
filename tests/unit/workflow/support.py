"""Textual-free fakes for the application layer's tests.

Only the server is faked (an in-memory :class:`ServerPort`); the planner, proposals,
classifier, workbench and upload session under test are the real ones. Kept apart from
``tests/ui/fakes.py`` so these tests never import Textual or the TUI.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from xnat_tui.dicom.model import FileRef, RoutingProposal, Scan, Session
from xnat_tui.transfer.journal import Journal
from xnat_tui.transfer.server import ProjectInfo, RemoteSession, ServerPort
from xnat_tui.workflow.login import Connection
from xnat_tui.workflow.planner import Planner
from xnat_tui.workflow.upload import Anonymization, UploadSession, UploadSettings
from xnat_tui.xnat.models import ProjectRef

_uid = itertools.count(1)
SERVER_URL = "http://fake.test"


def make_session(
    patient_id: str = "P001",
    *,
    modality: str = "MR",
    study_date: str = "20240115",
    series: Iterable[tuple[str, int]] = (("localizer", 2), ("T1", 3)),
    routing: tuple[str, str, str] | None = None,
    uid: str | None = None,
    patient_name: str | None = None,
) -> Session:
    """A scanned session; ``routing`` = (project, subject, session) as its DICOM says."""
    study = uid or f"1.2.826.0.1.3680043.9.8888.{next(_uid)}"
    root = Path("/data") / (patient_id or "anon") / study
    session = Session(
        study_instance_uid=study,
        patient_id=patient_id,
        patient_name=f"Test^{patient_id}" if patient_name is None else patient_name,
        study_date=study_date,
        study_description=f"{modality} study",
        modalities=[modality],
        modality=modality,
        root=root,
        fields={"PatientID": patient_id, "StudyDate": study_date, "Modality": modality},
    )
    if routing is not None:
        project, subject, label = routing
        session.routing.append(RoutingProposal(project, subject, label, "PatientComments"))
    for number, (description, count) in enumerate(series, start=1):
        suid = f"{study}.{number}"
        scan = Scan(
            series_instance_uid=suid,
            study_instance_uid=study,
            series_number=number,
            series_description=description,
            modality=modality,
        )
        for i in range(count):
            scan.files.append(
                FileRef(
                    path=root / f"s{number}" / f"{i}.dcm",
                    size=1000 + i,
                    mtime=0.0,
                    sop_instance_uid=f"{suid}.{i}",
                    transfer_syntax="1.2.840.10008.1.2.1",
                    instance_number=i + 1,
                )
            )
        session.scans[suid] = scan
    return session


@dataclass
class FakeProject:
    info: ProjectInfo
    subjects: set[str] = field(default_factory=set)
    sessions: list[RemoteSession] = field(default_factory=list)


def archived(label: str, subject: str, study_uid: str, project: str = "") -> RemoteSession:
    """A session already in a project's archive."""
    return RemoteSession(
        label=label,
        subject=subject,
        study_uid=study_uid,
        location="archive",
        uri=f"/data/projects/{project or 'X'}/experiments/{label}",
        project=project,
    )


class FakePort:
    """ServerPort (the planner's calls) and ProjectLister over in-memory projects.

    A project not in ``projects`` answers as XNAT does for a project the user cannot
    see: an error naming it.
    """

    server_url = SERVER_URL
    username = "alice"

    def __init__(self, projects: dict[str, FakeProject]) -> None:
        self.projects = projects

    def _get(self, project: str) -> FakeProject:
        try:
            return self.projects[project]
        except KeyError:
            raise LookupError(f"project {project} does not exist or is not visible") from None

    async def uploadable_projects(self) -> list[ProjectRef]:
        return [ProjectRef(pid, pid) for pid in self.projects]

    async def project_info(self, project: str) -> ProjectInfo:
        return self._get(project).info

    async def subjects(self, project: str) -> set[str]:
        return set(self._get(project).subjects)

    async def sessions(self, project: str) -> list[RemoteSession]:
        return list(self._get(project).sessions)


def as_port(port: FakePort) -> ServerPort:
    """The fake as the planner's port (it answers the listing calls planning makes)."""
    return cast(ServerPort, port)


def planner(port: FakePort) -> Planner:
    return Planner(as_port(port))


def upload_session(
    port: FakePort,
    journal_dir: Path,
    settings: UploadSettings | None = None,
    anon_default: Callable[[str], Anonymization] | None = None,
) -> UploadSession:
    """An UploadSession on ``port`` (no real client), journalling under ``journal_dir``."""
    journal_dir.mkdir(parents=True, exist_ok=True)
    connection = Connection(url=SERVER_URL, user="alice", port=as_port(port), projects=port)
    journal = Journal(journal_dir / "journal.sqlite3")
    if anon_default is None:
        return UploadSession(connection, journal, settings=settings)
    return UploadSession(connection, journal, settings=settings, anon_default=anon_default)
