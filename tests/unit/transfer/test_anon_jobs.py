"""Per-job anonymization: fail closed, options and variables journalled, burned-in series."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pydicom
import pytest

from tests.unit.transfer import fake
from tests.unit.transfer.fake import FakeServer
from tests.unit.transfer.helpers import make_session, request_for
from xnat_tui.dicom.dicomedit import Script
from xnat_tui.dicom.synthetic import SeriesSpec, write_study
from xnat_tui.transfer import JobState, Journal, RetryPolicy, TransferEngine
from xnat_tui.transfer.anon import AnonymizationRefused, AnonymizerSet
from xnat_tui.transfer.server import ProjectInfo
from xnat_tui.transfer.types import AnonOptions, SourceFile, SourceSeries, SourceSession
from xnat_tui.workflow.planner import Planner
from xnat_tui.xnat.models import AnonScript

FAST = RetryPolicy(attempts=2, base=0.01, cap=0.02)
VISIT_SCRIPT = 'version "6.1"\ndescribe visit "Visit number"\n(0010,4000) := visit\n'


class SettingsClient:
    """Just enough of XnatClient for AnonymizerSet.prepare."""

    def __init__(self, *, warnings=(), site=None, project=None) -> None:  # type: ignore[no-untyped-def]
        self.settings = SimpleNamespace(
            project="P", warnings=tuple(warnings), site_anon=site, project_anon=project
        )
        self.calls = 0

    async def project_settings(self, project: str) -> SimpleNamespace:
        self.calls += 1
        return self.settings


async def _plan(server: FakeServer, journal: Journal, session: SourceSession, **kw: object):
    return await Planner(server, journal).plan([request_for(session, **kw)])


async def test_unreadable_site_script_refuses_xnat_and_nothing_is_sent(tmp_path: Path) -> None:
    client = SettingsClient(
        warnings=["site anon script: not readable by bob; default assumed"],
        project=AnonScript("project P", 'version "6.1"\n(0010,0010) := "X"\n', True),
    )
    anons = AnonymizerSet(workers=1)
    with pytest.raises(AnonymizationRefused, match="site anon script cannot be read"):
        await anons.prepare(client, "P", "xnat")
    # The planner refuses such jobs too, saying which script and why.
    server = FakeServer()
    server.projects["P"] = ProjectInfo("P", anon_problems=["the site anon script cannot be read"])
    journal = Journal(tmp_path / "j.sqlite3")
    plan = await _plan(server, journal, make_session(tmp_path), anonymization="xnat")
    [job] = plan.jobs
    assert not job.ok and {i.code for i in job.issues} >= {"anon-script"}
    # Even if a caller submits the job anyway (the TUI logs prepare errors and goes on),
    # the engine refuses every series before its first byte.
    server.projects["P"] = ProjectInfo("P")
    plan = await _plan(server, journal, make_session(tmp_path), anonymization="xnat")
    engine = TransferEngine(
        server, journal, retry=FAST, receipts_dir=tmp_path / "r", transform_for=anons.transform_for
    )
    await engine.start()
    ids = await engine.submit(plan)
    states = await engine.wait(ids)
    await engine.close()
    assert states == {ids[0]: JobState.FAILED}
    assert server.imports == 0
    assert "site anon script cannot be read" in journal.job(ids[0]).message


async def test_script_outside_the_subset_is_refused_naming_it() -> None:
    client = SettingsClient(project=AnonScript("project P", '(0010,0010) := "X"\n', True))
    anons = AnonymizerSet(workers=1)
    with pytest.raises(AnonymizationRefused, match="project P anon script cannot be applied"):
        await anons.prepare(client, "P", "xnat")
    # A disabled script is skipped, as XNAT skips it: nothing to refuse.
    ok = SettingsClient(project=AnonScript("project P", '(0010,0010) := "X"\n', False))
    await AnonymizerSet(workers=1).prepare(ok, "P", "xnat")


def _parse_real_dicom(data: bytes) -> tuple[str, str, str, str]:
    ds = pydicom.dcmread(io.BytesIO(data))
    return (
        str(ds.SeriesInstanceUID),
        str(ds.SeriesNumber),
        str(ds.get("SeriesDescription", "")),
        str(ds.StudyInstanceUID),
    )


async def test_options_and_variables_are_journalled_and_give_identical_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fake, "parse_fake_dicom", _parse_real_dicom)
    study = write_study(
        tmp_path / "src",
        patient_id="REAL",
        series=[SeriesSpec("MR", 1, "T1", 1)],
    )
    path = study.paths[0]
    st = path.stat()
    original = pydicom.dcmread(path)
    session = SourceSession(
        study_instance_uid=str(original.StudyInstanceUID),
        series=[
            SourceSeries(
                str(original.SeriesInstanceUID),
                1,
                "T1",
                "MR",
                [SourceFile(path, st.st_size, st.st_mtime, str(original.SOPInstanceUID))],
            )
        ],
        attributes={"PatientID": "REAL", "Modality": "MR"},
    )
    server = FakeServer()
    journal = Journal(tmp_path / "j.sqlite3")
    plan = await _plan(
        server,
        journal,
        session,
        anonymization="basic",
        anon_options=AnonOptions(retain_dates=True),
        variables={"visit": "V1"},
    )
    assert plan.ok, plan.to_dict()
    anons = AnonymizerSet(workers=1)
    engine = TransferEngine(
        server, journal, retry=FAST, receipts_dir=tmp_path / "r", transform_for=anons.transform_for
    )
    await engine.start()
    [jid] = await engine.submit(plan)
    assert (await engine.wait([jid]))[jid] is JobState.VERIFIED
    await engine.close()
    receipt = json.loads((tmp_path / "r" / f"{jid}.json").read_text())
    assert receipt["anonymization"]["options"]["retain_dates"] is True
    assert receipt["anonymization"]["variables"] == {"visit": "V1"}
    assert len(receipt["anonymization"]["scripts_sha256"]) == 1
    [remote] = server.find("REAL_MR_1")
    [sent] = remote.scans["1"].values()

    # A new process (after kill -9) reads the same options back and makes the same bytes.
    reopened = Journal(tmp_path / "j.sqlite3").job(jid)
    assert reopened.anon_options == AnonOptions(retain_dates=True)
    assert reopened.anon_variables == {"visit": "V1"}
    fresh = AnonymizerSet(workers=1)
    try:
        transform = fresh.transform_for(reopened)
        assert transform is not None
        assert transform(path, path.read_bytes()) == sent
        without = fresh.transform_for(replace(reopened, anon_options=AnonOptions()))
        assert without is not None
        plain = pydicom.dcmread(io.BytesIO(without(path, path.read_bytes())))
    finally:
        fresh.close()
        anons.close()
    kept = pydicom.dcmread(io.BytesIO(sent))
    assert kept.StudyDate == original.StudyDate  # --retain-dates reached the packer
    assert plain.get("StudyDate", "") != original.StudyDate
    assert str(kept.PatientID) != "REAL"


async def test_script_variables_are_required_and_applied(tmp_path: Path) -> None:
    study = write_study(tmp_path, patient_id="X", series=[SeriesSpec("MR", 1, "A", 1)])
    path = study.paths[0]
    anons = AnonymizerSet(workers=1)
    anons.add("P", "xnat", [Script.parse(VISIT_SCRIPT, "project P")])
    assert [r.name for r in anons.required("P", "xnat")] == ["visit"]
    base = Journal(tmp_path / "j.sqlite3")
    from xnat_tui.transfer.journal import NewJob

    [jid] = base.create_jobs(
        [NewJob("http://fake", "alice", "P", "S", "E", "1.2", *_defaults(), series=[])]
    )
    job = base.job(jid)
    job.anonymization = "xnat"
    with pytest.raises(AnonymizationRefused, match="visit"):
        anons.transform_for(job)
    job.anon_variables = {"visit": "V7"}
    transform = anons.transform_for(job)
    assert transform is not None
    try:
        out = pydicom.dcmread(io.BytesIO(transform(path, path.read_bytes())))
    finally:
        anons.close()
    assert out.PatientComments == "V7"


def _defaults():  # type: ignore[no-untyped-def]
    from xnat_tui.transfer.types import Destination, Overwrite

    return Destination.PROJECT, Overwrite.NONE


def _burned_session(tmp_path: Path) -> SourceSession:
    session = make_session(tmp_path, series=(("1", "T1"), ("2", "Dose report")))
    session.series[1].burned_in = ("BurnedInAnnotation is YES",)
    return session


async def test_burned_in_series_excluded_under_basic_warned_otherwise(tmp_path: Path) -> None:
    server = FakeServer()
    session = _burned_session(tmp_path)
    plan = await _plan(server, None, session, anonymization="basic")  # type: ignore[arg-type]
    [job] = plan.jobs
    assert job.ok
    assert [s.series_number for s in job.series] == [1]
    assert [d.series.series_number for d in job.excluded] == [2]
    assert "BurnedInAnnotation is YES" in plan.to_dict()["jobs"][0]["excluded"][0]["reason"]

    plan = await _plan(server, None, session, anonymization="basic", include_burned_in=True)  # type: ignore[arg-type]
    [job] = plan.jobs
    assert [s.series_number for s in job.series] == [1, 2] and not job.excluded
    assert "burned-in" in {i.code for i in job.issues}

    for profile in ("none", "xnat"):
        plan = await _plan(server, None, session, anonymization=profile)  # type: ignore[arg-type]
        [job] = plan.jobs
        assert len(job.series) == 2 and not job.excluded
        assert any(i.code == "burned-in" and i.severity == "warning" for i in job.issues)

    # A series the user picked explicitly (the TUI's selection) is their decision.
    planner = Planner(server, None)
    req = request_for(session, label="E", anonymization="basic")
    req.series = {s.series_instance_uid for s in session.series}
    [job] = (await planner.plan([req])).jobs
    assert len(job.series) == 2


async def test_empty_import_answer_is_a_failed_series_not_a_verified_one(
    tmp_path: Path,
) -> None:
    from xnat_tui.xnat.filters import SeriesImportFilter

    server = FakeServer()
    journal = Journal(tmp_path / "j.sqlite3")
    plan = await _plan(server, journal, make_session(tmp_path))
    assert plan.ok and len(plan.jobs[0].series) == 2
    # The server's filter changed after planning: it now keeps nothing of series T2.
    server.projects["P"].series_filters = [
        SeriesImportFilter.parse({"mode": "blacklist", "list": "T2"}, "project P")
    ]
    engine = TransferEngine(server, journal, retry=FAST, receipts_dir=tmp_path / "r")
    await engine.start()
    [jid] = await engine.submit(plan)
    states = await engine.wait([jid])
    await engine.close()
    assert states[jid] is JobState.FAILED
    job = journal.job(jid)
    assert "imported none of the 3 file(s)" in job.message
    series = {s.number: s for s in journal.series(jid)}
    assert series[2].state.value == "failed" and series[1].state.value == "sent"
    assert server.commits == 0 and not (tmp_path / "r" / f"{jid}.json").exists()


async def test_request_carries_options_and_variables_into_the_journal(
    tmp_path: Path,
) -> None:
    from xnat_tui.transfer import JobRequest

    server = FakeServer()
    journal = Journal(tmp_path / "j.sqlite3")
    request = JobRequest(
        session=make_session(tmp_path),
        project="P",
        subject="PAT1",
        label="E1",
        anonymization="basic",
        anon_options=AnonOptions(retain_uids=True),
        variables={"visit": "V2"},
    )
    plan = await Planner(server, journal).plan([request])
    engine = TransferEngine(server, journal, receipts_dir=tmp_path / "r")
    [jid] = await engine.submit(plan)
    await engine.close()
    job = journal.job(jid)
    assert job.anon_options == AnonOptions(retain_uids=True)
    assert job.anon_variables == {"visit": "V2"}
    # Options only mean something to the Basic Profile.
    other = JobRequest(
        session=request.session,
        project="P",
        subject="S",
        label="E",
        anonymization="xnat",
        anon_options=AnonOptions(retain_uids=True),
    )
    assert other.anon_options == AnonOptions()
