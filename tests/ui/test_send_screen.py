"""Pilot: the Labels pane's send (ctrl+t) to the sandbox's DICOM receiver (issue 16):
the destinations, the exact routing values in the preview, the job in the journal
and the Transfers model, the session on the server, and T to prearchive triage for a
session that landed as Unassigned."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.widgets import OptionList

from tests.ui.fakes import scanned, until
from tests.ui.screen_text import screen_text
from xnat_tui.config import Config, DicomProfile
from xnat_tui.dicom.synthetic import SeriesSpec, write_study
from xnat_tui.transfer.journal import Journal
from xnat_tui.transfer.kinds import JobKind
from xnat_tui.transfer.types import JobState
from xnat_tui.ui.app import XnatTuiApp
from xnat_tui.ui.launch import scan_tree
from xnat_tui.ui.screens.prearchive import PrearchiveScreen
from xnat_tui.ui.screens.send import SendScreen
from xnat_tui.ui.widgets.labels import LabelsPane
from xnat_tui.workflow.login import LoginRequest, login


async def _app(
    sandbox_factory: Any, tmp_path: Path, routing: str, user: str = "alice"
) -> tuple[XnatTuiApp, Any]:
    server = await sandbox_factory(dicom_port=0, dicom_idle=0.3)
    write_study(tmp_path / "dicom" / "A", patient_id="P1", series=[SeriesSpec("MR", 1, "T1", 3)])
    config = Config()
    config.dicom["sandbox"] = DicomProfile(
        "sandbox", "XNAT", "127.0.0.1", server.dicom.port, routing=routing, idle_seconds=0.8
    )
    app = XnatTuiApp(
        config,
        scan=scan_tree,
        connector=login,
        start_path=tmp_path / "dicom",
        login=LoginRequest(url=server.url, user=user, password=user),
        auto_login=True,
        journal=lambda: Journal(tmp_path / "journal.sqlite3"),
    )
    app.animation_level = "none"
    return app, server


async def _send(pilot: Any, app: XnatTuiApp) -> tuple[str, str]:
    """Scan, choose PILOT, ctrl+t in the Labels pane, send to the sandbox receiver;
    the preview text and the job id."""
    screen = await scanned(pilot, 1)
    screen.labels.post_message(LabelsPane.ProjectChosen("PILOT"))
    await until(pilot, lambda: app.workbench.project is not None)
    item = next(iter(app.workbench.items.values()))
    await until(pilot, lambda: bool(item.subject and item.label))
    await pilot.press("4")
    await pilot.press("ctrl+t")
    await until(pilot, lambda: isinstance(app.screen, SendScreen))
    options = app.screen.query_one(OptionList)
    assert [str(options.get_option_at_index(i).id) for i in range(2)] == ["rest", "dicom:sandbox"]
    await pilot.press("down")
    await pilot.pause()
    assert isinstance(app.screen, SendScreen)
    preview = "\n".join(app.screen.shown)
    assert "Send 1 session(s) to" in screen_text(app)
    await pilot.press("enter")
    await until(pilot, lambda: item.job_id is not None)
    assert item.job_id is not None
    return preview, item.job_id


async def test_send_to_the_sandbox_receiver_is_verified(
    sandbox_factory: Any, tmp_path: Path
) -> None:
    app, server = await _app(sandbox_factory, tmp_path, "xnat")
    async with app.run_test(size=(160, 45)) as pilot:
        preview, jid = await _send(pilot, app)
        item = next(iter(app.workbench.items.values()))
        # The exact value written into each copy, and where it goes.
        assert f"XNAT@127.0.0.1:{server.dicom.port}" in preview
        assert f"PatientComments = 'Project: PILOT Subject: {item.subject} Session: " in preview
        journal = Journal(tmp_path / "journal.sqlite3")
        await until(pilot, lambda: journal.job(jid).state.finished, within=60)
        job = journal.job(jid)
        assert job.kind is JobKind.SEND and job.state is JobState.VERIFIED, job.message
        assert len(journal.done_files(jid)) == 3
        assert "verified: 3 instance(s) in prearchive PILOT/" in job.message
        # The Transfers panel's model shows the DICOM job.
        await until(pilot, lambda: jid in app.transfers.jobs)
        assert app.transfers.jobs[jid].kind is JobKind.SEND
        # On the server: one prearchive session in PILOT with the three instances.
        assert app.client is not None
        entries = [e for e in await app.client.prearchive() if e.tag == job.study_uid]
        assert [(e.project, e.name) for e in entries] == [("PILOT", item.label)]


async def test_unassigned_send_opens_prearchive_triage(
    sandbox_factory: Any, tmp_path: Path
) -> None:
    # Routing "none": nothing names the project, so the receiver files it Unassigned
    # (which, as on XNAT, only an administrator sees).
    app, _server = await _app(sandbox_factory, tmp_path, "none", user="admin")
    async with app.run_test(size=(160, 45)) as pilot:
        preview, jid = await _send(pilot, app)
        assert "sent as they are (no routing written)" in preview
        journal = Journal(tmp_path / "journal.sqlite3")
        await until(pilot, lambda: journal.job(jid).state.finished, within=60)
        assert "landed as Unassigned" in journal.job(jid).message
        await pilot.press("5")  # the Transfers table, the send job highlighted
        await until(pilot, lambda: jid in app.transfers.jobs)
        await pilot.press("T")
        await until(pilot, lambda: isinstance(app.screen, PrearchiveScreen))
        assert app.screen.scope == "Unassigned"
