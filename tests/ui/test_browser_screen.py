"""Pilot tests of the server browser over a scripted source (lazy tree, filter, select,
actions from the one actions list)."""

from __future__ import annotations

from typing import Any

from textual.app import App
from textual.widgets import DataTable, Input

from tests.ui.fakes import until
from tests.ui.screen_text import palette_entries
from xnat_tui.ui.browser_actions import ACTIONS, BrowserAction
from xnat_tui.ui.screens.browser import BrowserCommands, BrowserScreen
from xnat_tui.workflow.browse import (
    ProjectNode,
    ScanNode,
    Selection,
    SessionNode,
    SubjectNode,
)


class Source:
    """Two projects; records each load so laziness can be asserted."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def projects(self) -> list[ProjectNode]:
        self.calls.append("projects")
        return [ProjectNode("PILOT", "Pilot study"), ProjectNode("STUDY_A", "Study A")]

    async def subjects(self, project: str) -> list[SubjectNode]:
        self.calls.append(f"subjects {project}")
        if project != "PILOT":
            return []
        return [SubjectNode("PILOT", "S1", "SUBJ_01"), SubjectNode("PILOT", "S2", "SUBJ_02")]

    async def sessions(self, project: str) -> list[SessionNode]:
        self.calls.append(f"sessions {project}")
        if project != "PILOT":
            return []
        return [
            SessionNode("PILOT", "E1", "SUBJ_01_MR1", "S1", "SUBJ_01", "2024-01-02", "MR"),
            SessionNode("PILOT", "E2", "SUBJ_01_MR2", "S1", "SUBJ_01", "2024-02-03", "MR"),
            SessionNode("PILOT", "E3", "SUBJ_02_CT1", "S2", "SUBJ_02", "2024-03-04", "CT"),
        ]

    async def scans(self, session: SessionNode) -> list[ScanNode]:
        self.calls.append(f"scans {session.id}")
        return [
            ScanNode(session.id, "1", "localizer", files=3, size=3000),
            ScanNode(session.id, "2", "T1w", files=176, size=92_000_000),
        ]


class BrowserApp(App[None]):
    def __init__(self, source: Source, actions: list[BrowserAction]) -> None:
        super().__init__()
        self.source = source
        self.actions_list = actions

    def on_mount(self) -> None:
        self.push_screen(BrowserScreen(self.source, self.actions_list))


LONG_LABEL = "SUBJ_01_" + "x" * 117


class LongLabel(Source):
    """SUBJ_01 under a 125-character label."""

    async def subjects(self, project: str) -> list[SubjectNode]:
        found = await super().subjects(project)
        return [
            SubjectNode(s.project, s.id, LONG_LABEL if s.id == "S1" else s.label) for s in found
        ]


class SlowScans(Source):
    """Scans listed only once ``release`` is set."""

    def __init__(self, release: Any) -> None:
        super().__init__()
        self.release = release

    async def scans(self, session: SessionNode) -> list[ScanNode]:
        await self.release.wait()
        return await super().scans(session)


class ModelApp(App[None]):
    """The browser over a given model (as the workbench reopens it)."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def on_mount(self) -> None:
        self.push_screen(BrowserScreen(actions=[], model=self.model))


def browser(app: App[None]) -> BrowserScreen:
    screen = app.screen
    assert isinstance(screen, BrowserScreen)
    return screen


def keys_of(screen: BrowserScreen) -> list[str]:
    table = screen.table
    return [str(table.coordinate_to_cell_key((i, 0)).row_key.value) for i in range(table.row_count)]


def cells(screen: BrowserScreen, key: str) -> list[str]:
    return [str(c) for c in screen.table.get_row(key)]


async def goto(pilot: Any, key: str) -> None:
    screen = browser(pilot.app)
    screen.table.move_cursor(row=keys_of(screen).index(key))
    await pilot.pause()


async def open_first_subject(pilot: Any) -> BrowserScreen:
    """Opens PILOT, then its subject SUBJ_01 (with the keys a user presses)."""
    screen = browser(pilot.app)
    await until(pilot, lambda: screen.table.row_count == 2)
    await pilot.press("enter")
    await until(pilot, lambda: "s:PILOT:S1" in keys_of(screen))
    await goto(pilot, "s:PILOT:S1")
    await pilot.press("right")
    await until(pilot, lambda: "e:PILOT:E1" in keys_of(screen))
    return screen


async def test_tree_loads_lazily_and_selects_sessions_and_scans() -> None:
    source = Source()
    picked: list[Selection] = []

    async def record(app: Any, selection: Selection) -> None:
        picked.append(selection)

    app = BrowserApp(source, [BrowserAction("d", "Download…", "test", record, "browser.dl")])
    async with app.run_test(size=(140, 40)) as pilot:
        screen = browser(app)
        await until(pilot, lambda: screen.table.row_count == 2)
        assert source.calls == ["projects"]  # nothing else until a project opens
        await pilot.press("enter")
        await until(pilot, lambda: "s:PILOT:S1" in keys_of(screen))
        assert "sessions PILOT" in source.calls and "subjects STUDY_A" not in source.calls
        assert cells(screen, "p:PILOT")[2] == "2 subj, 3 sess"
        await goto(pilot, "s:PILOT:S1")
        await pilot.press("right")
        await until(pilot, lambda: "e:PILOT:E1" in keys_of(screen))
        # Space on a subject selects all its sessions.
        await pilot.press("space")
        assert {s.id for s in screen.model.selection().sessions} == {"E1", "E2"}  # type: ignore[union-attr]
        # Open a session: its scans load; unselecting one scan leaves the other.
        await goto(pilot, "e:PILOT:E2")
        await pilot.press("enter")
        await until(pilot, lambda: "c:PILOT:E2:2" in keys_of(screen))
        assert "scans E2" in source.calls and "scans E1" not in source.calls
        assert cells(screen, "c:PILOT:E2:2")[2:4] == ["176 files", "92.0 MB"]
        await goto(pilot, "c:PILOT:E2:1")
        await pilot.press("space")
        selection = screen.model.selection()  # type: ignore[union-attr]
        by_id = {s.id: s for s in selection.sessions}
        assert by_id["E1"].scans == () and by_id["E2"].scans == ("2",)
        assert by_id["E2"].scan_types == ("T1w",) and by_id["E2"].subject_label == "SUBJ_01"
        assert selection.project == "PILOT" and selection.subjects == ("SUBJ_01",)
        await pilot.press("d")
        await until(pilot, lambda: bool(picked))
        assert picked[0] == selection


async def test_filter_is_type_ahead_and_keeps_ancestors() -> None:
    source = Source()
    app = BrowserApp(source, [])
    async with app.run_test(size=(140, 40)) as pilot:
        screen = browser(app)
        await until(pilot, lambda: screen.table.row_count == 2)
        await pilot.press("enter")
        await until(pilot, lambda: "s:PILOT:S1" in keys_of(screen))
        await pilot.press("slash")
        await pilot.press(*"ct1")
        # The CT session is found although its subject is closed; its ancestors show.
        assert keys_of(screen) == ["p:PILOT", "s:PILOT:S2", "e:PILOT:E3"]
        assert screen.current_key() == "e:PILOT:E3"
        await pilot.press("enter")  # back to the list
        assert screen.table.has_focus
        await pilot.press("space")
        assert [s.label for s in screen.model.selection().sessions] == ["SUBJ_02_CT1"]  # type: ignore[union-attr]


async def test_the_actions_are_offered_once_something_is_selected() -> None:
    """Nothing selected: their keys are dimmed in the footer and do nothing, and the
    palette does not offer them; a selection makes them live."""
    ran: list[Selection] = []

    async def record(app: Any, selection: Selection) -> None:
        ran.append(selection)

    app = BrowserApp(Source(), [BrowserAction("d", "Download…", "get", record, "browser.dl")])
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await open_first_subject(pilot)
        await pilot.press("d")
        await pilot.pause()
        assert ran == []
        assert not screen.active_bindings["d"].enabled
        assert list(await palette_entries(BrowserCommands(screen))) == []
        await goto(pilot, "e:PILOT:E1")
        await pilot.press("space")
        assert screen.active_bindings["d"].enabled
        assert list(await palette_entries(BrowserCommands(screen))) == ["Download…"]
        await pilot.press("d")
        await until(pilot, lambda: len(ran) == 1)


def test_download_is_the_first_action() -> None:
    assert ACTIONS[0].label == "Download…" and ACTIONS[0].key == "d"


async def test_b_on_the_workbench_opens_the_browser_and_the_palette_offers_it(
    tmp_path: Any,
) -> None:
    from tests.ui.fakes import make_app
    from xnat_tui.ui.commands import WorkbenchCommands
    from xnat_tui.ui.screens.main import MainScreen

    app, _, _ = make_app(tmp_path)
    opened: list[object] = []
    async with app.run_test(size=(140, 40)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen))
        entries = await palette_entries(WorkbenchCommands(app.screen))
        assert "Browse server" in entries
        original = app.push_screen

        def spy(screen: object, *args: Any, **kwargs: Any) -> Any:
            opened.append(screen)
            return original(screen, *args, **kwargs)  # type: ignore[arg-type]

        app.push_screen = spy  # type: ignore[method-assign]
        app.screen.query_one("#folder-tree").focus()
        await pilot.press("B")
        await pilot.pause()
        # The fake login has no XNAT client: the key says so instead of opening.
        if app.client is None:
            assert not opened
        else:
            assert isinstance(opened[0], BrowserScreen)


async def test_a_shared_session_shows_under_both_projects_through_a_filter() -> None:
    from tests.unit.workflow.test_browse_model import SharedSource

    app = BrowserApp(SharedSource(), [])
    async with app.run_test(size=(140, 40)) as pilot:
        screen = browser(app)
        await until(pilot, lambda: screen.table.row_count == 2)
        for key in ("p:PILOT", "s:PILOT:S1", "p:STUDY_A", "s:STUDY_A:S1"):
            await until(pilot, lambda k=key: k in keys_of(screen))
            await goto(pilot, key)
            await pilot.press("right")
        await until(pilot, lambda: "e:STUDY_A:E1" in keys_of(screen))
        await pilot.press("slash", *"mr1")
        assert {"e:PILOT:E1", "e:STUDY_A:E1"} <= set(keys_of(screen))
        await pilot.press("backspace", "backspace", "backspace")
        assert app.is_running and "e:PILOT:E1" in keys_of(screen)


async def test_a_row_shows_it_is_loading_while_it_loads() -> None:
    import asyncio

    release = asyncio.Event()

    app = BrowserApp(SlowScans(release), [])
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await open_first_subject(pilot)
        await goto(pilot, "e:PILOT:E1")
        await pilot.press("right")
        await until(pilot, lambda: "⧗" in cells(screen, "e:PILOT:E1")[1])
        release.set()
        await until(pilot, lambda: "c:PILOT:E1:1" in keys_of(screen))
        assert "▾" in cells(screen, "e:PILOT:E1")[1]


async def test_the_cursor_stays_where_it_was_moved_while_a_row_loaded() -> None:
    """Moved away from a row still loading, the cursor is not pulled back to it when
    the load ends: the next Space picks the row the user is on."""
    import asyncio

    release = asyncio.Event()
    app = BrowserApp(SlowScans(release), [])
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await open_first_subject(pilot)
        await goto(pilot, "e:PILOT:E1")
        await pilot.press("enter", "down", "down")
        await until(pilot, lambda: "⧗" in cells(screen, "e:PILOT:E1")[1])
        assert screen.current_key() == "s:PILOT:S2"
        release.set()
        await until(pilot, lambda: "c:PILOT:E1:1" in keys_of(screen))
        assert screen.current_key() == "s:PILOT:S2"
        await pilot.press("space")
        assert screen.model is not None
        assert [s.id for s in screen.model.selection().sessions] == ["E3"]


async def test_an_action_still_running_survives_another_and_leaving_the_browser() -> None:
    """A download being planned is not dropped when a second starts or Esc is pressed."""
    import asyncio

    release = asyncio.Event()
    finished: list[tuple[str, ...]] = []

    async def slow(app: Any, selection: Selection) -> None:
        await release.wait()  # the server is still listing files
        finished.append(tuple(s.id for s in selection.sessions))

    app = BrowserApp(Source(), [BrowserAction("d", "Download…", "get", slow, "browser.dl")])
    async with app.run_test(size=(140, 40)) as pilot:
        await open_first_subject(pilot)
        await goto(pilot, "e:PILOT:E1")
        await pilot.press("space", "d")
        await goto(pilot, "e:PILOT:E1")
        await pilot.press("space")  # unpicked
        await goto(pilot, "e:PILOT:E2")
        await pilot.press("space", "d")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, BrowserScreen))
        release.set()
        await until(pilot, lambda: len(finished) == 2)
        assert sorted(finished) == [("E1",), ("E2",)]


async def test_arrows_open_and_close_rows_however_long_a_label_is() -> None:
    app = BrowserApp(LongLabel(), [])
    async with app.run_test(size=(80, 30)) as pilot:
        screen = browser(app)
        await until(pilot, lambda: screen.table.row_count == 2)
        await pilot.press("right")
        await until(pilot, lambda: "s:PILOT:S1" in keys_of(screen))
        await goto(pilot, "s:PILOT:S1")
        await pilot.press("right")  # opens the subject, not a sideways scroll
        await until(pilot, lambda: "e:PILOT:E1" in keys_of(screen))
        assert screen.table.scroll_x == 0
        name = cells(screen, "s:PILOT:S1")[1]
        assert name.endswith("…") and len(name) <= 80 - 50
        await pilot.press("left")
        await until(pilot, lambda: "e:PILOT:E1" not in keys_of(screen))
        # In the filter box the arrows move its cursor.
        await pilot.press("slash", *"subj")
        box = screen.query_one("#browser-filter", Input)
        await pilot.press("left", "left")
        assert box.cursor_position == 2 and box.has_focus


async def test_enter_is_listed_under_the_browser_and_opens_and_closes() -> None:
    from xnat_tui.ui.screens.help import collect_keys

    app = BrowserApp(Source(), [])
    async with app.run_test(size=(140, 40)) as pilot:
        screen = browser(app)
        await until(pilot, lambda: screen.table.row_count == 2)
        rows = {r.binding_id: r for r in collect_keys(screen)}
        assert rows["browser.open"].where == "Browser" and rows["browser.open"].keys == "⏎"
        await pilot.press("enter")
        await until(pilot, lambda: "s:PILOT:S1" in keys_of(screen))
        await goto(pilot, "p:PILOT")
        await pilot.press("enter")
        await until(pilot, lambda: keys_of(screen) == ["p:PILOT", "p:STUDY_A"])


async def test_the_browser_reopens_as_it_was_left_and_r_reads_it_again() -> None:
    from xnat_tui.workflow.browse import BrowseModel

    source = Source()
    model = BrowseModel(source)

    app = ModelApp(model)
    async with app.run_test(size=(140, 40)) as pilot:
        screen = browser(app)
        await until(pilot, lambda: screen.table.row_count == 2)
        await pilot.press("enter")
        await until(pilot, lambda: "s:PILOT:S2" in keys_of(screen))
        await goto(pilot, "s:PILOT:S2")
        await pilot.press("space")  # SUBJ_02's session; the cursor moves on
        left_on = screen.current_key()
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, BrowserScreen))
        calls = list(source.calls)
        await app.push_screen(BrowserScreen(actions=[], model=model))
        again = browser(app)
        await until(pilot, lambda: again.table.row_count == 4)
        assert source.calls == calls  # nothing read again
        assert again.current_key() == left_on
        assert [s.id for s in model.selection().sessions] == ["E3"]
        assert "☑" in cells(again, "s:PILOT:S2")[0]
        await pilot.press("r")
        await until(pilot, lambda: len(source.calls) == len(calls) + 3)
        assert source.calls[len(calls) :] == ["projects", "subjects PILOT", "sessions PILOT"]
        await until(pilot, lambda: again.table.row_count == 4)
        assert again.current_key() == left_on


async def test_keys_typed_ahead_apply_to_the_row_the_keys_before_them_reached() -> None:
    """Down then → in one burst (a fast typist, a paste, a slow link): → opens the row
    Down moved to, not the one the cursor was on when the burst arrived."""
    from textual import events

    app = BrowserApp(Source(), [])
    async with app.run_test(size=(140, 40)) as pilot:
        screen = browser(app)
        await until(pilot, lambda: screen.table.row_count == 2)
        await pilot.press("enter")
        await until(pilot, lambda: "s:PILOT:S1" in keys_of(screen))
        for key in ("down", "right", "down", "down", "down", "enter"):
            app.post_message(events.Key(key, None))
        await until(pilot, lambda: "e:PILOT:E3" in keys_of(screen))
        assert screen.model is not None
        assert screen.model.expanded == {"p:PILOT", "s:PILOT:S1", "s:PILOT:S2"}


async def test_leaving_during_a_load_leaves_the_row_closed_and_it_loads_when_opened() -> None:
    import asyncio

    from xnat_tui.workflow.browse import BrowseModel

    release = asyncio.Event()

    model = BrowseModel(SlowScans(release))

    app = ModelApp(model)
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await open_first_subject(pilot)
        await goto(pilot, "e:PILOT:E1")
        await pilot.press("right")
        await until(pilot, lambda: "⧗" in cells(screen, "e:PILOT:E1")[1])
        await pilot.press("escape")  # left while the scans load
        await until(pilot, lambda: not isinstance(app.screen, BrowserScreen))
        release.set()
        await app.push_screen(BrowserScreen(actions=[], model=model))
        again = browser(app)
        await until(pilot, lambda: "e:PILOT:E1" in keys_of(again))
        assert "▸" in cells(again, "e:PILOT:E1")[1]  # closed, not open and empty
        assert again.current_key() == "e:PILOT:E1"
        await pilot.press("right")
        await until(pilot, lambda: "c:PILOT:E1:1" in keys_of(again))


async def test_narrowing_the_terminal_keeps_every_column_in_sight() -> None:
    app = BrowserApp(LongLabel(), [])
    async with app.run_test(size=(140, 30)) as pilot:
        screen = browser(app)
        await until(pilot, lambda: screen.table.row_count == 2)
        await pilot.press("enter")
        await until(pilot, lambda: "s:PILOT:S1" in keys_of(screen))
        await goto(pilot, "s:PILOT:S2")
        await pilot.resize_terminal(90, 30)
        await until(pilot, lambda: len(cells(screen, "s:PILOT:S1")[1]) <= 90 - 58)
        await pilot.pause()
        widths = sum(c.get_render_width(screen.table) for c in screen.table.columns.values())
        assert widths <= 90 and screen.current_key() == "s:PILOT:S2"


async def test_left_closes_a_subject_the_filter_opened() -> None:
    app = BrowserApp(Source(), [])
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await open_first_subject(pilot)
        await goto(pilot, "s:PILOT:S1")
        await pilot.press("left")  # closed: the filter below opens it for its match
        await pilot.press("slash", *"mr2", "enter")
        await until(pilot, lambda: "e:PILOT:E2" in keys_of(screen))
        await goto(pilot, "s:PILOT:S1")
        await pilot.press("left")
        await until(pilot, lambda: "e:PILOT:E2" not in keys_of(screen))
        assert screen.current_key() == "s:PILOT:S1"
        await pilot.press("right")
        await until(pilot, lambda: "e:PILOT:E2" in keys_of(screen))


async def test_the_key_list_shows_each_keys_id_beside_long_descriptions() -> None:
    """The Id is what a remap names: seen at 130 columns, it was pushed out of sight."""
    from xnat_tui.ui.screens.help import HelpScreen

    async def nothing(app: Any, selection: Selection) -> None:
        pass

    wordy = "Download the selected sessions into a folder, " * 3
    app = BrowserApp(Source(), [BrowserAction("d", "Download…", wordy, nothing, "browser.dl")])
    async with app.run_test(size=(130, 40)) as pilot:
        screen = browser(app)
        await until(pilot, lambda: screen.table.row_count == 2)
        app.push_screen(HelpScreen(screen))
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.pause()
        table = app.screen.query_one("#help-table", DataTable)
        left = 0
        for column in table.ordered_columns:
            width = column.get_render_width(table)
            if column.label.plain == "Id":
                assert left + width <= table.scrollable_content_region.width
            left += width
        assert "browser.dl" in {str(table.get_row_at(i)[2]) for i in range(table.row_count)}
