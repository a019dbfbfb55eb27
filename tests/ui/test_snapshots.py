"""A few pictures of the screens at fixed sizes (no clock, no blinking cursor).

Regenerate after an intended layout change with
``pytest tests/ui/test_snapshots.py --snapshot-update`` and look at the report.
"""

from __future__ import annotations

from tests.ui.fakes import make_app, make_session, scanned, until, with_project
from xnat_tui.ui.screens.upload_confirm import UploadConfirmScreen


def sessions():
    return [
        make_session(
            "P001", uid="1.2.3.1", series=(("localizer", 2), ("T1_MPRAGE", 8), ("FLAIR", 6))
        ),
        make_session("P002", uid="1.2.3.2", modality="CT", study_date="20240220"),
    ]


def snapshot_app(tmp_path):
    app, _, _ = make_app(tmp_path, sessions=sessions())
    # Toasts have timers of their own; the pictures are about the panes.
    app.notify = lambda *a, **k: None  # type: ignore[method-assign]
    return app


def test_main_screen_80x24(snap_compare, tmp_path):
    async def run_before(pilot):
        screen = await scanned(pilot, 2)
        await with_project(pilot, screen, "STUDY_B")
        await pilot.press("2")

    assert snap_compare(snapshot_app(tmp_path), terminal_size=(80, 24), run_before=run_before)


def test_main_screen_120x40(snap_compare, tmp_path):
    async def run_before(pilot):
        screen = await scanned(pilot, 2)
        await with_project(pilot, screen, "PILOT")
        await pilot.press("2", "a")

    assert snap_compare(snapshot_app(tmp_path), terminal_size=(120, 40), run_before=run_before)


def test_upload_confirmation(snap_compare, tmp_path):
    async def run_before(pilot):
        screen = await scanned(pilot, 2)
        await with_project(pilot, screen, "PILOT")
        await pilot.press("2", "a", "u")
        await until(pilot, lambda: isinstance(pilot.app.screen, UploadConfirmScreen))

    assert snap_compare(snapshot_app(tmp_path), terminal_size=(100, 30), run_before=run_before)
