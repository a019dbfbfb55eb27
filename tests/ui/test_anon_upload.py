"""The anonymization chosen in the TUI (profile, options, script variables) reaches the job."""

from __future__ import annotations

from tests.ui.fakes import (
    FakePort,
    FakeProject,
    make_app,
    make_session,
    scanned,
    until,
    with_project,
)
from xnat_tui.config import Config, ProjectPreferences
from xnat_tui.transfer.server import ProjectInfo
from xnat_tui.ui.screens.anon_variables import AnonVariablesScreen
from xnat_tui.ui.screens.upload_confirm import UploadConfirmScreen


async def test_basic_profile_with_retained_dates_is_what_gets_queued(tmp_path, dicom_factory):
    from xnat_tui.dicom.scan import scan_all
    from xnat_tui.dicom.synthetic import SeriesSpec

    study = dicom_factory(tmp_path / "in", patient_id="P042", series=[SeriesSpec("MR", 1, "T1", 2)])
    session = scan_all([study.paths[0].parent.parent], use_cache=False).sessions[0]
    app, _, engine = make_app(tmp_path, sessions=[session])
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await scanned(pilot, 1)
        await with_project(pilot, screen, "PILOT")
        await pilot.press("2", "A")
        await until(pilot, lambda: app.screen.__class__.__name__ == "AnonPreviewScreen")
        preview = app.screen
        await pilot.press("b", "d")
        await until(
            pilot,
            lambda: (
                preview.profile == "basic"
                and preview.options.retain_dates
                and getattr(preview, "current", None) is not None
                and preview.current.request.profile == "basic"
            ),
        )
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.screen is screen)
        await pilot.press("u")
        await until(pilot, lambda: isinstance(app.screen, UploadConfirmScreen))
        summary = str(app.screen.query_one("#plan-summary").render())
        assert "Anonymization before sending: basic" in summary
        assert "Basic Profile keeps: dates" in summary
        await pilot.press("y")
        await until(pilot, lambda: len(engine.submitted) == 1)
    request = engine.submitted[0].request
    assert request.anonymization == "basic"
    assert request.anon_options.retain_dates is True
    assert request.anon_options.retain_uids is False


def project_with_variables() -> FakePort:
    info = ProjectInfo("STUDY_V", anon_script=True, anon_variables=[("visit", "Visit number")])
    return FakePort({"STUDY_V": FakeProject(info, name="Study V")})


async def test_missing_script_variables_are_asked_before_queueing(tmp_path):
    config = Config(projects={"STUDY_V": ProjectPreferences(anonymization="xnat")})
    app, _, engine = make_app(
        tmp_path, sessions=[make_session("P001")], port=project_with_variables(), config=config
    )
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await scanned(pilot, 1)
        await with_project(pilot, screen, "STUDY_V")
        item = next(iter(app.workbench.items.values()))
        # Not refused while labelling: the value is asked for when queueing.
        assert item.state == "new" and "visit" in item.detail
        await pilot.press("2", "u")
        await until(pilot, lambda: isinstance(app.screen, AnonVariablesScreen))
        await pilot.press("escape")  # cancelled: nothing is queued
        await until(pilot, lambda: app.screen is screen)
        assert engine.submitted == []
        await pilot.press("u")
        await until(pilot, lambda: isinstance(app.screen, AnonVariablesScreen))
        await pilot.press(*"V1", "enter")
        await until(pilot, lambda: isinstance(app.screen, UploadConfirmScreen))
        summary = str(app.screen.query_one("#plan-summary").render())
        assert "Anonymization before sending: xnat" in summary and "visit=V1" in summary
        await pilot.press("y")
        await until(pilot, lambda: len(engine.submitted) == 1)
        # Asked once: the next upload to this project reuses the value.
        assert app.uploads is not None
        assert app.uploads.anonymization("STUDY_V").variables == {"visit": "V1"}
    request = engine.submitted[0].request
    assert request.anonymization == "xnat" and dict(request.variables) == {"visit": "V1"}
