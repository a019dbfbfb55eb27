"""The anonymization preview reads sample files inside archives (``a.tgz!m``) in place,
as it reads files on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.archives import make_archive
from xnat_tui.dicom.dicomedit.preview import read_header
from xnat_tui.dicom.scan import scan_all
from xnat_tui.dicom.synthetic import SeriesSpec, write_study
from xnat_tui.ui.anon_service import PreviewComputer, PreviewRequest, series_samples


@pytest.mark.parametrize("name", ["bundle.zip", "bundle.tgz", "outer.tar"])
def test_preview_of_a_session_inside_an_archive(tmp_path: Path, name: str) -> None:
    study = write_study(
        tmp_path / "src",
        patient_id="ARCPREV",
        series=[SeriesSpec("MR", 1, "T1", 2), SeriesSpec("MR", 2, "T2", 2)],
    )
    archive = make_archive(study.root, tmp_path / "in" / name.replace("outer.tar", "s.zip"))
    if name == "outer.tar":  # nested: a zip inside a tar
        archive = make_archive([(archive.name, archive)], tmp_path / "in2" / name)
    (session,) = scan_all([archive]).sessions
    samples = series_samples(session)
    assert all(s.path is not None and "!" in str(s.path) for s in samples)
    result = PreviewComputer().compute(
        samples, PreviewRequest.make("basic"), {"project": "P", "subject": "S", "session": "E"}
    )
    for sample in samples:
        item = result.series[sample.series_uid]
        assert item.error == "", item.error
        names = {c.keyword: c for c in item.changes}
        assert names["PatientName"].after != names["PatientName"].before
    assert str(read_header(samples[0].path or "").PatientID) == "ARCPREV"
