"""External text is data: the one sanitiser (xnat_tui.text) and the CLI output built on it.

Hostile strings — terminal escapes (an OSC title change), BEL, NUL, Rich markup, a
200-character value, combining and wide characters, bytes that are not UTF-8 — go
through ``safe`` and come out visible, one line, and as wide as computed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from xnat_tui.text import cells, fit, pad, safe

ESC = "\x1b"
OSC_TITLE = "\x1b]0;pwned\x07"
HOSTILE = {
    "osc-title": f"Doe^{OSC_TITLE}John",
    "csi": "T1 \x1b[31mred\x1b[0m",
    "bel-nul": "a\x07b\x00c",
    "markup-close": "T1 [/MPRAGE]",
    "markup-bold": "[b]bold[/b]",
    "brackets": "ep2d_diff [b1000]",
    "long": "x" * 200,
    "combining-wide": "Mu\u0308ller 山田太郎",
    "surrogate": "scan\udcff\udcfe.dcm",
    "c1-csi": "a\x9b31mb",
    "bidi": "abc\u202edef",
    "newline": "line1\nline2\r\n",
}


def test_control_characters_are_shown_not_obeyed() -> None:
    assert safe(OSC_TITLE) == "␛]0;pwned␇"
    assert safe("a\x00b\x7f") == "a␀b␡"
    assert safe("a\x9b31mb") == "a\\x9b31mb"
    assert safe("abc\u202edef") == "abc\\u202edef"
    assert safe("line1\nline2") == "line1␊line2"


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_every_hostile_string_comes_out_printable_on_one_line(name: str) -> None:
    shown = safe(HOSTILE[name])
    assert shown.isprintable() or all(ch.isprintable() or ch in "\u0308" for ch in shown), repr(
        shown
    )
    assert ESC not in shown and "\n" not in shown and "\x07" not in shown
    shown.encode("utf-8")  # no lone surrogate left: writable to any UTF-8 terminal


def test_markup_is_left_alone_and_plain_text_unchanged() -> None:
    # safe() knows nothing of markup: the renderers never parse it.
    assert safe("T1 [/MPRAGE]") == "T1 [/MPRAGE]"
    assert safe("ep2d_diff [b1000]") == "ep2d_diff [b1000]"
    assert safe("Müller 山田") == "Müller 山田"
    assert safe(None) == ""
    assert safe(b"ok\xff") == "ok\\xff"


def test_bytes_that_were_not_utf8_show_as_the_byte() -> None:
    name = os.fsdecode(b"scan\xff.dcm") if os.name == "posix" else "scan\udcff.dcm"
    assert safe(name) == "scan\\xff.dcm"


def test_lines_mode_keeps_line_breaks_and_nothing_else() -> None:
    assert safe("a\r\nb\rc\x1bd\te", lines=True) == "a\nb\nc␛d e"
    assert safe("ab\tc", lines=True) == "ab  c"


def test_widths_are_terminal_cells() -> None:
    assert cells("山田") == 4
    assert cells("Mu\u0308ller") == 6
    assert cells(safe(ESC)) == 1
    assert cells(fit("山田太郎", 5)) <= 5
    assert fit("x" * 200, 20) == "x" * 19 + "…"
    assert safe("x" * 200, limit=32) == "x" * 31 + "…"
    for text in ("山田太郎", "Mu\u0308ller", "plain", "x" * 50):
        assert cells(pad(text, 8)) == 8
        assert cells(pad(text, 8, right=True)) == 8


def _hostile_tree(root: Path) -> Path:
    from xnat_tui.dicom.synthetic import SeriesSpec, build_dataset, synthetic_uid, write_dataset

    study_uid = synthetic_uid("hostile", "study")
    study = {
        "StudyInstanceUID": study_uid,
        "PatientID": "P\x1b[2J01",
        "PatientName": f"Doe^{OSC_TITLE}Jöhn",
        "StudyDate": "20240115",
        "StudyDescription": "Brain [/MPRAGE] 山田",
        "extra": {"SpecificCharacterSet": "ISO_IR 192"},
    }
    descriptions = ["T1 [/MPRAGE]", "ep2d_diff [b1000]", "Über\x1b]0;x\x07" + "y" * 40]
    for number, description in enumerate(descriptions, start=1):
        spec = SeriesSpec(series_number=number, series_description=description, n_files=1)
        series_uid = synthetic_uid(study_uid, number)
        ds = build_dataset(
            study=study, spec=spec, series_uid=series_uid, index=number, instance_number=1
        )
        write_dataset(ds, root / f"sé{number}" / "im1.dcm")
    return root


def test_scan_text_output_has_no_raw_escapes_and_no_repr_quoting(tmp_path: Path) -> None:
    tree = _hostile_tree(tmp_path / "tree")
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", "XNAT_TUI_CONFIG": str(tmp_path / "c.toml")}
    done = subprocess.run(
        [sys.executable, "-m", "xnat_tui", "scan", "--no-cache", str(tree)],
        capture_output=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode("utf-8")
    assert ESC not in out and "\x07" not in out
    assert "Doe^␛]0;pwned␇Jöhn" in out
    assert "Brain [/MPRAGE] 山田" in out and "'Brain" not in out
    assert "T1 [/MPRAGE]" in out and "ep2d_diff [b1000]" in out
    # The series table keeps its columns: each description padded to 32 cells.
    rows = [line for line in out.splitlines() if "[/MPRAGE]" in line and line.startswith("  ")]
    assert rows and all(cells(line[9:41]) == 32 for line in rows), rows


def test_scan_on_an_ascii_terminal_replaces_what_it_cannot_write(tmp_path: Path) -> None:
    tree = _hostile_tree(tmp_path / "tree")
    env = {**os.environ, "PYTHONIOENCODING": "ascii", "XNAT_TUI_CONFIG": str(tmp_path / "c.toml")}
    done = subprocess.run(
        [sys.executable, "-m", "xnat_tui", "scan", "--no-cache", str(tree)],
        capture_output=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr.decode("ascii", "replace")
    assert b"Traceback" not in done.stderr
    out = done.stdout
    assert out.isascii() and b"\x1b" not in out
    assert b"J\\xf6hn" in out  # ö replaced, visibly
    assert b"T1 [/MPRAGE]" in out


def test_upload_plan_lines_contain_no_escape() -> None:
    from xnat_tui.commands._console import planned_job_lines
    from xnat_tui.transfer.plan import DroppedSeries, JobRequest, PlanIssue, PlannedJob, Verdict
    from xnat_tui.transfer.types import SourceSeries, SourceSession

    kept = SourceSeries("1.2.3.1", 1, "ep2d_diff [b1000]")
    dropped = SourceSeries("1.2.3.2", 2, f"T1 [/MPRAGE]{OSC_TITLE}")
    session = SourceSession(
        "1.2.3", [kept, dropped], root=Path("/data") / f"Doe{ESC}[2J" / "s\udcff"
    )
    job = PlannedJob(
        request=JobRequest(session, "PILOT", "S\x1b[1m", "L[/x]"),
        verdict=Verdict.NEW,
        series=[kept],
        dropped=[DroppedSeries(dropped, f"filtered by {OSC_TITLE}")],
        issues=[PlanIssue("warning", "server", f"the server said {ESC}[31mno\x00")],
    )
    text = "\n".join(planned_job_lines(job))
    assert ESC not in text and "\x07" not in text and "\x00" not in text
    assert "dropped series 2 'T1 [/MPRAGE]␛]0;pwned␇'" in text
    assert "PILOT/S␛[1m/L[/x]" in text
    assert "s\\xff" in text
    assert "the server said ␛[31mno␀" in text


def test_a_tui_that_dies_of_an_exception_exits_non_zero(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Textual prints the traceback and sets return_code 1; run() itself returns None."""
    import argparse
    from types import SimpleNamespace

    from xnat_tui.ui import launch

    crashed = SimpleNamespace(run=lambda: None, return_code=1)
    monkeypatch.setenv("XNAT_TUI_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setattr(launch, "build_app", lambda args, cfg, start_path: crashed)
    monkeypatch.setattr(launch, "keys_from_terminal", lambda: "")
    monkeypatch.setattr(launch, "tune_runtime", lambda: None)
    args = argparse.Namespace(path=tmp_path, sandbox=False, server=None, profile=None)
    assert launch.run_tui(args) == 1
    crashed.return_code = 0
    assert launch.run_tui(args) == 0
