"""Pilot: the server browser's "Copy to project…" and "Move to project…" against the
sandbox: the label table checked live in the destination, what the destination does
differently, the typed confirmation of a move, and the jobs in the Transfers model.

Demo roles: alice owns PILOT (PIL_900/PIL_900_MR1: a localizer and a T1) and is a member
of STUDY_A (subjects SA_001..3, SA_002_MR1 archived; no subject creation); STUDY_B
(admin only) drops localizers and has a project anonymization script.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from textual.app import App
from textual.message import Message
from textual.widgets import Input, Select, Static

from tests.ui.fakes import until
from tests.ui.screen_text import notifications, screen_text
from tests.ui.test_browser_download import DownloadApp, goto, keys_of
from xnat_tui.sandbox.server import SandboxServer
from xnat_tui.transfer.journal import Journal
from xnat_tui.transfer.kinds import JobKind
from xnat_tui.transfer.types import JobState
from xnat_tui.ui.screens.browser import BrowserScreen
from xnat_tui.ui.screens.copy import CopyScreen
from xnat_tui.ui.screens.copy_confirm import MoveConfirmScreen
from xnat_tui.xnat.client import XnatClient
from xnat_tui.xnat.credentials import Credentials


class CopyApp(DownloadApp):
    """The browser's test app, plus what start_copy needs: the journal on
    ``uploads`` and every message seen (the toasts among them)."""

    def __init__(self, client: XnatClient, journal: Journal) -> None:
        super().__init__(client, journal)
        self.uploads.journal = journal  # type: ignore[attr-defined]
        self.seen: list[Message] = []


@contextlib.asynccontextmanager
async def running(
    sandbox: SandboxServer, tmp_path: Path, user: str = "alice"
) -> AsyncIterator[tuple[XnatClient, Journal, CopyApp, Any]]:
    """The browser app logged in as ``user`` (password = user name), with its journal."""
    async with XnatClient(Credentials(sandbox.url, user, user)) as client:
        journal = Journal(tmp_path / "journal.sqlite3")
        app = CopyApp(client, journal)
        async with app.run_test(size=(160, 45), message_hook=app.seen.append) as pilot:
            yield client, journal, app, pilot


async def select_session(
    pilot: Any, app: CopyApp, project: str, subject: str = "PIL_900", *, scan: str = ""
) -> str:
    """Open project → subject → session in the browser and select the session (or one of
    its scans); the session's key."""
    screen = app.screen
    assert isinstance(screen, BrowserScreen) and screen.model is not None
    model = screen.model
    await goto(pilot, screen, f"p:{project}")
    await pilot.press("enter")
    await until(pilot, lambda: any(r.name == subject for r in model.rows()))
    await goto(pilot, screen, next(r.key for r in model.rows() if r.name == subject))
    await pilot.press("enter")
    await until(pilot, lambda: any(k.startswith("e:") for k in keys_of(screen)))
    session = next(k for k in keys_of(screen) if k.startswith("e:"))
    await goto(pilot, screen, session)
    if scan:
        await pilot.press("enter")
        await goto(pilot, screen, f"c:{session[2:]}:{scan}")
    await pilot.press("space")
    return session


def copy_screen(app: App[None]) -> CopyScreen:
    assert isinstance(app.screen, CopyScreen)
    return app.screen


def row(screen: CopyScreen) -> list[str]:
    table = screen.table
    return [str(c) for c in table.get_row_at(0)]


async def open_copy(pilot: Any, app: CopyApp, key: str, dest: str) -> CopyScreen:
    await pilot.press(key)
    await until(pilot, lambda: isinstance(app.screen, CopyScreen))
    screen = copy_screen(app)
    await until(pilot, lambda: screen.sources and screen.table.row_count == 1)
    screen.query_one("#copy-dest", Select).value = dest
    await until(pilot, lambda: screen.checked is not None and screen.dest == dest)
    return screen


async def relabel(pilot: Any, screen: CopyScreen, subject: str, session: str) -> None:
    screen.query_one("#copy-row-subject", Input).value = subject
    screen.query_one("#copy-row-session", Input).value = session
    await until(
        pilot,
        lambda: (
            screen.checked is not None
            and (row(screen)[1], row(screen)[2]) == (subject, session)
            and not screen.status_line.startswith("checking")
        ),
    )


async def to_move_confirmation(pilot: Any, app: CopyApp) -> None:
    """PILOT's PIL_900_MR1 to move into STUDY_A as SA_001/PIL_900_MR1: the confirmation."""
    await select_session(pilot, app, "PILOT")
    screen = await open_copy(pilot, app, "m", "STUDY_A")
    await relabel(pilot, screen, "SA_001", "PIL_900_MR1")
    assert row(screen)[3] == "new"
    await pilot.press("ctrl+s")
    await until(pilot, lambda: isinstance(app.screen, MoveConfirmScreen))


async def test_copy_from_the_browser_labels_checked_live_then_queued(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    async with running(sandbox, tmp_path) as (client, journal, app, pilot):
        await select_session(pilot, app, "PILOT")
        screen = await open_copy(pilot, app, "c", "STUDY_A")
        # The source labels are kept by default: subject PIL_900 does not exist in
        # STUDY_A, which does not let uploads create subjects.
        source, subject, session, status, detail = row(screen)
        assert (source, subject, session) == ("PIL_900/PIL_900_MR1", "PIL_900", "PIL_900_MR1")
        assert status == "not permitted" and "does not allow creating subjects" in detail
        # An existing subject and a label taken by another study: a conflict.
        await relabel(pilot, screen, "SA_002", "SA_002_MR1")
        assert row(screen)[3] == "conflict", row(screen)
        # A label with a character XNAT refuses: invalid.
        await relabel(pilot, screen, "SA_001", "bad label!")
        assert row(screen)[3] == "invalid", row(screen)
        await pilot.press("ctrl+s")  # nothing queueable: refused, the screen stays
        await pilot.pause()
        assert isinstance(app.screen, CopyScreen)
        assert any("Detail column" in n.message for n in notifications(app.seen))
        await relabel(pilot, screen, "SA_001", "PIL_900_MR1_C")
        assert row(screen)[3] == "new", row(screen)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, BrowserScreen))
        await until(
            pilot,
            lambda: any(r.state is JobState.VERIFIED for r in app.transfers.jobs.values()),
            within=60,
        )
        rows = list(app.transfers.jobs.values())
        assert [r.kind for r in rows] == [JobKind.COPY]
        assert any("Copying 1 session(s) from PILOT to STUDY_A" in n.message
                   for n in notifications(app.seen))  # fmt: skip
        await app.jobs.close()
        (job,) = journal.jobs(kinds=[JobKind.COPY])
        assert (job.project, job.subject, job.label) == ("STUDY_A", "SA_001", "PIL_900_MR1_C")
        assert "match the source by md5" in job.message
        assert await client.find_experiment("STUDY_A", "PIL_900_MR1_C") is not None
        assert await client.find_experiment("PILOT", "PIL_900_MR1") is not None  # kept


async def test_move_asks_for_the_source_project_id_then_deletes_after_verifying(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    async with running(sandbox, tmp_path) as (client, journal, app, pilot):
        await to_move_confirmation(pilot, app)
        text = screen_text(app)
        assert "PILOT/PIL_900/PIL_900_MR1: 2 scan(s)" in text
        assert "STUDY_A/SA_001/PIL_900_MR1" in text
        # The destination's ID is not the confirmation: the source's is.
        app.screen.query_one("#move-confirm-input", Input).value = "STUDY_A"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, MoveConfirmScreen)
        error = app.screen.query_one("#move-confirm-error", Static)
        assert "Type PILOT exactly" in str(error.render())
        assert journal.jobs(kinds=[JobKind.MOVE]) == []  # nothing queued yet
        app.screen.query_one("#move-confirm-input", Input).value = "PILOT"
        await pilot.press("enter")
        await until(
            pilot,
            lambda: any(r.state is JobState.VERIFIED for r in app.transfers.jobs.values()),
            within=60,
        )
        assert [r.kind for r in app.transfers.jobs.values()] == [JobKind.MOVE]
        await app.jobs.close()
        (job,) = journal.jobs(kinds=[JobKind.MOVE])
        assert "source PILOT/PIL_900_MR1 deleted" in job.message
        assert await client.find_experiment("STUDY_A", "PIL_900_MR1") is not None
        assert await client.find_experiment("PILOT", "PIL_900_MR1") is None


async def test_cancelled_move_confirmation_changes_nothing(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    async with running(sandbox, tmp_path) as (client, journal, app, pilot):
        await to_move_confirmation(pilot, app)
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, BrowserScreen))
        assert any("Move cancelled" in n.message for n in notifications(app.seen))
        await app.jobs.close()
        assert journal.jobs() == []
        assert await client.find_experiment("PILOT", "PIL_900_MR1") is not None


async def test_move_without_delete_rights_is_not_permitted_up_front(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # alice is only a member of STUDY_A: she may copy out of it, not move (delete).
    async with running(sandbox, tmp_path) as (client, journal, app, pilot):
        await select_session(pilot, app, "STUDY_A", "SA_002")
        screen = await open_copy(pilot, app, "m", "PILOT")
        assert row(screen)[3] == "not permitted"
        assert "may not delete in project STUDY_A" in row(screen)[4]
        assert "not permitted" in screen_text(app)
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, CopyScreen)  # refused, nothing queued
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, BrowserScreen))


async def test_move_of_some_scans_only_is_refused(sandbox: SandboxServer, tmp_path: Path) -> None:
    async with running(sandbox, tmp_path) as (client, journal, app, pilot):
        await select_session(pilot, app, "PILOT", scan="2")
        await pilot.press("m")
        await until(
            pilot,
            lambda: any(
                "a move deletes whole sessions" in n.message for n in notifications(app.seen)
            ),
        )
        assert isinstance(app.screen, BrowserScreen)


async def test_copy_of_one_scan_says_what_the_destination_changes(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    async with running(sandbox, tmp_path, "admin") as (client, journal, app, pilot):
        await select_session(pilot, app, "PILOT", scan="2")
        screen = await open_copy(pilot, app, "c", "STUDY_B")
        # Only the selected scan is in the plan.
        assert screen.checked is not None
        assert len(screen.checked.rows[0].job.series) == 1
        await until(pilot, lambda: len(screen.notes) >= 2)
        notes = str(screen.query_one("#copy-notes", Static).render())
        assert "STUDY_B has its own series import filter" in notes
        assert "STUDY_B has a project anonymization script" in notes
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, BrowserScreen))


async def test_the_label_table_sits_right_under_the_choices(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # The choices above the table take the lines they need, not half the screen (a tmux
    # run showed a dozen empty lines between the label templates and the table).
    async with running(sandbox, tmp_path) as (_client, _journal, app, pilot):
        await select_session(pilot, app, "PILOT")
        screen = await open_copy(pilot, app, "c", "STUDY_A")
        inputs = screen.query_one("#copy-subject-tpl", Input).region
        assert screen.table.region.y - inputs.bottom <= 1


async def test_a_redraw_landing_while_typing_keeps_what_was_typed(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # A check's result redraws the table, which highlights the same row again; the row
    # fields used to be refilled from the old labels then, losing what was just typed.
    async with running(sandbox, tmp_path) as (_client, _journal, app, pilot):
        await select_session(pilot, app, "PILOT")
        screen = await open_copy(pilot, app, "c", "STUDY_A")
        screen.recheck()  # the redraw's highlight is queued before the typing below
        screen.query_one("#copy-row-subject", Input).value = "SA_001"
        screen.query_one("#copy-row-session", Input).value = "TYPED_MR1"
        await until(pilot, lambda: (row(screen)[1], row(screen)[2]) == ("SA_001", "TYPED_MR1"))
        assert screen.query_one("#copy-row-session", Input).value == "TYPED_MR1"


async def test_a_session_only_shared_into_the_project_is_not_moved_out_of_it(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    from xnat_tui.xnat import share_ops

    async with running(sandbox, tmp_path) as (client, journal, app, pilot):
        await share_ops.share_subject(client, "PILOT", "PIL_900", "STUDY_A", "SA_PIL")
        await share_ops.share_experiment(
            client, "PILOT", "PIL_900", "PIL_900_MR1", "STUDY_A", "SA_SHARED_MR"
        )
        await select_session(pilot, app, "STUDY_A", subject="SA_PIL")
        selection = app.screen.model.selection()  # type: ignore[attr-defined]
        # Picked as STUDY_A has it: its label and its subject's label there.
        assert [(s.project, s.subject_label, s.label) for s in selection.sessions] == [
            ("STUDY_A", "SA_PIL", "SA_SHARED_MR")
        ]
        await pilot.press("m")
        await until(
            pilot,
            lambda: any(
                "only shared into STUDY_A: SA_SHARED_MR (from PILOT)" in n.message
                for n in notifications(app.seen)
            ),
        )
        assert isinstance(app.screen, BrowserScreen) and not journal.jobs()
        assert await client.find_experiment("PILOT", "PIL_900_MR1") is not None
