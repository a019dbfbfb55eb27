"""``xnat-tui anonymize``: preview writes nothing, --out mirrors the tree, sources untouched."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from pydicom import dcmread

from xnat_tui.cli import main

from ._data import vector_dataset, write_file

SITE = """version "6.1"
project != "Unassigned" ? (0008,1030) := project
(0010,0010) := subject
(0010,0020) := format["{0}_{1}", session, visit]
describe visit "Visit number"
"""
VARS = ["--var", "project=P1", "--var", "subject=S1", "--var", "session=S1_MR", "--var", "visit=v2"]


def _tree(root: Path) -> dict[Path, tuple[bytes, float]]:
    """Two series in nested folders, plus a non-DICOM file; returns a snapshot."""
    for series, uid in (("t1", "1.2.3.10"), ("t2", "1.2.3.20")):
        for i in range(2):
            ds = vector_dataset()
            ds.SeriesInstanceUID = uid
            ds.SeriesDescription = series
            ds.SOPInstanceUID = f"{uid}.{i}"
            write_file(root / "study" / series / f"{i}.dcm", ds)
    (root / "study" / "README.txt").write_text("not dicom")
    return _snapshot(root)


def _snapshot(root: Path) -> dict[Path, tuple[bytes, float]]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            os.utime(p, (1_500_000_000, 1_500_000_000))
            out[p] = (p.read_bytes(), p.stat().st_mtime)
    return out


def _unchanged(snapshot: dict[Path, tuple[bytes, float]], root: Path) -> None:
    now = {p: (p.read_bytes(), p.stat().st_mtime) for p in root.rglob("*") if p.is_file()}
    assert now == snapshot


def test_preview_prints_one_diff_per_series_and_writes_nothing(tmp_path, capsys) -> None:
    src = tmp_path / "src"
    snap = _tree(src)
    script = tmp_path / "site.das"
    script.write_text(SITE)
    os.chdir(tmp_path)
    assert main(["anonymize", str(src), "--script", str(script), "--preview", *VARS]) == 0
    out = capsys.readouterr().out
    assert out.count("== ") == 2  # one sample per series
    assert "PatientName" in out and "DOE^JANE  ->  S1" in out
    assert "MRN12345  ->  S1_MR_v2" in out
    _unchanged(snap, src)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site.das", "src"]


def test_preview_json(tmp_path, capsys) -> None:
    src = tmp_path / "src"
    _tree(src)
    args = ["anonymize", str(src), "--profile", "basic", "--preview", "--json", *VARS]
    assert main(args) == 0
    import json

    report = json.loads(capsys.readouterr().out)
    assert len(report) == 2
    kinds = {c["keyword"]: c["kind"] for c in report[0]["changes"]}
    assert kinds["SeriesDescription"] == "removed"  # X
    assert kinds["PatientBirthDate"] == "changed"  # Z: emptied
    assert kinds["StudyInstanceUID"] == "changed"
    assert kinds["PatientIdentityRemoved"] == "added"


def test_out_mirrors_layout_and_sources_are_untouched(tmp_path, capsys) -> None:
    src = tmp_path / "src"
    snap = _tree(src)
    out = tmp_path / "anon"
    assert main(["anonymize", str(src), "--profile", "basic", "--out", str(out), *VARS]) == 0
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    # Paths are relative to the input folder.
    assert written == ["study/t1/0.dcm", "study/t1/1.dcm", "study/t2/0.dcm", "study/t2/1.dcm"]
    ds = dcmread(out / "study/t1/0.dcm")
    assert ds.PatientName == "S1"
    assert "SeriesDescription" not in ds
    assert ds.PatientBirthDate == ""
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.SOPInstanceUID.startswith("2.25.")
    _unchanged(snap, src)
    assert "README.txt: not DICOM" in capsys.readouterr().err


def test_out_of_a_single_folder_and_rerun_is_byte_identical(tmp_path) -> None:
    src = tmp_path / "src"
    _tree(src)
    script = tmp_path / "site.das"
    script.write_text(SITE)
    for out in ("a", "b"):
        args = ["anonymize", str(src / "study" / "t1"), "--script", str(script)]
        assert main([*args, "--out", str(tmp_path / out), *VARS, "--jobs", "1"]) == 0
    assert (tmp_path / "a" / "0.dcm").read_bytes() == (tmp_path / "b" / "0.dcm").read_bytes()


def test_rejected_script_writes_nothing(tmp_path, capsys) -> None:
    src = tmp_path / "src"
    snap = _tree(src)
    bad = tmp_path / "bad.das"
    bad.write_text(
        'version "6.1"\n(0010,0010) := subject\n'
        '(0008,0020) := shiftDateByIncrement[(0008,0020), "1"]\n'
    )
    out = tmp_path / "anon"
    assert main(["anonymize", str(src), "--script", str(bad), "--out", str(out), *VARS]) == 1
    err = capsys.readouterr().err
    assert "bad.das:3:" in err and "nothing written" in err
    assert not out.exists()
    _unchanged(snap, src)


def test_de4_script_is_rejected(tmp_path, capsys) -> None:
    src = tmp_path / "src"
    _tree(src)
    de4 = tmp_path / "dian.das"
    de4.write_text('- (0008,0050)\n(0008,0080) = "X" : (0008,0080) := "Y"\n')
    assert main(["anonymize", str(src), "--script", str(de4), "--preview"]) == 1
    assert "DicomEdit 4" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--script", "SITE", "--preview"], "--var visit=...   (Visit number)"),
        (["--script", "SITE", "--preview", "--retain-dates", *VARS], "need --profile basic"),
        (["--profile", "basic", "--preview", "--var", "oops"], "NAME=VALUE"),
        (["--profile", "basic", "--out", "SRC/inner", *VARS], "inside the input folder"),
    ],
)
def test_usage_errors(tmp_path, capsys, extra: list[str], needle: str) -> None:
    src = tmp_path / "src"
    _tree(src)
    script = tmp_path / "site.das"
    script.write_text(SITE)
    extra = [e.replace("SITE", str(script)).replace("SRC", str(src)) for e in extra]
    assert main(["anonymize", str(src), *extra]) == 2
    assert needle in capsys.readouterr().err
    assert not (src / "inner").exists()


def test_show_script_prints_the_generated_basic_profile(capsys) -> None:
    assert main(["anonymize", ".", "--profile", "basic", "--retain-uids", "--show-script"]) == 0
    out = capsys.readouterr().out
    assert 'version "6.1"' in out and "retain UIDs" in out
    assert "hashUID[(0020,000D)]" not in out


def test_file_that_fails_is_reported_and_others_written(tmp_path, capsys) -> None:
    src = tmp_path / "src"
    _tree(src)
    script = tmp_path / "s.das"
    script.write_text('version "6.1"\n(0008,103E) := substring[(0008,103E), 0, 2]\n')
    ds = vector_dataset()
    ds.SeriesDescription = "x"
    ds.SOPInstanceUID = "1.2.3.99"
    write_file(src / "study" / "short.dcm", ds)
    out = tmp_path / "anon"
    assert main(["anonymize", str(src), "--script", str(script), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "short.dcm" in err and "s.das:2" in err
    assert len(list(out.rglob("*.dcm"))) == 4
    assert dcmread(io.BytesIO((out / "study/t1/0.dcm").read_bytes())).SeriesDescription == "t1"


def test_project_scripts_come_from_the_server(
    tmp_path, capsys, monkeypatch, sandbox_thread
) -> None:
    """--project applies the server's enabled scripts (demo STUDY_B has a project script)."""
    src = tmp_path / "src"
    snap = _tree(src)
    monkeypatch.setenv("XNAT_PASS", "admin")
    args = ["anonymize", str(src / "study" / "t1"), "--project", "STUDY_B", "--preview"]
    conn = ["--server", sandbox_thread.url, "--user", "admin"]
    assert main([*args, *conn, "--var", "subject=S1", "--var", "session=S1_CT"]) == 0
    out = capsys.readouterr().out
    assert "InstitutionName" in out and "STUDY_B site" in out
    assert "StudyComments" in out
    _unchanged(snap, src)


def test_out_through_the_process_pool_matches_serial(tmp_path, monkeypatch) -> None:
    import xnat_tui.commands.anonymize as command

    src = tmp_path / "src"
    _tree(src)
    base = ["anonymize", str(src), "--profile", "basic", *VARS]
    assert main([*base, "--out", str(tmp_path / "serial"), "--jobs", "1"]) == 0
    monkeypatch.setattr(command, "_POOL_THRESHOLD", 2)
    assert main([*base, "--out", str(tmp_path / "pool"), "--jobs", "2"]) == 0
    serial = sorted((tmp_path / "serial").rglob("*.dcm"))
    assert len(serial) == 4
    for path in serial:
        twin = tmp_path / "pool" / path.relative_to(tmp_path / "serial")
        assert twin.read_bytes() == path.read_bytes()


def test_lookup_table_from_a_file(tmp_path, capsys) -> None:
    src = tmp_path / "src"
    _tree(src)
    script = tmp_path / "s.das"
    script.write_text('version "6.1"\n(0010,0010) := lookup["pn", (0010,0010)]\n')
    table = tmp_path / "lookup.txt"
    table.write_text("# site table\npn/DOE^JANE = SUBJ_0001\n")
    args = ["anonymize", str(src), "--script", str(script), "--preview"]
    assert main([*args, "--lookup", str(table)]) == 0
    assert "DOE^JANE  ->  SUBJ_0001" in capsys.readouterr().out
    assert main(args) == 1  # refused up front: no table for lookup[]
    assert "lookup" in capsys.readouterr().err


def test_files_deep_in_nested_folders_are_found(tmp_path, capsys) -> None:
    src = tmp_path / "src"
    ds = vector_dataset()
    ds.SOPInstanceUID = "1.2.3.99.1"
    write_file(src / "a" / "b" / "c" / "d" / "x.dcm", ds)
    (src / "a" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    assert main(["anonymize", str(src), "--profile", "basic", "--preview", *VARS]) == 0
    captured = capsys.readouterr()
    assert "== " in captured.out
    assert ".DS_Store" not in captured.err


def test_an_unreadable_folder_is_reported_not_skipped_silently(
    tmp_path, capsys, monkeypatch
) -> None:
    from xnat_tui.dicom import walk as walk_module
    from xnat_tui.dicom.model import Problem, ProblemKind

    src = tmp_path / "src"
    _tree(src)
    locked = str(src / "study" / "t2")
    real_walk = walk_module.walk

    def walk(roots, *args, **kwargs):  # the real walk, with t2 refusing to be listed
        for event in real_walk(roots, *args, **kwargs):
            if not isinstance(event, Problem) and event.path == locked:
                yield Problem(locked, ProblemKind.UNREADABLE, "cannot list folder: denied")
                continue
            yield event

    monkeypatch.setattr(walk_module, "walk", walk)
    out = tmp_path / "out"
    assert main(["anonymize", str(src), "--profile", "basic", "--out", str(out), *VARS]) == 1
    err = capsys.readouterr().err
    assert f"{locked}: cannot list folder: denied" in err
    assert "1 folder(s) could not be read" in err
    assert sorted(p.name for p in out.rglob("*.dcm")) == ["0.dcm", "1.dcm"]  # t1's


@pytest.mark.parametrize("command", ["upload", "anonymize"])
def test_both_commands_reject_a_bad_var_the_same_way(tmp_path, capsys, command: str) -> None:
    src = tmp_path / "src"
    _tree(src)
    extra = ["--project", "P"] if command == "upload" else ["--profile", "basic", "--preview"]
    for bad, said in (
        ("oops", "--var 'oops': expected NAME=VALUE"),
        ("9x=1", "--var '9x=1': expected NAME=VALUE"),
        ("visit=", "--var visit: a value is required"),
        ("visit=a\\b", "--var visit: control characters and backslashes are not allowed"),
    ):
        assert main([command, str(src), *extra, "--var", bad]) == 2
        assert said in capsys.readouterr().err
