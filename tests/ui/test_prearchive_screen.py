"""Pilot tests of the prearchive triage screen over a scripted server (fast, deterministic).

The same screen against the real sandbox is exercised in ``test_prearchive_sandbox.py``.
"""

from __future__ import annotations

from typing import Any

from textual.app import App
from textual.widgets import Input, Select, Static

from tests.ui.fakes import until
from tests.ui.screen_text import palette_entries
from xnat_tui.ui.screens.prearchive import PrearchiveScreen
from xnat_tui.ui.screens.prearchive_archive import ArchiveDialog
from xnat_tui.ui.screens.prearchive_delete import DeleteDialog
from xnat_tui.ui.screens.prearchive_results import ResultsDialog
from xnat_tui.ui.widgets.prearchive_table import PrearchiveTable
from xnat_tui.workflow.prearchive import PrearchiveRow
from xnat_tui.xnat.errors import PermissionDenied
from xnat_tui.xnat.models import ExistingSession
from xnat_tui.xnat.prearchive_ops import ScanInfo

TS = "20260101_101010101"


def entry(project: str, folder: str, status: str = "READY", **extra: str) -> dict[str, str]:
    row = {
        "project": project,
        "timestamp": TS,
        "subject": "SUB01",
        "folderName": folder,
        "name": folder,
        "tag": f"1.2.840.{folder}",
        "status": status,
        "url": f"/prearchive/projects/{project}/{TS}/{folder}",
        "scan_date": "2025-12-31",
        "uploaded": "2026-01-01 10:10:10.101",
        "autoarchive": "Manual",
        "SOURCE": "",
    }
    row.update(extra)
    return row


class ScriptedServer:
    """Behaves like the prearchive of a small XNAT, records every call."""

    def __init__(self) -> None:
        self.rows = [
            entry("PILOT", "S1"),
            entry("PILOT", "S2", "CONFLICT"),
            entry("STUDY_A", "S3", "ERROR"),
            entry("Unassigned", "U1"),
        ]
        self.archived = [ExistingSession("S2", "9.9.9", "SUB01", "PILOT")]
        self.calls: list[tuple[str, ...]] = []
        self.deny_archive = ""
        self.lists = 0

    def _find(self, url: str) -> dict[str, str]:
        return next(r for r in self.rows if r["url"] == url)

    async def list_prearchive(self, project: str | None = None) -> list[dict[str, str]]:
        self.lists += 1
        return [dict(r) for r in self.rows if project in (None, r["project"])]

    async def editable_projects(self) -> list[str]:
        return ["PILOT", "STUDY_A"]

    async def existing_sessions(self, project: str) -> list[ExistingSession]:
        return [e for e in self.archived if e.project == project]

    async def subjects(self, project: str) -> list[str]:
        return ["SUB01"]

    async def scans(self, url: str) -> list[ScanInfo]:
        return [ScanInfo("1", "t1_mprage", 176, 92_000_000), ScanInfo("2", "rest_bold", 300, None)]

    async def last_log(self, url: str) -> str:
        return "Invalid modification of session UID via archive process." if "S2" in url else ""

    async def move(self, url: str, project: str) -> str:
        self.calls.append(("move", url, project))
        row = self._find(url)
        row["project"] = project
        row["url"] = f"/prearchive/projects/{project}/{TS}/{row['name']}"
        return row["url"]

    async def rebuild(self, url: str) -> None:
        self.calls.append(("rebuild", url))
        self._find(url)["status"] = "READY"

    async def delete(self, url: str) -> None:
        self.calls.append(("delete", url))
        self.rows.remove(self._find(url))

    async def archive(self, url: str, *, subject: str, label: str, overwrite: str) -> str:
        self.calls.append(("archive", url, subject, label, overwrite))
        if self.deny_archive:
            raise PermissionDenied(self.deny_archive, status=403)
        row = self._find(url)
        self.rows.remove(row)
        self.archived.append(ExistingSession(label, row["tag"], subject, row["project"]))
        return f"/data/archive/projects/{row['project']}/subjects/{subject}/experiments/{label}"


class TriageApp(App[None]):
    """Hosts the screen over a scripted server, as the real App hosts it over a client."""

    def __init__(self, server: ScriptedServer, interval: float = 0) -> None:
        super().__init__()
        self.server = server
        self.interval = interval

    def on_mount(self) -> None:
        self.push_screen(PrearchiveScreen(self.server, refresh_interval=self.interval))


async def settle(pilot: Any, delay: float = 0.05) -> None:
    await pilot.pause(delay)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def screen_of(app: App[None]) -> PrearchiveScreen:
    for screen in app.screen_stack:
        if isinstance(screen, PrearchiveScreen):
            return screen
    raise AssertionError("prearchive screen not on the stack")


async def test_lists_every_entry_with_xnat_columns_and_summary() -> None:
    server = ScriptedServer()
    app = TriageApp(server)
    async with app.run_test(size=(180, 50)) as pilot:
        await settle(pilot)
        screen = screen_of(app)
        table = screen.query_one(PrearchiveTable)
        assert table.row_count == 4
        assert [str(c.label) for c in table.columns.values()][1:7] == [
            "Project",
            "Timestamp",
            "Subject",
            "Session",
            "StudyInstanceUID",
            "Status",
        ]
        assert table.get_row(server.rows[1]["url"])[6].plain == "CONFLICT"
        status = str(screen.query_one("#prearchive-status", Static).render())
        assert "4 shown of 4" in status and "1 CONFLICT" in status and "1 ERROR" in status


async def test_auto_refresh_updates_cells_in_place_keeping_cursor_and_selection() -> None:
    server = ScriptedServer()
    app = TriageApp(server)
    async with app.run_test(size=(180, 50)) as pilot:
        await settle(pilot)
        screen = screen_of(app)
        table = screen.query_one(PrearchiveTable)
        rebuilds: list[int] = []
        rebuild = table._rebuild
        table._rebuild = lambda *a: (rebuilds.append(1), rebuild(*a))  # type: ignore[method-assign]
        await pilot.press("down", "space")  # select S2, cursor moves on to S3
        assert screen.selected == {server.rows[1]["url"]}
        assert table.highlighted_url == server.rows[2]["url"]
        # Polling from here on (keys pressed while polls run every 0.1 s only make the
        # pilot wait longer for an idle app).
        screen.refresh_interval = 0.1
        screen.action_refresh()
        server.rows[2]["status"] = "READY"  # S3 rebuilt by someone else
        newer = entry("PILOT", "S9", "RECEIVING", timestamp="20260101_111111111")
        newer["url"] = "/prearchive/projects/PILOT/20260101_111111111/S9"
        server.rows.append(newer)  # a new upload: sorts last by timestamp
        polls = screen.polls
        await until(pilot, lambda: screen.polls >= polls + 2 and table.row_count == 5)
        await settle(pilot)
        assert screen.polls >= polls + 2  # re-armed after each poll
        assert table.row_count == 5
        assert table.get_row(server.rows[2]["url"])[6].plain == "READY"
        assert table.highlighted_url == server.rows[2]["url"]
        assert screen.selected == {server.rows[1]["url"]}
        assert table.get_row(server.rows[1]["url"])[0] == "☑"
        assert rebuilds == []  # cells updated and the new row appended, never rebuilt
        # A row that vanished (archived elsewhere) leaves the table and the selection.
        server.rows.pop(1)
        await until(pilot, lambda: table.row_count == 4)
        await settle(pilot)
        assert table.row_count == 4 and screen.selected == set()
        assert table.highlighted_url == server.rows[1]["url"]


async def test_filter_by_text_status_and_project_and_sort() -> None:
    server = ScriptedServer()
    app = TriageApp(server)
    async with app.run_test(size=(180, 50)) as pilot:
        await settle(pilot)
        screen = screen_of(app)
        table = screen.query_one(PrearchiveTable)
        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        await pilot.press(*"s3", "enter")
        assert [r.label for r in screen.shown_rows] == ["S3"]
        screen.query_one("#prearchive-search", Input).value = ""
        screen.query_one("#prearchive-status-filter", Select).value = "CONFLICT"
        await pilot.pause()
        assert [r.label for r in screen.shown_rows] == ["S2"]
        screen.query_one("#prearchive-status-filter", Select).clear()
        screen.query_one("#prearchive-project-filter", Select).value = "Unassigned"
        await pilot.pause()
        assert [r.label for r in screen.shown_rows] == ["U1"]
        screen.query_one("#prearchive-project-filter", Select).clear()
        await pilot.pause()
        screen.sort_key = "status"
        await pilot.press("S")  # reverse
        assert [r.status for r in screen.shown_rows][0] == "READY"
        assert table.shown_urls == [r.url for r in screen.shown_rows]


async def test_detail_shows_scans_log_and_what_archiving_would_do() -> None:
    server = ScriptedServer()
    app = TriageApp(server)
    async with app.run_test(size=(180, 50)) as pilot:
        await settle(pilot)
        screen = screen_of(app)
        await pilot.press("down")  # S2, the CONFLICT
        await settle(pilot, 0.3)
        preview = str(screen.query_one("#detail-preview", Static).render())
        assert "CONFLICT" in preview and "9.9.9" in preview
        log = str(screen.query_one("#detail-log", Static).render())
        assert "2 scans, 476 files" in log and "Invalid modification of session UID" in log
        scans = screen.query_one("#detail-scans")
        assert scans.row_count == 2  # type: ignore[attr-defined]
        await pilot.press("up")
        await settle(pilot, 0.3)
        assert "NEW" in str(screen.query_one("#detail-preview", Static).render())


async def test_delete_lists_exactly_the_selection_and_reports_each() -> None:
    server = ScriptedServer()
    app = TriageApp(server)
    async with app.run_test(size=(180, 50)) as pilot:
        await settle(pilot)
        screen = screen_of(app)
        urls = [server.rows[0]["url"], server.rows[2]["url"]]
        await pilot.press("space", "down", "space")  # S1 and S3
        await pilot.press("d")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, DeleteDialog)
        assert len(dialog.lines) == 2
        assert dialog.lines[0].startswith(f"PILOT/{TS}/S1") and "S3" in dialog.lines[1]
        assert all("2 scans, 476 files" in line for line in dialog.lines)
        await pilot.press("y")
        await settle(pilot)
        assert [c for c in server.calls if c[0] == "delete"] == [("delete", u) for u in urls]
        assert isinstance(app.screen, ResultsDialog)
        assert all(r.ok for r in app.screen.results)
        await pilot.press("escape")
        await settle(pilot)
        assert [r.label for r in screen.shown_rows] == ["S2", "U1"]


async def test_relabel_resolves_a_uid_conflict_with_live_validation() -> None:
    server = ScriptedServer()
    app = TriageApp(server)
    async with app.run_test(size=(180, 50)) as pilot:
        await settle(pilot)
        await pilot.press("down", "l")  # S2: same label as an archived session, other UID
        await settle(pilot, 0.4)
        dialog = app.screen
        assert isinstance(dialog, ArchiveDialog) and dialog.mode == "relabel"
        preview = dialog.query_one("#archive-preview", Static)
        assert "conflict" in str(preview.render())
        label = dialog.query_one("#archive-label", Input)
        assert app.focused is label
        label.value = "S2 b"
        await settle(pilot, 0.4)
        assert "space" in str(dialog.query_one("#archive-problems", Static).render())
        assert label.has_class("-invalid")
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, ArchiveDialog)  # refused
        label.value = "S2_b"
        await settle(pilot, 0.4)
        assert "new" in str(preview.render())
        await pilot.press("ctrl+s")
        await settle(pilot)
        url = f"/prearchive/projects/PILOT/{TS}/S2"
        assert ("archive", url, "SUB01", "S2_b", "none") in server.calls
        assert any(e.label == "S2_b" for e in server.archived)


async def test_bulk_archive_keeps_each_session_in_its_project() -> None:
    server = ScriptedServer()
    app = TriageApp(server)
    async with app.run_test(size=(180, 50)) as pilot:
        await settle(pilot)
        await pilot.press("A")  # all four: S1, S2 (conflict), S3 (error), U1 (unassigned)
        await pilot.press("a")
        await settle(pilot, 0.4)
        dialog = app.screen
        assert isinstance(dialog, ArchiveDialog) and not dialog.single
        text = str(dialog.query_one("#archive-preview", Static).render())
        assert "PILOT/S1: new" in text and "PILOT/S2: conflict" in text
        assert "Unassigned/U1: blocked" in text
        assert "Archive 2 of 4" in str(dialog.query_one("#archive-ok").label)  # type: ignore[attr-defined]
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert [c[0] for c in server.calls] == ["archive", "archive"]  # no moves
        assert {c[1].split("/")[3] for c in server.calls} == {"PILOT", "STUDY_A"}
        results = screen_of(app).last_results
        assert [r.ok for r in results] == [True, True, False, False]
        assert "skipped" in results[2].message


async def test_route_unassigned_moves_then_archives() -> None:
    server = ScriptedServer()
    app = TriageApp(server)
    async with app.run_test(size=(180, 50)) as pilot:
        await settle(pilot)
        screen = screen_of(app)
        screen.set_filter(screen.filter.__class__(project="Unassigned"))
        await pilot.press("a")
        await settle(pilot, 0.4)
        dialog = app.screen
        assert isinstance(dialog, ArchiveDialog) and dialog.mode == "route"
        assert "Choose the destination project" in str(
            dialog.query_one("#archive-problems", Static).render()
        )
        dialog.query_one("#archive-project", Select).value = "STUDY_A"
        dialog.query_one("#archive-subject", Input).value = "SUB77"
        await settle(pilot, 0.4)
        assert "moves to STUDY_A" in str(dialog.query_one("#archive-preview", Static).render())
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert server.calls == [
            ("move", f"/prearchive/projects/Unassigned/{TS}/U1", "STUDY_A"),
            ("archive", f"/prearchive/projects/STUDY_A/{TS}/U1", "SUB77", "U1", "none"),
        ]


async def test_refused_archive_shows_the_servers_message() -> None:
    server = ScriptedServer()
    server.deny_archive = (
        "Cannot archive S1 from the prearchive of PILOT: bob lacks edit access to project "
        'PILOT: "Invalid permissions for new project."'
    )
    app = TriageApp(server)
    async with app.run_test(size=(180, 50)) as pilot:
        await settle(pilot)
        screen = screen_of(app)
        await pilot.press("a")
        await settle(pilot, 0.4)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, ResultsDialog)
        text = str(app.screen.query_one("#results-text", Static).render())
        assert "✗" in text and "bob lacks edit access to project PILOT" in text
        assert not screen.last_results[0].ok
        assert server.rows[0]["name"] == "S1"  # still there


async def test_footer_actions_follow_what_is_possible() -> None:
    server = ScriptedServer()
    server.rows = [entry("PILOT", "B1", "QUEUED_ARCHIVING"), entry("PILOT", "R1", "RECEIVING")]
    app = TriageApp(server)
    async with app.run_test(size=(180, 50)) as pilot:
        await settle(pilot)
        screen = screen_of(app)
        assert screen.check_action("archive", ()) is None  # busy entry
        assert screen.check_action("delete", ()) is None
        await pilot.press("down")
        assert screen.check_action("archive", ()) is None  # RECEIVING: rebuild first
        assert screen.check_action("rebuild", ()) is True
        await pilot.press("b")
        await settle(pilot)
        assert ("rebuild", server.rows[1]["url"]) in server.calls
        assert screen.rows[server.rows[1]["url"]].status == "READY"
        assert screen.check_action("archive", ()) is True


def test_rows_keep_xnat_columns() -> None:
    row = PrearchiveRow.from_mapping(entry("PILOT", "S1"))
    assert row.as_json()["url"].startswith("/prearchive/projects/PILOT/")


async def test_through_the_real_app_against_the_sandbox(sandbox: Any, tmp_path: Any) -> None:
    """Key ``p`` on the main screen opens triage over the logged-in client; relabel for real."""
    from tests.ui.fakes import FakeEngine, scan_func_for, to_main, until
    from xnat_tui.config import Config
    from xnat_tui.transfer.journal import Journal
    from xnat_tui.ui.app import XnatTuiApp
    from xnat_tui.workflow.login import LoginRequest, login

    engine = FakeEngine()
    (tmp_path / "dicom").mkdir()
    app = XnatTuiApp(
        Config(),
        scan=scan_func_for([]),
        journal=lambda: Journal(tmp_path / "journal.sqlite3"),
        engine_factory=lambda port, journal, transform, settings: engine,  # type: ignore[arg-type,return-value]
        connector=login,
        start_path=tmp_path / "dicom",
        login=LoginRequest(url=sandbox.url, user="alice", password="alice"),
        auto_login=True,
    )
    async with app.run_test(size=(180, 50)) as pilot:
        await to_main(
            pilot,
        )
        await pilot.press("p")
        await until(
            pilot, lambda: isinstance(app.screen, PrearchiveScreen) and bool(app.screen.rows)
        )
        screen = app.screen
        assert isinstance(screen, PrearchiveScreen)
        assert {r.label for r in screen.rows.values()} == {
            "PIL_001_MR1",
            "PIL_900_MR1",
            "SA_004_MR1",
        }
        screen.set_filter(screen.filter.__class__(status="CONFLICT"))
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, ArchiveDialog))
        dialog = app.screen
        assert isinstance(dialog, ArchiveDialog)
        await until(pilot, lambda: "conflict" in str(dialog.query_one("#archive-preview").render()))
        dialog.query_one("#archive-label", Input).value = "PIL_900_MR2"
        await until(pilot, lambda: "new" in str(dialog.query_one("#archive-preview").render()))
        await pilot.press("ctrl+s")
        await until(pilot, lambda: bool(screen.last_results))
        assert screen.last_results[0].ok, screen.last_results[0].message
        labels = {e.label for e in await app.client.experiments("PILOT")}
        assert {"PIL_900_MR1", "PIL_900_MR2"} <= labels
        await until(pilot, lambda: not any(r.label == "PIL_900_MR1" for r in screen.rows.values()))
        await pilot.press("escape")
        assert not isinstance(app.screen, PrearchiveScreen)


class ClientApp(App[None]):
    """Minimal host with a real client, as the App provides it."""

    def __init__(self, client: Any, project: str | None = None) -> None:
        super().__init__()
        self.client = client
        self.project = project

    def on_mount(self) -> None:
        from xnat_tui.xnat.prearchive_ops import ClientTriageOps

        ops = ClientTriageOps(self.client)
        self.push_screen(PrearchiveScreen(ops, project=self.project, refresh_interval=0))


async def test_collaborator_sees_why_the_prearchive_is_closed_to_him(sandbox: Any) -> None:
    from tests.ui.fakes import until
    from xnat_tui.xnat.client import XnatClient
    from xnat_tui.xnat.credentials import Credentials

    async with XnatClient(Credentials(sandbox.url, "bob", "bob")) as client:
        app = ClientApp(client, project="PILOT")
        async with app.run_test(size=(160, 40)) as pilot:
            screen = screen_of(app)
            await until(pilot, lambda: bool(screen.last_error))
            status = screen.query_one("#prearchive-status", Static)
            text = str(status.render())
            assert "bob lacks access to the prearchive of project PILOT" in text
            assert status.has_class("-error")
            assert screen.check_action("archive", ()) is None  # nothing to act on


async def test_palette_offers_possible_actions_and_filters_that_show_in_the_bar() -> None:
    from xnat_tui.ui.widgets.prearchive_commands import PrearchiveCommands

    server = ScriptedServer()
    app = TriageApp(server)
    async with app.run_test(size=(180, 50)) as pilot:
        await settle(pilot)
        screen = screen_of(app)
        commands = {
            t: h.command for t, h in (await palette_entries(PrearchiveCommands(screen))).items()
        }
        assert "Archive / route selected sessions" in commands
        assert "Show only CONFLICT" in commands and "Show only project Unassigned" in commands
        commands["Show only CONFLICT"]()
        await pilot.pause()
        assert [r.label for r in screen.shown_rows] == ["S2"]
        assert screen.query_one("#prearchive-status-filter", Select).value == "CONFLICT"
        commands = {
            t: h.command for t, h in (await palette_entries(PrearchiveCommands(screen))).items()
        }
        commands["Clear filters"]()
        await pilot.pause()
        assert len(screen.shown_rows) == 4
        assert screen.query_one("#prearchive-status-filter", Select).is_blank()
