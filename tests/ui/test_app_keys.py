"""Help lists every key, keymap remapping, command palette, log screen, bulk mode."""

from __future__ import annotations

from textual.command import CommandList, CommandPalette

from tests.ui.fakes import (
    checks_done,
    make_app,
    make_session,
    scanned,
    to_main,
    until,
    with_project,
)
from tests.ui.screen_text import palette_entries
from xnat_tui.config import Config
from xnat_tui.ui.commands import WorkbenchCommands
from xnat_tui.ui.screens.bulk import BulkScreen
from xnat_tui.ui.screens.help import HelpScreen
from xnat_tui.ui.screens.log import LogScreen
from xnat_tui.ui.screens.main import MainScreen
from xnat_tui.ui.widgets.folders import FoldersPane
from xnat_tui.ui.widgets.labels import LabelsPane
from xnat_tui.ui.widgets.scans import ScansPane
from xnat_tui.ui.widgets.sessions import SessionsPane
from xnat_tui.ui.widgets.transfers import TransfersPane


def all_binding_ids() -> set[str]:
    from xnat_tui.ui.app import XnatTuiApp

    ids = set()
    for cls in (
        XnatTuiApp,
        MainScreen,
        FoldersPane,
        SessionsPane,
        ScansPane,
        LabelsPane,
        TransfersPane,
    ):
        for binding in cls.BINDINGS:
            assert binding.id, f"{cls.__name__} binding {binding.key} has no id"
            ids.add(binding.id)
    return ids


async def test_every_binding_has_an_id_and_help_lists_it(tmp_path):
    app, _, _ = make_app(tmp_path, sessions=[make_session("P001")])
    async with app.run_test(size=(120, 40)) as pilot:
        await to_main(pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        listed = {row.binding_id for row in app.screen.rows}
        missing = all_binding_ids() - listed
        assert not missing, missing
        table = app.screen.query_one("#help-table")
        assert table.row_count == len(app.screen.rows)
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MainScreen))


async def test_keymap_from_config_remaps_and_help_shows_it(tmp_path):
    cfg = Config(keymap={"main.upload": "ctrl+u", "folders.scan": "f5"})
    app, _, _ = make_app(tmp_path, sessions=[make_session("P001")], config=cfg)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await to_main(pilot)
        await pilot.press("s")  # the old key no longer scans
        await pilot.pause(0.1)
        assert len(app.workbench) == 0
        await pilot.press("f5")
        await until(pilot, lambda: len(app.workbench) == 1)
        await with_project(pilot, screen, "PILOT")
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        keys = {row.binding_id: row.keys for row in app.screen.rows}
        assert keys["main.upload"] == "^u" and keys["folders.scan"] == "f5"


async def test_palette_offers_what_fits_the_state(tmp_path):
    app, _, _ = make_app(tmp_path, sessions=[make_session("P001")])
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await scanned(pilot, 1)
        provider = WorkbenchCommands(screen)
        names = list(await palette_entries(provider))
        assert "Upload selected sessions" not in names  # no project yet
        assert "Bulk label sessions" in names and "Use project PILOT (Pilot)" in names
        await with_project(pilot, screen, "PILOT")
        names = list(await palette_entries(provider))
        assert "Upload selected sessions" in names
        assert "Pause all transfers" not in names
        await pilot.press("ctrl+p")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"bulk label")
        # The palette searches in a worker: enter only acts once a match is highlighted.
        commands = app.screen.query_one(CommandList)
        await until(
            pilot,
            lambda: (
                commands.highlighted is not None
                and "Bulk" in str(commands.get_option_at_index(commands.highlighted).prompt)
            ),
        )
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, BulkScreen))


async def test_log_screen_shows_what_happened(tmp_path):
    app, _, _ = make_app(tmp_path, sessions=[make_session("P001")])
    async with app.run_test(size=(120, 40)) as pilot:
        await scanned(pilot, 1)
        await pilot.press("ctrl+l")
        await until(pilot, lambda: isinstance(app.screen, LogScreen))
        log = app.screen.query_one("#log-view")
        await until(pilot, lambda: any("scan done" in str(line.text) for line in log.lines))
        assert any("logged in as alice" in str(line.text) for line in log.lines)
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MainScreen))


async def test_bulk_patterns_validation_and_queue(tmp_path):
    sessions = [
        make_session("P001"),
        make_session("P002"),
        make_session("P003", study_date="20240301"),
    ]
    app, _, engine = make_app(tmp_path, sessions=sessions)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await scanned(pilot, 3)
        await with_project(pilot, screen, "PILOT")
        await pilot.press("b")
        await until(pilot, lambda: isinstance(app.screen, BulkScreen))
        bulk = app.screen
        pattern = bulk.query_one("#session-pattern")
        pattern.value = "{subject}_{StudyDate}"
        bulk.query_one("#subject-pattern").value = "S_{PatientID}"
        await pilot.press("ctrl+a")
        labels = sorted(i.label for i in app.workbench.items.values())
        assert labels == ["S_P001_20240115", "S_P002_20240115", "S_P003_20240301"]
        # The states must come from the check of the new labels, not the earlier ones.
        await checks_done(pilot)
        assert all(i.state == "new" for i in app.workbench.items.values())
        # A broken pattern is refused, not applied.
        pattern.value = "{subject"
        await pilot.press("ctrl+a")
        assert sorted(i.label for i in app.workbench.items.values()) == labels
        # Fix one row by hand: invalid characters are flagged on that row only.
        bulk.query_one("#bulk-table").focus()
        bulk.query_one("#row-session").value = "bad label"
        await until(
            pilot, lambda: sum(i.state == "invalid" for i in app.workbench.items.values()) == 1
        )
        assert bulk.check_action("queue", ()) is True
        bulk.query_one("#row-session").value = "S_P001_fixed"
        await until(
            pilot, lambda: any(i.label == "S_P001_fixed" for i in app.workbench.items.values())
        )
        await checks_done(pilot)
        assert all(i.state == "new" for i in app.workbench.items.values())
        await pilot.press("ctrl+u")
        await until(pilot, lambda: app.screen.__class__.__name__ == "UploadConfirmScreen")
        summary = str(app.screen.query_one("#plan-summary").render())
        assert "3 session(s)" in summary
        await pilot.press("y")
        await until(pilot, lambda: len(engine.submitted) == 3)


async def test_bulk_respects_the_projects_restriction(tmp_path):
    sessions = [make_session("P001"), make_session("P002")]
    app, _, _ = make_app(tmp_path, sessions=sessions)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await scanned(pilot, 2)
        await with_project(pilot, screen, "STUDY_A")  # bulk upload not allowed, P001/P002 exist
        await pilot.press("b")
        await until(pilot, lambda: isinstance(app.screen, BulkScreen))
        await until(
            pilot,
            lambda: (
                "does not allow bulk uploads" in str(app.screen.query_one("#bulk-status").render())
            ),
        )
        assert app.screen.check_action("queue", ()) is None


async def test_anonymization_preview_key_sets_the_profile(tmp_path, dicom_factory):
    from xnat_tui.dicom.scan import scan_all
    from xnat_tui.dicom.synthetic import SeriesSpec

    study = dicom_factory(tmp_path / "in", patient_id="P042", series=[SeriesSpec("MR", 1, "T1", 2)])
    session = scan_all([study.paths[0].parent.parent], use_cache=False).sessions[0]
    app, _, _ = make_app(tmp_path, sessions=[session])
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await scanned(pilot, 1)
        await with_project(pilot, screen, "PILOT")
        assert app.uploads is not None
        assert app.uploads.anonymization("PILOT").profile == "none"
        await pilot.press("2", "A")
        await until(pilot, lambda: app.screen.__class__.__name__ == "AnonPreviewScreen")
        preview = app.screen
        await until(pilot, lambda: getattr(preview, "current", None) is not None)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.screen is screen)
        assert app.uploads.anonymization("PILOT").profile in ("basic", "xnat")
