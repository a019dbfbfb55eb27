"""Where each downloaded file goes (layouts), and that no server-given name escapes."""

from __future__ import annotations

from pathlib import Path

import pytest

from xnat_tui.workflow import download as dl
from xnat_tui.xnat.download_ops import ListedFile

SESSION = dl.SessionRef("P", "SUBJ 01", "XNAT_E1", "SESS/01")


def listed(rel: str, scan: str = "2", res: str = "DICOM") -> ListedFile:
    return ListedFile(
        scan, res, rel, f"/data/experiments/XNAT_E1/scans/{scan}/resources/1/files/{rel}", 10
    )


@pytest.mark.parametrize(
    ("layout", "several", "expected"),
    [
        ("xnat", False, "SESS_01/scans/2-T1_w/resources/DICOM/files/sub/a.dcm"),
        ("session", False, "SUBJ 01/SESS_01/2-T1_w/sub/a.dcm"),
        ("session", True, "SUBJ 01/SESS_01/2-T1_w/DICOM/sub/a.dcm"),
        ("flat", False, "SESS_01/2-sub_a.dcm"),
        ("flat", True, "SESS_01/2-DICOM-sub_a.dcm"),
    ],
)
def test_layouts(layout: str, several: bool, expected: str) -> None:
    out = Path("/out")
    path = dl.local_path(
        out, layout, SESSION, "2", "T1 w", listed("sub/a.dcm"), several_resources=several
    )
    assert path.relative_to(out).as_posix() == expected


@pytest.mark.parametrize("rel", ["../../etc/passwd", "a/../../b", "..", "/", ""])
def test_a_path_that_leaves_the_resource_is_refused(rel: str) -> None:
    with pytest.raises(dl.DownloadProblem, match="not inside its resource"):
        dl.local_path(Path("/out"), "xnat", SESSION, "2", "", listed(rel), several_resources=False)


def test_names_from_the_server_are_one_safe_component() -> None:
    assert dl.safe_component("a/b\\c\x1b[31m") == "a_b_c_[31m"
    assert dl.safe_component("..") == "_" and dl.safe_component("") == "_"
    evil = dl.SessionRef("P", "..", "E", "../..")
    path = dl.local_path(
        Path("/out"), "session", evil, "..", "", listed("x.dcm"), several_resources=False
    )
    assert path.resolve().is_relative_to(Path("/out"))


def test_two_files_with_one_local_name_are_refused_before_anything_is_fetched() -> None:
    files = [listed("a/b.dcm"), listed("a_b.dcm")]
    with pytest.raises(dl.DownloadProblem, match="two files would be saved as"):
        dl._plan_session(SESSION, files, {"2": "T1"}, Path("/out"), "flat", {})
    plan = dl._plan_session(SESSION, files, {"2": "T1"}, Path("/out"), "xnat", {})
    assert len(plan.files) == 2


def test_the_output_folder_is_journalled_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert dl.absolute(Path("xnat-downloads")) == tmp_path / "xnat-downloads"
    assert dl.absolute(Path("~/d")).is_absolute()
