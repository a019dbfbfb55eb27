"""The browser's model without Textual: lazy loads, filter, type-ahead, selection."""

from __future__ import annotations

import asyncio

import pytest

from tests.ui.test_browser_screen import Source
from xnat_tui.workflow.browse import BrowseModel, Kind, SessionNode, SubjectNode


def loaded() -> tuple[BrowseModel, Source]:
    source = Source()
    model = BrowseModel(source)

    async def load() -> None:
        await model.load_projects()
        model.toggle_expand("p:PILOT")
        await model.load("p:PILOT")
        model.toggle_expand("e:PILOT:E1")
        await model.load("e:PILOT:E1")

    asyncio.run(load())
    return model, source


def test_each_level_loads_once_and_only_when_opened() -> None:
    model, source = loaded()
    assert source.calls == ["projects", "subjects PILOT", "sessions PILOT", "scans E1"]
    assert not model.needs_load("p:PILOT") and model.needs_load("p:STUDY_A")
    assert [s.sessions for s in model.subjects["PILOT"]] == [2, 1]


def test_filter_keeps_the_ancestors_of_a_match_and_jump_finds_it() -> None:
    model, _ = loaded()
    model.filter_text = "ct1"
    assert [r.key for r in model.rows()] == ["p:PILOT", "s:PILOT:S2", "e:PILOT:E3"]
    assert model.jump("ct1") == 2 and model.jump("subj_02") == 1
    model.filter_text = ""
    assert model.jump("zzz") is None


def test_selection_is_typed_with_partial_sessions() -> None:
    model, _ = loaded()
    model.toggle("s:PILOT:S1")
    model.toggle("c:PILOT:E1:1")  # unselect one scan of E1: E1 keeps scan 2 only
    selection = model.selection()
    assert selection.project == "PILOT" and selection.subjects == ("SUBJ_01",)
    by_id = {s.id: s for s in selection.sessions}
    assert by_id["E1"].scans == ("2",) and by_id["E2"].scans == ()
    model.toggle_expand("s:PILOT:S1")
    marks = {r.key: r.mark for r in model.rows() if r.kind is not Kind.PROJECT}
    assert marks["e:PILOT:E1"] == "◐" and marks["s:PILOT:S1"] == "◐"
    assert marks["c:PILOT:E1:1"] == "☐"
    model.toggle("c:PILOT:E1:1")  # both scans again: the whole session
    assert model.selection().sessions[0].scans == ()
    assert "2 session(s) of 1 subject(s) in PILOT" == model.selection().describe()


class SharedSource(Source):
    """PILOT's E1 is also shared into STUDY_A, under another label there."""

    async def subjects(self, project: str) -> list[SubjectNode]:
        if project == "STUDY_A":
            return [SubjectNode("STUDY_A", "S1", "SHARED_SUBJ")]
        return await super().subjects(project)

    async def sessions(self, project: str) -> list[SessionNode]:
        if project == "STUDY_A":
            return [SessionNode("STUDY_A", "E1", "SHARED_MR1", "S1", "SHARED_SUBJ", "", "MR")]
        return await super().sessions(project)


async def open_keys(model: BrowseModel, *keys: str) -> None:
    """The projects listed, then each key opened (and loaded) in turn, as a user would."""
    await model.load_projects()
    for key in keys:
        model.toggle_expand(key)
        if model.needs_load(key):
            await model.load(key)


def open_both(model: BrowseModel) -> None:
    asyncio.run(
        open_keys(
            model,
            *("p:PILOT", "s:PILOT:S1", "p:STUDY_A", "s:STUDY_A:S1"),
            *("e:PILOT:E1", "e:STUDY_A:E1"),
        )
    )


def test_a_session_shared_into_two_projects_has_a_row_under_each() -> None:
    model = BrowseModel(SharedSource())
    open_both(model)
    keys = [r.key for r in model.rows()]
    assert len(keys) == len(set(keys))  # the table refuses a key twice
    assert {"e:PILOT:E1", "e:STUDY_A:E1", "c:PILOT:E1:2", "c:STUDY_A:E1:2"} <= set(keys)
    # Picked under STUDY_A: that project's label, and not ticked under PILOT.
    model.toggle("e:STUDY_A:E1")
    selection = model.selection()
    assert selection.project == "STUDY_A"
    assert [(s.project, s.label) for s in selection.sessions] == [("STUDY_A", "SHARED_MR1")]
    marks = {r.key: r.mark for r in model.rows()}
    assert marks["e:STUDY_A:E1"] == "☑" and marks["c:STUDY_A:E1:1"] == "☑"
    assert marks["e:PILOT:E1"] == "☐" and marks["c:PILOT:E1:1"] == "☐"
    # The same session under PILOT: the selection moves there.
    assert model.toggle("c:PILOT:E1:2") == "selection moved to project PILOT"
    assert [(s.label, s.scans) for s in model.selection().sessions] == [("SUBJ_01_MR1", ("2",))]


def test_space_on_a_project_row_keeps_the_selection() -> None:
    model, _ = loaded()
    model.toggle("e:PILOT:E1")
    note = model.toggle("p:STUDY_A")
    assert note.startswith("open the project")
    assert [s.id for s in model.selection().sessions] == ["E1"]


def test_a_subject_selected_under_a_filter_takes_only_the_sessions_shown() -> None:
    model, _ = loaded()
    model.filter_text = "mr2"  # SUBJ_01 shows for its session SUBJ_01_MR2 only
    assert "e:PILOT:E1" not in [r.key for r in model.rows()]
    model.toggle("s:PILOT:S1")
    assert [s.label for s in model.selection().sessions] == ["SUBJ_01_MR2"]
    model.clear_selection()
    model.filter_text = "subj_01"  # the subject itself matches: all of its sessions
    model.toggle("s:PILOT:S1")
    assert [s.label for s in model.selection().sessions] == ["SUBJ_01_MR1", "SUBJ_01_MR2"]


def test_reload_reads_what_was_open_again_and_drops_what_is_gone() -> None:
    class Changing(Source):
        gone = False

        async def sessions(self, project: str) -> list[SessionNode]:
            found = await super().sessions(project)
            if self.gone:  # E1 deleted (moved away), E4 copied in
                found = [e for e in found if e.id != "E1"]
                found.append(SessionNode("PILOT", "E4", "SUBJ_01_MR4", "S1", "SUBJ_01"))
            return found

    source = Changing()
    model = BrowseModel(source)

    async def go() -> None:
        await open_keys(model, "p:PILOT", "s:PILOT:S1", "e:PILOT:E1", "e:PILOT:E2")
        model.toggle("e:PILOT:E1")
        model.toggle("e:PILOT:E2")
        source.gone = True
        source.calls.clear()
        await model.reload()

    asyncio.run(go())
    assert source.calls == ["projects", "subjects PILOT", "sessions PILOT", "scans E2"]
    keys = [r.key for r in model.rows()]
    assert "e:PILOT:E4" in keys and "e:PILOT:E1" not in keys and "c:PILOT:E2:1" in keys
    assert model.expanded == {"p:PILOT", "s:PILOT:S1", "e:PILOT:E2"}
    assert [s.id for s in model.selection().sessions] == ["E2"]


def test_a_session_shared_without_its_subject_still_has_a_subject_row() -> None:
    class Alone(SharedSource):
        async def subjects(self, project: str) -> list[SubjectNode]:
            return [] if project == "STUDY_A" else await super().subjects(project)

    model = BrowseModel(Alone())
    asyncio.run(open_keys(model, "p:STUDY_A", "s:STUDY_A:S1"))
    rows = {r.key: r for r in model.rows()}
    assert rows["s:STUDY_A:S1"].name == "SHARED_SUBJ" and rows["s:STUDY_A:S1"].count == "1 sess"
    assert "e:STUDY_A:E1" in rows


def test_a_subject_picked_under_a_filter_matching_a_scan_takes_that_session() -> None:
    model, _ = loaded()  # E1's scans are loaded and open
    model.toggle_expand("s:PILOT:S1")
    model.filter_text = "t1w"  # only a scan's type matches
    assert "c:PILOT:E1:2" in [r.key for r in model.rows()]
    model.toggle("s:PILOT:S1")
    assert [s.label for s in model.selection().sessions] == ["SUBJ_01_MR1"]


class Flaky(SharedSource):
    """STUDY_A's sessions cannot be listed once ``fail`` is set."""

    fail = False

    async def sessions(self, project: str) -> list[SessionNode]:
        if self.fail and project == "STUDY_A":
            raise ConnectionError("timed out")
        return await super().sessions(project)


def test_reload_reads_the_other_rows_past_one_that_fails() -> None:
    source = Flaky()
    model = BrowseModel(source)

    async def go() -> None:
        await open_keys(model, "p:STUDY_A", "p:PILOT", "s:PILOT:S1", "e:PILOT:E1")
        source.fail = True
        with pytest.raises(RuntimeError, match=r"1 row\(s\) could not be read again"):
            await model.reload()

    asyncio.run(go())
    assert model.expanded == {"p:PILOT", "s:PILOT:S1", "e:PILOT:E1"}
    assert "timed out" in model.errors["p:STUDY_A"]


def test_reload_keeps_the_picks_of_a_project_whose_row_is_closed() -> None:
    model = BrowseModel(Source())

    async def go() -> None:
        await open_keys(model, "p:PILOT")
        model.toggle("e:PILOT:E2")
        model.toggle_expand("p:PILOT")  # closed; E2 stays picked
        await model.reload()

    asyncio.run(go())
    assert [s.id for s in model.selection().sessions] == ["E2"]


def test_a_subject_without_sessions_says_so_and_leaves_the_selection_alone() -> None:
    class WithEmpty(Source):
        async def subjects(self, project: str) -> list[SubjectNode]:
            found = await super().subjects(project)
            return [*found, SubjectNode("PILOT", "S3", "SUBJ_03")] if project == "PILOT" else []

    model = BrowseModel(WithEmpty())

    async def go() -> None:
        await model.load_projects()
        await open_keys(model, "p:PILOT")

    asyncio.run(go())
    model.toggle("e:PILOT:E3")
    assert model.toggle("s:PILOT:S3") == "SUBJ_03 has no sessions to select"
    assert [s.id for s in model.selection().sessions] == ["E3"]


def test_a_subject_the_filter_opened_can_be_closed_and_opened_again() -> None:
    model, _ = loaded()
    model.filter_text = "mr2"  # SUBJ_01 is shown open for its session SUBJ_01_MR2
    assert model.is_open("s:PILOT:S1") and "e:PILOT:E2" in [r.key for r in model.rows()]
    assert model.toggle_expand("s:PILOT:S1") is False
    rows = {r.key: r for r in model.rows()}
    assert "e:PILOT:E2" not in rows and not rows["s:PILOT:S1"].expanded
    assert model.toggle_expand("s:PILOT:S1") is True
    assert "e:PILOT:E2" in [r.key for r in model.rows()]
    model.toggle_expand("s:PILOT:S1")
    model.filter_text = "subj_01_mr"  # another filter opens it for its matches again
    assert model.is_open("s:PILOT:S1")


def test_is_open_says_what_the_rows_show_under_any_filter() -> None:
    model, _ = loaded()
    model.toggle_expand("s:PILOT:S2")
    for text in ("", "mr2", "subj_01", "ct1", "pilot", "nothing"):
        model.filter_text = text
        for row in model.rows():
            assert model.is_open(row.key) is row.expanded, (text, row.key)
    model.filter_text = "mr2"
    model.toggle_expand("s:PILOT:S1")  # closed under this filter
    assert [model.is_open(r.key) for r in model.rows()] == [r.expanded for r in model.rows()]
