"""Textual-free fakes for the application layer's tests.

Only the server is faked (an in-memory :class:`ServerPort`); the planner, proposals,
classifier, workbench and upload session under test are the real ones. Kept apart from
``tests/ui/fakes.py`` so these tests never import Textual or the TUI.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import cast

from tests.fixtures.fake_server import (  # noqa: F401 - the tests' vocabulary
    SERVER_URL,
    FakePort,
    FakeProject,
    archived,
    make_session,
)
from xnat_tui.transfer.journal import Journal
from xnat_tui.transfer.server import ServerPort
from xnat_tui.workflow.login import Connection
from xnat_tui.workflow.planner import Planner
from xnat_tui.workflow.upload import Anonymization, UploadSession, UploadSettings


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
