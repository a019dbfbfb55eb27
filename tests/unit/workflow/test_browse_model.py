"""The browser's model without Textual: lazy loads, filter, type-ahead, selection."""

from __future__ import annotations

import asyncio

from tests.ui.test_browser_screen import Source
from xnat_tui.workflow.browse import BrowseModel, Kind


def loaded() -> tuple[BrowseModel, Source]:
    source = Source()
    model = BrowseModel(source)

    async def load() -> None:
        await model.load_projects()
        model.toggle_expand("p:PILOT")
        await model.load("p:PILOT")
        model.toggle_expand("e:E1")
        await model.load("e:E1")

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
    assert [r.key for r in model.rows()] == ["p:PILOT", "s:PILOT:S2", "e:E3"]
    assert model.jump("ct1") == 2 and model.jump("subj_02") == 1
    model.filter_text = ""
    assert model.jump("zzz") is None


def test_selection_is_typed_with_partial_sessions() -> None:
    model, _ = loaded()
    model.toggle("s:PILOT:S1")
    model.toggle("c:E1:1")  # unselect one scan of E1: E1 keeps scan 2 only
    selection = model.selection()
    assert selection.project == "PILOT" and selection.subjects == ("SUBJ_01",)
    by_id = {s.id: s for s in selection.sessions}
    assert by_id["E1"].scans == ("2",) and by_id["E2"].scans == ()
    model.toggle_expand("s:PILOT:S1")
    marks = {r.key: r.mark for r in model.rows() if r.kind is not Kind.PROJECT}
    assert marks["e:E1"] == "◐" and marks["s:PILOT:S1"] == "◐" and marks["c:E1:1"] == "☐"
    model.toggle("c:E1:1")  # both scans again: the whole session
    assert model.selection().sessions[0].scans == ()
    assert "2 session(s) of 1 subject(s) in PILOT" == model.selection().describe()
