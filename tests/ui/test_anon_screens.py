"""Pilot tests of the anonymization preview and the script-variables dialog.

Real synthetic DICOM, the real DicomEdit engine, and (for the xnat profile) either the
sandbox's STUDY_B project script over the real client or a scripted ``project_settings``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.app import App
from textual.widgets import Input, Static

from tests.ui.screen_text import screen_text
from xnat_tui.config import Config
from xnat_tui.dicom.dicomedit import ScriptError
from xnat_tui.dicom.model import Session
from xnat_tui.dicom.scan import scan_all
from xnat_tui.dicom.synthetic import SeriesSpec, write_study
from xnat_tui.transfer.types import AnonOptions
from xnat_tui.ui.anon_service import (
    AnonChoice,
    PreviewComputer,
    PreviewRequest,
    burned_in_exclusions,
    burned_in_warnings,
    needed_variables,
    next_profile,
    series_samples,
    variable_problem,
)
from xnat_tui.ui.screens.anon_preview import AnonPreviewScreen
from xnat_tui.ui.screens.anon_variables import AnonVariablesScreen
from xnat_tui.ui.widgets.anon_diff import AnonDiffTable, AnonSeriesTable
from xnat_tui.xnat.models import AnonScript, ProjectSettings

SENTINEL = object()


class AnonTestApp(App[None]):
    """Just what the screens use: ``client`` and ``config``; records what they dismiss with."""

    def __init__(self, screen: Any, client: Any = None) -> None:
        super().__init__()
        self.client = client
        self.config = Config()
        self.start = screen
        self.dismissed: list[Any] = []

    def on_mount(self) -> None:
        self.push_screen(self.start, callback=self.dismissed.append)


class ScriptedClient:
    """``project_settings`` answering with fixed anon scripts, counting the calls."""

    def __init__(
        self, project_script: str, site_script: str = "", warnings: tuple[str, ...] = ()
    ) -> None:
        self.project_script = project_script
        self.site_script = site_script
        self.warnings = warnings
        self.calls = 0

    async def project_settings(self, project: str) -> ProjectSettings:
        self.calls += 1
        return ProjectSettings(
            project=project,
            prearchive_code=0,
            site_anon=AnonScript("site", self.site_script, True) if self.site_script else None,
            project_anon=(
                AnonScript(f"project {project}", self.project_script, True)
                if self.project_script
                else None
            ),
            warnings=self.warnings,
        )


@pytest.fixture
def session(tmp_path: Path) -> Session:
    write_study(
        tmp_path / "in",
        patient_id="MRN123",
        patient_name="Doe^Jane",
        study_description="MR Brain",
        series=[
            SeriesSpec("MR", 1, "T1w", 2),
            SeriesSpec("MR", 2, "T2w", 1),
            # A screen save: burned-in text risk.
            SeriesSpec("OT", 99, "Dose screen", 1),
        ],
    )
    summary = scan_all([tmp_path / "in"], use_cache=False, workers=1)
    (only,) = summary.sessions
    return only


def cells(table: AnonDiffTable) -> dict[str, tuple[str, str, str, str]]:
    """tag -> (kind as shown, keyword, before, after); values unclipped, from the rows' model."""
    out = {}
    for key, change in zip(table.rows, table.changes, strict=True):
        assert key.value == change.tag
        kind = table.get_row(key)[0].plain
        out[change.tag] = (kind, change.keyword, change.before or "", change.after or "")
    return out


async def settle(pilot: Any) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def text_of(screen: Any, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


# ---- preview screen ---------------------------------------------------------------------


async def test_basic_profile_replaces_patient_name_and_removes_identifiers(
    session: Session,
) -> None:
    screen = AnonPreviewScreen(session, "PILOT", "SUBJ01", "SUBJ01_MR1", profile="basic")
    app = AnonTestApp(screen)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        diff = screen.query_one(AnonDiffTable)
        shown = cells(diff)
        assert shown["(0010,0010)"] == ("changed", "PatientName", "Doe^Jane", "SUBJ01")
        assert shown["(0010,0020)"][2:] == ("MRN123", "SUBJ01_MR1")
        assert shown["(0008,0080)"][0] == "removed"  # InstitutionName (X)
        assert shown["(0008,0080)"][2] == "Synthetic Imaging Centre"
        assert shown["(0012,0062)"][0] == "added"  # PatientIdentityRemoved
        # Removed, changed and added rows carry different styles from the theme.
        styles = {
            kind: diff.get_row(tag)[0].style
            for kind, tag in (
                ("removed", "(0008,0080)"),
                ("changed", "(0010,0010)"),
                ("added", "(0012,0062)"),
            )
        }
        assert len({str(s) for s in styles.values()}) == 3
        # The summary names the script that runs, with its hash.
        assert "basic-profile" in text_of(screen, "#anon-status")
        # The series list counts the changes of every series.
        series = screen.query_one(AnonSeriesTable)
        first_uid = session.sorted_scans()[0].series_instance_uid
        assert int(series.get_cell(first_uid, "diff").plain) == len(shown)


async def test_switching_series_and_profiles(session: Session) -> None:
    screen = AnonPreviewScreen(session, "PILOT", "SUBJ01", "SUBJ01_MR1", profile="basic")
    app = AnonTestApp(screen)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        diff = screen.query_one(AnonDiffTable)
        assert cells(diff)["(0008,103E)"][2] == "T1w"  # SeriesDescription, series 1

        await pilot.press("right_square_bracket")
        await settle(pilot)
        assert cells(diff)["(0008,103E)"][2] == "T2w"
        assert "Series 2 T2w" in text_of(screen, "#anon-info")

        # The dose screen is flagged, and left out by default under basic.
        await pilot.press("right_square_bracket")
        await settle(pilot)
        info = text_of(screen, "#anon-info")
        assert "pixels" in info and "left out by default under basic" in info
        ot_uid = session.sorted_scans()[2].series_instance_uid
        assert "⚠ excl" in screen.query_one(AnonSeriesTable).get_cell(ot_uid, "diff").plain
        await pilot.press("left_square_bracket", "left_square_bracket")
        await settle(pilot)
        assert cells(diff)["(0008,103E)"][2] == "T1w"

        # Retain dates: StudyDate is no longer touched; toggling back brings it back.
        assert "(0008,0020)" in cells(diff)
        await pilot.press("d")
        await settle(pilot)
        assert screen.options == AnonOptions(retain_dates=True)
        assert "(0008,0020)" not in cells(diff)
        assert "☑ dates" in text_of(screen, "#anon-bar")
        await pilot.press("u")
        await settle(pilot)
        assert "(0008,0018)" not in cells(diff)  # SOPInstanceUID kept

        # none: nothing changes here.
        await pilot.press("n")
        await settle(pilot)
        assert screen.profile == "none"
        assert cells(diff) == {}
        assert "sent unchanged" in text_of(screen, "#anon-status")
        # The retain toggles make no sense under none: disabled, options untouched.
        await pilot.press("d")
        await settle(pilot)
        assert screen.options == AnonOptions(retain_dates=True, retain_uids=True)

        # xnat without a connection says so instead of guessing.
        await pilot.press("p")
        await settle(pilot)
        assert screen.profile == "xnat"
        assert "Not connected" in text_of(screen, "#anon-status")
        assert cells(diff) == {}

        # Back to basic: the earlier result comes from the cache, options kept.
        await pilot.press("p")
        await settle(pilot)
        assert screen.profile == "basic"
        assert "(0008,0020)" not in cells(diff)
        assert len(screen.results) == 4  # basic, +dates, +dates+uids, none

        await pilot.press("ctrl+s")
        await settle(pilot)
    (choice,) = app.dismissed
    assert choice == AnonChoice(
        "basic", AnonOptions(retain_dates=True, retain_uids=True), {}, choice.script_hashes
    )
    assert len(choice.script_hashes) == 1


async def test_xnat_profile_runs_study_b_script_from_the_sandbox(
    session: Session, sandbox: Any
) -> None:
    from xnat_tui.xnat.client import XnatClient
    from xnat_tui.xnat.credentials import Credentials

    async with XnatClient(Credentials(sandbox.url, "admin", "admin")) as client:
        screen = AnonPreviewScreen(session, "STUDY_B", "SB_9", "SB_9_MR1")
        app = AnonTestApp(screen, client)
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            await settle(pilot)
            shown = cells(screen.query_one(AnonDiffTable))
            # The project script: InstitutionName set, ReferringPhysicianName emptied.
            assert shown["(0008,0080)"][2:] == ("Synthetic Imaging Centre", "STUDY_B site")
            assert shown["(0008,0090)"][2:] == ("Referrer^Demo", "")
            # It does not touch the patient's name: the preview must not pretend it does.
            assert "(0010,0010)" not in shown
            assert "project STUDY_B" in text_of(screen, "#anon-status")


async def test_script_variables_are_asked_for_and_applied(session: Session) -> None:
    client = ScriptedClient(
        'version "6.1"\ndescribe visit "Visit number"\n'
        '(0010,0020) := format["{0}_{1}", subject, visit]\n'
    )
    screen = AnonPreviewScreen(session, "P1", "SUBJ01", "SUBJ01_MR1", profile="xnat")
    app = AnonTestApp(screen, client)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await settle(pilot)
        assert client.calls == 1
        status = text_of(screen, "#anon-status")
        assert "visit (Visit number)" in status and "press v" in status
        # Declared but not given, the variable is null: the preview shows what that does.
        assert cells(screen.query_one(AnonDiffTable))["(0010,0020)"][3] == "SUBJ01_null"
        # Without the value, the profile cannot be used yet.
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.dismissed == []

        await pilot.press("v")
        await settle(pilot)
        modal = app.screen
        assert isinstance(modal, AnonVariablesScreen)
        await pilot.press(*"V02", "enter")
        await settle(pilot)
        assert app.screen is screen
        assert screen.variables == {"visit": "V02"}
        shown = cells(screen.query_one(AnonDiffTable))
        assert shown["(0010,0020)"][2:] == ("MRN123", "SUBJ01_V02")

        # Other profiles need no fetch; back to xnat reuses the fetched scripts.
        await pilot.press("b", "x")
        await settle(pilot)
        assert client.calls == 1
        await pilot.press("r")
        await settle(pilot)
        await settle(pilot)
        assert client.calls == 2

        await pilot.press("ctrl+s")
        await settle(pilot)
    (choice,) = app.dismissed
    assert choice.profile == "xnat" and choice.variables == {"visit": "V02"}


async def test_refused_script_is_shown_and_cannot_be_used(session: Session) -> None:
    # A DicomEdit 4 script (no version line) is outside the subset.
    client = ScriptedClient("(0010,0010) := shiftDateByIncrement[(0008,0020), 3]\n")
    screen = AnonPreviewScreen(session, "P1", "S", "E", profile="xnat")
    app = AnonTestApp(screen, client)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await settle(pilot)
        assert "cannot be run here" in text_of(screen, "#anon-info")
        assert cells(screen.query_one(AnonDiffTable)) == {}
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.dismissed == []
        await pilot.press("escape")
        await settle(pilot)
    assert app.dismissed == [None]


async def test_server_error_is_shown_on_the_screen(session: Session) -> None:
    class Failing:
        async def project_settings(self, project: str) -> ProjectSettings:
            raise ConnectionError("server unreachable")

    screen = AnonPreviewScreen(session, "P1", "S", "E")
    app = AnonTestApp(screen, Failing())
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await settle(pilot)
        status = text_of(screen, "#anon-status")
        assert "Cannot read the anonymization scripts of P1" in status
        assert "server unreachable" in status


async def test_unreadable_server_script_blocks_the_xnat_profile(session: Session) -> None:
    # Not being allowed to read the project's script must not look like "no script".
    client = ScriptedClient(
        "",
        'version "6.1"\n(0008,0080) := "site"\n',
        warnings=("project anon script: not readable by bob; default assumed",),
    )
    screen = AnonPreviewScreen(session, "P1", "S", "E")
    app = AnonTestApp(screen, client)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await settle(pilot)
        status = text_of(screen, "#anon-status")
        assert "cannot be read" in status and "not readable by bob" in status
        assert "(0008,0080)" in cells(screen.query_one(AnonDiffTable))  # the site script ran
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.dismissed == []
        await pilot.press("n", "ctrl+s")
        await settle(pilot)
    assert [c.profile for c in app.dismissed] == ["none"]


async def test_usable_at_80x24_and_follows_the_theme(session: Session) -> None:
    screen = AnonPreviewScreen(session, "PILOT", "SUBJ01", "SUBJ01_MR1", profile="basic")
    app = AnonTestApp(screen)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        text = screen_text(app)
        # Series list and diff both visible: the list goes above the diff when narrow.
        assert "Dose screen" in text and "Changes" in text
        assert "PatientName" not in text or "SUBJ01" in text
        assert "MediaStorageSOP" in text and "Before" in text and "After" in text
        diff = screen.query_one(AnonDiffTable)
        before = str(diff.get_row("(0008,0080)")[0].style)
        app.theme = "textual-light" if app.theme != "textual-light" else "nord"
        await settle(pilot)
        assert str(diff.get_row("(0008,0080)")[0].style) != before


async def test_in_the_real_app_with_help_and_keymap(session: Session, tmp_path: Path) -> None:
    from tests.ui.fakes import make_app, to_main, until
    from xnat_tui.ui.screens.help import HelpScreen, collect_keys

    config = Config()
    config.keymap["anon.preview.profile"] = "P"
    app, _, _ = make_app(tmp_path, config=config)
    async with app.run_test(size=(120, 40)) as pilot:
        await to_main(pilot)
        screen = AnonPreviewScreen(session, None, "SUBJ01", "SUBJ01_MR1", profile="basic")
        app.push_screen(screen)

        def shown() -> bool:
            return screen.current is not None and screen.current.request == screen.request()

        # The App's long-lived workers never complete: wait on the screen's state instead.
        await until(pilot, shown)
        assert "(0010,0010)" in cells(screen.query_one(AnonDiffTable))
        ids = {row.binding_id for row in collect_keys(screen)}
        assert {"anon.preview.profile", "anon.preview.use", "anon.preview.close"} <= ids
        await pilot.press("P")  # remapped from p
        await until(pilot, shown)
        assert screen.profile == "none"
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen)
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is not screen)


def test_every_binding_has_a_unique_id() -> None:
    for cls in (AnonPreviewScreen, AnonVariablesScreen):
        ids = [b.id for b in cls.BINDINGS if not isinstance(b, tuple)]
        assert all(ids) and len(set(ids)) == len(ids) == len(cls.BINDINGS)
        assert all(i.startswith("anon.") for i in ids if i)


# ---- variables dialog -------------------------------------------------------------------


async def test_variables_dialog_validates_then_returns_values() -> None:
    modal = AnonVariablesScreen(
        ["visit", "site"], {"site": "A"}, descriptions={"visit": "Visit number"}
    )
    app = AnonTestApp(modal)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        first = modal.query_one("#anon-var-0", Input)
        assert first.has_focus
        assert modal.query_one("#anon-var-1", Input).value == "A"
        # Nothing typed: refused, the dialog stays and says why.
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.dismissed == []
        assert "required" in text_of(modal, "#anon-var-error-0")
        # A backslash would make two DICOM values: flagged while typing.
        await pilot.press(*"V1\\2")
        await pilot.pause()
        assert "backslash" in text_of(modal, "#anon-var-error-0")
        assert first.has_class("-invalid")
        await pilot.press("backspace", "backspace")
        await pilot.pause()
        assert text_of(modal, "#anon-var-error-0") == ""
        await pilot.press("enter")  # to the next field
        await pilot.pause()
        assert modal.query_one("#anon-var-1", Input).has_focus
        await pilot.press("enter")  # last field: submit
        await pilot.pause()
    assert app.dismissed == [{"visit": "V1", "site": "A"}]


async def test_variables_dialog_cancel_returns_none() -> None:
    modal = AnonVariablesScreen(["visit"])
    app = AnonTestApp(modal)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press(*"x", "escape")
        await pilot.pause()
    assert app.dismissed == [None]


# ---- service logic ------------------------------------------------------------------------


async def test_needed_variables_before_queueing() -> None:
    client = ScriptedClient(
        'version "6.1"\ndescribe visit "Visit number"\ndescribe secret hidden\n'
        "(0010,0020) := concatenate[visit, secret]\n"
    )
    needed = await needed_variables(client, "P1", "xnat")
    assert [(r.name, r.description) for r in needed] == [("visit", "Visit number")]
    assert await needed_variables(client, "P1", "basic") == []
    with pytest.raises(ScriptError):
        await needed_variables(ScriptedClient("(0010,0010) := x\n"), "P1", "xnat")


def test_variable_rules() -> None:
    assert variable_problem("V01") is None
    assert variable_problem("  ") == "a value is required"
    assert variable_problem("a\tb") is not None
    assert variable_problem("a\\b") is not None


def test_profiles_cycle_and_requests_ignore_irrelevant_settings() -> None:
    assert [next_profile(p) for p in ("none", "xnat", "basic")] == ["xnat", "basic", "none"]
    # Options only matter under basic, server scripts only under xnat: same cache key.
    a = PreviewRequest.make("none", options=AnonOptions(retain_dates=True))
    b = PreviewRequest.make("none")
    assert a == b
    with pytest.raises(ValueError):
        AnonOptions().toggled("retain_everything")


def test_computer_reads_each_sample_once_and_leaves_files_untouched(session: Session) -> None:
    samples = series_samples(session)
    before = {s.path: (s.path.read_bytes(), s.path.stat().st_mtime_ns) for s in samples if s.path}
    computer = PreviewComputer()
    base = {"project": "P", "subject": "S", "session": "E"}
    first = computer.compute(samples, PreviewRequest.make("basic"), base)
    second = computer.compute(samples, PreviewRequest.make("none"), base)
    assert len(computer._headers) == len(samples) == 3
    assert all(not p.changes for p in second.series.values())
    assert all(p.changes for p in first.series.values())
    after = {s.path: (s.path.read_bytes(), s.path.stat().st_mtime_ns) for s in samples if s.path}
    assert before == after


def test_unreadable_sample_is_reported_per_series(session: Session) -> None:
    samples = series_samples(session)
    assert samples[1].path is not None
    samples[1].path.write_bytes(b"")  # emptied after the scan
    result = PreviewComputer().compute(
        samples, PreviewRequest.make("basic"), {"project": "P", "subject": "S", "session": "E"}
    )
    broken = result.series[samples[1].series_uid]
    assert broken.error.startswith("cannot read") and broken.changes == []
    assert result.series[samples[0].series_uid].changes


def test_burned_in_series_are_excluded_under_basic_only(session: Session) -> None:
    dose = session.sorted_scans()[2].series_instance_uid
    excluded = burned_in_exclusions(session, "basic")
    assert list(excluded) == [dose] and "burned-in" in excluded[dose]
    assert burned_in_exclusions(session, "xnat") == {}
    assert list(burned_in_warnings(session, "none")) == [dose]


async def test_hostile_dicom_text_is_shown_as_data_in_the_preview(tmp_path: Path) -> None:
    """A PatientName with an OSC title sequence and markup, a description with `[/x]`:
    the preview shows them visibly, as written, and nothing is parsed or crashes."""
    from tests.ui.screen_text import screen_text

    hostile_name = "Evil\x1b]0;pwned\x07^[/b]Jane"
    write_study(
        tmp_path / "in",
        patient_id="MRN666",
        patient_name=hostile_name,
        study_description="MR [b]Brain[/b]",
        series=[SeriesSpec("MR", 1, "T1 [/MPRAGE]", 1)],
    )
    (hostile,) = scan_all([tmp_path / "in"], use_cache=False, workers=1).sessions
    screen = AnonPreviewScreen(hostile, "PILOT", "SUBJ01", "SUBJ01_MR1", profile="basic")
    app = AnonTestApp(screen)
    async with app.run_test(size=(160, 45)) as pilot:
        await settle(pilot)
        shown = screen_text(app)
        assert "\x1b" not in shown and "\x07" not in shown
        assert "Evil␛]0;pwned␇^[/b]Jane" in shown  # the before value, visibly
        assert "T1 [/MPRAGE]" in shown  # the series list, never read as markup
        assert app.is_running
