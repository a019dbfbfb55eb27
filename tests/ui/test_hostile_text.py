"""External text is data: hostile DICOM values and server replies are shown, never obeyed.

Every value here would once have crashed the app (``[/MPRAGE]``: MarkupError), lost text
(``[b1000]`` parsed as a style) or driven the terminal (ESC ] 0 ; … BEL retitles it).
The assertions are on what the user sees: the screen as text and the toasts.
"""

from __future__ import annotations

from textual.message import Message
from textual.widgets import Input

from tests.ui.fakes import make_app, make_session, scanned, until, with_project
from tests.ui.screen_text import notifications, screen_text
from tests.ui.test_prearchive_screen import ScriptedServer, TriageApp, entry, settle
from xnat_tui.transfer.types import JobState
from xnat_tui.ui.screens.upload_confirm import UploadConfirmScreen

ESC = "\x1b"
OSC = "\x1b]0;pwned\x07"
SERIES = (
    ("T1 [/MPRAGE]", 1),
    ("ep2d_diff [b1000]", 1),
    ("[b]bold[/b]", 1),
    ("Mu\u0308ller 山田", 1),
    ("x" * 200, 1),
    (f"nul\x00{OSC}", 1),
)


def hostile_session():
    session = make_session("P001", series=SERIES, patient_name=f"D{OSC}[/x]")
    session.study_description = "[/MPRAGE] study \udcff"
    return session


def assert_no_raw_controls(text: str) -> None:
    for ch in (ESC, "\x07", "\x00", "\udcff"):
        assert ch not in text, f"{ch!r} reached the screen"


async def test_workbench_shows_hostile_dicom_values_as_they_are(tmp_path):
    app, _, _ = make_app(tmp_path, sessions=[hostile_session()])
    async with app.run_test(size=(160, 50)) as pilot:
        screen = await scanned(pilot, 1)
        text = screen_text(app)
        assert_no_raw_controls(text)
        # Sessions table: the name with its escape shown (clipped to the column).
        assert "D␛]0;pwned" in text
        # Scans table: brackets are text, not markup.
        assert "T1 [/MPRAGE]" in text
        assert "ep2d_diff [b1000]" in text
        assert "[b]bold[/b]" in text
        assert "nul␀␛]0;pwned␇" in text
        assert "xxxxxxxxxxxxxxxxxx" in text  # the 200-character value, cut by its column
        # Labels pane: a label with markup and an escape, typed or routed in.
        await with_project(pilot, screen, "PILOT")
        field = screen.query_one("#session", Input)
        field.value = f"T1 [/MPRAGE]{ESC}"
        await pilot.pause()
        text = screen_text(app)
        assert_no_raw_controls(text)
        assert "[/MPRAGE]" in text
        assert app.is_running


async def test_bulk_screen_shows_hostile_values(tmp_path):
    app, _, _ = make_app(tmp_path, sessions=[hostile_session()])
    async with app.run_test(size=(160, 50)) as pilot:
        screen = await scanned(pilot, 1)
        await with_project(pilot, screen, "PILOT")
        await pilot.press("b")
        await until(pilot, lambda: type(app.screen).__name__ == "BulkScreen")
        await pilot.pause()
        text = screen_text(app)
        assert_no_raw_controls(text)
        assert "D␛]0;pwned␇[/x]" in text


async def test_confirm_and_server_messages_in_toasts_and_transfers(tmp_path):
    app, _, engine = make_app(tmp_path, sessions=[hostile_session()])
    seen: list[Message] = []
    async with app.run_test(size=(160, 50), message_hook=seen.append) as pilot:
        screen = await scanned(pilot, 1)
        await with_project(pilot, screen, "PILOT")
        await pilot.press("2", "u")
        await until(pilot, lambda: isinstance(app.screen, UploadConfirmScreen))
        assert_no_raw_controls(screen_text(app))
        await pilot.press("y")
        await until(pilot, lambda: "job1" in app.transfers.jobs)
        # The server's reply quotes the label and carries markup and escapes.
        engine.set_state("job1", JobState.FAILED, f"server said [/x] {OSC} [b]no[/b]\x00")
        await until(pilot, lambda: any(n.severity == "error" for n in notifications(seen)))
        toast = next(n for n in notifications(seen) if n.severity == "error")
        assert "server said [/x] ␛]0;pwned␇ [b]no[/b]␀" in toast.message
        assert not toast.markup
        await pilot.pause(0.3)
        text = screen_text(app)
        assert_no_raw_controls(text)
        assert "server said [/x]" in text
        assert app.is_running


def hostile_server() -> ScriptedServer:
    server = ScriptedServer()
    server.rows = [
        entry("PILOT", "S1[/x]", "ERROR", subject=f"SUB{OSC}"),
        entry("PILOT", "S2", "CONFLICT"),
    ]

    async def last_log(url: str) -> str:
        return f"Archive failed: [/MPRAGE] {OSC}\x00 [b]x[/b]"

    server.last_log = last_log  # type: ignore[method-assign]
    return server


async def test_prearchive_labels_and_logs_from_the_server_are_shown_as_they_are():
    app = TriageApp(hostile_server())
    async with app.run_test(size=(180, 50)) as pilot:
        await settle(pilot, 0.3)
        text = screen_text(app)
        assert_no_raw_controls(text)
        assert "S1[/x]" in text
        assert "SUB␛]0;pwned␇" in text
        assert "Archive failed: [/MPRAGE] ␛]0;pwned␇␀ [b]x[/b]" in text
        assert app.is_running
