"""`xnat-tui scan`: JSON shape, text output and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.dicom import SmallTree
from xnat_tui.cli import main
from xnat_tui.dicom.synthetic import DemoTree


def _json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    code = main(["scan", "--json", *args])
    return code, json.loads(capsys.readouterr().out)


def test_json_shape(capsys: pytest.CaptureFixture[str], demo_tree: DemoTree) -> None:
    code, data = _json(capsys, "--no-cache", str(demo_tree.root))
    assert code == 0
    assert set(data) == {"sessions", "problems", "stats"}
    session_keys = {
        "study_instance_uid", "patient_id", "patient_name", "study_date", "study_description",
        "accession_number", "modalities", "root", "routing", "scans", "problems",
    }  # fmt: skip
    scan_keys = {
        "series_instance_uid", "series_number", "series_description", "modality",
        "file_count", "size",
    }  # fmt: skip
    for s in data["sessions"]:
        assert session_keys <= set(s)
        for sc in s["scans"]:
            assert scan_keys <= set(sc)
            assert isinstance(sc["file_count"], int) and isinstance(sc["size"], int)
        assert s["routing"] is None or set(s["routing"]) == {
            "project", "subject", "session", "source"
        }  # fmt: skip
    for p in data["problems"]:
        assert {"path", "kind", "detail"} <= set(p)
    by_pid = {s["patient_id"]: s for s in data["sessions"]}
    assert by_pid["SA_001"]["routing"] == {
        "project": "STUDY_A",
        "subject": "SA_001",
        "session": "SA_001_MR1",
        "source": "StudyComments",
    }
    assert by_pid["DEMO003"]["modalities"] == ["CT", "PT"]
    assert by_pid["DEMO003"]["root"] == str(demo_tree.root / "flat" / "PETCT_DEMO003")
    stats = data["stats"]
    assert stats["files_dicom"] == sum(len(s.paths) for s in demo_tree.studies)
    assert stats["sessions"] == len(demo_tree.studies)
    assert {p["kind"] for p in data["problems"]} == {"junk", "not-dicom", "dicomdir"}


def test_json_files_option(capsys: pytest.CaptureFixture[str], dicom_tree: SmallTree) -> None:
    code, data = _json(capsys, "--files", str(dicom_tree.root))
    assert code == 0
    listed = {f["path"] for s in data["sessions"] for sc in s["scans"] for f in sc["files"]}
    assert listed == {str(p) for p in dicom_tree.paths}


def test_text_output(capsys: pytest.CaptureFixture[str], demo_tree: DemoTree) -> None:
    assert main(["scan", str(demo_tree.root)]) == 0
    out = capsys.readouterr().out
    assert "8 sessions" in out
    assert "DEMO002" in out and "Dose Report" in out and "burned-in-phi" in out
    assert "project=PILOT subject=PIL_002 session=PIL_002_MR1" in out
    assert "dicomdir (1):" in out


def test_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["scan", str(tmp_path)]) == 1  # nothing readable
    assert "no usable DICOM" in capsys.readouterr().err
    assert main(["scan", str(tmp_path / "missing")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["scan", "--workers", "0", str(tmp_path)]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["scan"])
    assert exc.value.code == 2


@pytest.mark.parametrize("args", [[""], ["--json", ""], ["somewhere", ""]])
def test_an_empty_path_is_a_usage_error_not_the_current_folder(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
) -> None:
    """Issue 14 item 11: ``scan ''`` (say ``scan "$UNSET"``) scanned the current folder."""
    (tmp_path / "somewhere").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as refused:
        main(["scan", *args])
    assert refused.value.code == 2
    captured = capsys.readouterr()
    assert "an empty path is not a folder (use . for this one)" in captured.err
    assert captured.out == ""


def test_cli_in_a_subprocess(dicom_tree: SmallTree) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "xnat_tui", "scan", "--json", str(dicom_tree.root)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert [s["patient_id"] for s in json.loads(done.stdout)["sessions"]] == [
        "SUBJ01",
        "SUBJ02",
        "SUBJ03",
    ]


@pytest.mark.skipif(sys.platform != "linux", reason="needs arbitrary bytes in file names")
def test_file_names_that_are_not_utf8(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dicom_tree: SmallTree
) -> None:
    import os
    import shutil

    odd = os.fsencode(tmp_path) + b"/dir\xff"
    os.mkdir(odd)
    shutil.copy(dicom_tree.paths[0], odd + b"/f\xfe.dcm")
    with open(odd + b"/notes\xfd.txt", "wb") as f:
        f.write(b"hello")
    for _ in range(2):  # the second run goes through the rescan cache
        code, data = _json(capsys, str(tmp_path))
        assert code == 0
        assert [p["kind"] for p in data["problems"]] == ["not-dicom"]
        assert os.fsencode(data["problems"][0]["path"]) == odd + b"/notes\xfd.txt"
    # Text output shows the bytes that are not UTF-8 visibly (xnat_tui.text.safe), as
    # ls does on a terminal; no raw byte reaches it.
    done = subprocess.run(
        [sys.executable, "-m", "xnat_tui", "scan", str(tmp_path)], capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert b"dir\\xff/notes\\xfd.txt" in done.stdout
    assert b"\xfd" not in done.stdout


def test_a_rescan_of_an_unchanged_tree_says_so(
    capsys: pytest.CaptureFixture[str], aged_demo_copy: Path
) -> None:
    import os

    tree = aged_demo_copy
    code, first = _json(capsys, "--files", str(tree))
    assert code == 0 and first["stats"]["reused"] is False
    code, again = _json(capsys, "--files", str(tree))
    assert code == 0 and again["stats"]["reused"] is True
    assert again["sessions"] == first["sessions"]  # every file listed, as before
    assert again["problems"] == first["problems"]
    assert main(["scan", str(tree)]) == 0
    assert "tree unchanged since the last scan" in capsys.readouterr().out
    os.utime(next(tree.rglob("*.dcm")), None)
    assert main(["scan", str(tree)]) == 0
    out = capsys.readouterr().out
    assert "tree unchanged" not in out and "from cache" in out


def test_scan_shards_split_the_sessions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`scan --shard I/N` lists what `upload --shard I/N` would send: together, all."""
    import json

    from xnat_tui.dicom.synthetic import SeriesSpec, write_study

    for n in range(6):
        write_study(tmp_path / f"s{n}", patient_id=f"P{n}", series=[SeriesSpec("MR", 1, "T1", 1)])
    assert main(["scan", str(tmp_path), "--json"]) == 0
    every = {s["study_instance_uid"] for s in json.loads(capsys.readouterr().out)["sessions"]}
    assert len(every) == 6
    seen: list[str] = []
    for index in range(3):
        assert main(["scan", str(tmp_path), "--json", "--shard", f"{index}/3"]) == 0
        seen += [s["study_instance_uid"] for s in json.loads(capsys.readouterr().out)["sessions"]]
    assert sorted(seen) == sorted(every)
