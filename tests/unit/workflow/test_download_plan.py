"""Where each downloaded file goes (layouts), and that no server-given name escapes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from xnat_tui.sandbox.server import SandboxServer
from xnat_tui.workflow import download as dl
from xnat_tui.xnat.client import XnatClient
from xnat_tui.xnat.credentials import Credentials
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


def test_a_clash_in_the_xnat_layout_does_not_suggest_the_xnat_layout() -> None:
    """Scan "1" of type "T1" and scan "1-T1" without a type share a folder there."""
    files = [listed("x.dcm", scan="1"), listed("x.dcm", scan="1-T1")]
    with pytest.raises(dl.DownloadProblem) as refused:
        dl._plan_session(SESSION, files, {"1": "T1"}, Path("/out"), "xnat", {})
    assert refused.value.hint == ""
    assert str(refused.value).endswith(
        "; download those scans into separate folders (--out, with --scan-type)"
    )
    with pytest.raises(dl.DownloadProblem, match="; choose the xnat layout$"):
        dl._plan_session(
            SESSION, [listed("a/b.dcm"), listed("a_b.dcm")], {}, Path("/o"), "flat", {}
        )


def test_the_output_folder_is_journalled_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert dl.absolute(Path("xnat-downloads")) == tmp_path / "xnat-downloads"
    assert dl.absolute(Path("~/d")).is_absolute()


def test_a_file_where_another_ones_partial_download_goes_is_refused() -> None:
    """x.dcm is written as x.dcm.part until verified: a listed x.dcm.part would be
    overwritten by it (and the other way round)."""
    files = [listed("x.dcm"), listed("x.dcm.part")]
    with pytest.raises(dl.DownloadProblem, match=r"two files would be saved as .*x\.dcm\.part"):
        dl._plan_session(SESSION, files, {"2": "T1"}, Path("/out"), "xnat", {})


CATALOG = """<?xml version="1.0" encoding="UTF-8"?>
<cat:Catalog xmlns:cat="http://nrg.wustl.edu/catalog" ID="x" description="simplified">
<cat:sets>{sets}</cat:sets></cat:Catalog>"""
ENTRY_SET = (
    '<cat:entrySet ID="{id}" description="Project: {project}, subject: S, label: MR1">'
    '<cat:sets><cat:entrySet ID="RAW" description="RAW"><cat:entries>'
    '<cat:entry URI="/archive/experiments/{id}/scans/{scan}/resources/DICOM/files"'
    ' name="MR1/2/DICOM"/></cat:entries></cat:entrySet></cat:sets></cat:entrySet>'
)


async def test_a_catalog_whose_two_sessions_share_one_folder_is_refused(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """Sessions of two projects with one label: the catalog's 'simplified' names put both
    in MR1/…; the second would overwrite the first and both be reported verified."""
    store = sandbox.store
    sets = ""
    for label in ("PIL_900_MR1", "SA_002_MR1"):
        row = next(r for r in store.list_experiments() if r["label"] == label)
        scan = store.list_scans(row["id"])[0]["scan_id"]
        sets += ENTRY_SET.format(id=row["id"], project=row["project"], scan=scan)
    async with XnatClient(Credentials(sandbox.url, "admin", "admin")) as client:
        with pytest.raises(
            dl.DownloadProblem, match="sessions PILOT/MR1 and STUDY_A/MR1: two files would be"
        ):
            await dl.plan_catalog(client, CATALOG.format(sets=sets), out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_out_problem_refuses_a_file_and_a_folder_that_cannot_be_made(tmp_path: Path) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    assert dl.out_problem(a_file) == f"{a_file} is a file, not a folder"
    below = a_file / "sub" / "dir"
    assert dl.out_problem(below) == (
        f"cannot make the folder {below}: {a_file} is a file, not a folder"
    )
    dangling = tmp_path / "gone"
    dangling.symlink_to(tmp_path / "nowhere")
    assert dl.out_problem(dangling) == (
        f"{dangling} is a link to {tmp_path / 'nowhere'}, which does not exist"
    )
    assert dl.out_problem(tmp_path) is None
    assert dl.out_problem(tmp_path / "new" / "deeper") is None  # made when downloading
    assert not (tmp_path / "new").exists()  # asking changes nothing


def test_out_problem_refuses_a_folder_without_write_permission(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.geteuid() == 0:  # root may write anywhere: the system's answer is mocked
        real = os.access
        monkeypatch.setattr(
            dl.os, "access", lambda p, mode: False if Path(p) == locked else real(p, mode)
        )
    try:
        assert dl.out_problem(locked) == f"no permission to write into {locked}"
        assert dl.out_problem(locked / "x") == (
            f"cannot make the folder {locked / 'x'}: no permission to write into {locked}"
        )
    finally:
        locked.chmod(0o700)
