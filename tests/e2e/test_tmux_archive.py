"""End to end in a real terminal, from a nested archive: tmux runs ``xnat-tui --sandbox
IN`` where IN holds ``bundle.tgz`` (a tgz holding a session's zip); keys mark the
archive in the Folders pane, scan it, pick PILOT and upload. Then every file of the
session must be in PILOT's archive, byte for byte (MD5s through the REST API).

Slow (~20 s): marked ``e2e``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_tmux import WIDTH, Tmux, rest, rows, sandbox_app
from tests.fixtures.archives import make_archive
from xnat_tui.dicom.synthetic import SeriesSpec, WrittenStudy, write_study

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


@pytest.fixture
def bundle(tmp_path: Path) -> tuple[Path, WrittenStudy]:
    study = write_study(
        tmp_path / "src" / "TMUXARC",
        patient_id="TMUXARC",
        series=[SeriesSpec("MR", 1, "T1", 3), SeriesSpec("MR", 2, "T2", 2)],
    )
    inner = make_archive(study.root, tmp_path / "parts" / "session.zip")
    archive = make_archive([("exports/session.zip", inner)], tmp_path / "in" / "bundle.tgz")
    return archive, study


@pytest.fixture
def tmux(tmp_path: Path, bundle: tuple[Path, WrittenStudy]) -> Iterator[tuple[Tmux, int]]:
    # Sessions go straight to the archive, where the server lists MD5 digests.
    Path(os.environ["XNAT_TUI_CONFIG"]).write_text('[defaults]\ndestination = "archive"\n')
    with sandbox_app("arc", tmp_path / "sandbox", str(bundle[0].parent)) as app:
        yield app


def test_mark_scan_upload_a_nested_archive_in_tmux(
    tmux: tuple[Tmux, int], bundle: tuple[Path, WrittenStudy]
) -> None:
    t, port = tmux
    _archive, study = bundle
    t.wait_for(r"alice @ http://127\.0\.0\.1", timeout=60)
    t.wait_for(r"bundle\.tgz \(archive\)")
    # The cursor starts on the tree's root: the archive is the next node. Mark, scan.
    t.keys("Down", "m")
    t.wait_for(r"bundle\.tgz")
    t.keys("s")
    scanned = t.wait_for(r"Scan done: 5 DICOM files", timeout=60)
    t.keys("C-p")
    t.wait_for("🔎")
    t.type("Use project PILOT")
    t.wait_for(r"Use project PILOT \(")
    t.keys("Enter")
    screen = t.wait_for(r"TMUXARC.*new", timeout=20)
    t.keys("2", "u")
    t.wait_for(r"Queue upload\?", timeout=20)
    t.keys("y")
    screen = t.wait_for(r"verified", timeout=90)
    assert "failed" not in screen

    # Every file on the server, byte for byte, through the REST API.
    experiments = rows(rest(port, "/data/projects/PILOT/experiments?format=json"))
    mine = [e for e in experiments if str(e.get("label", "")).startswith("TMUXARC")]
    assert len(mine) == 1, experiments
    eid = mine[0]["ID"]
    scans = rows(rest(port, f"/data/experiments/{eid}/scans?format=json"))
    digests = sorted(
        f["digest"]
        for s in scans
        for f in rows(
            rest(port, f"/data/experiments/{eid}/scans/{s['ID']}/resources/DICOM/files?format=json")
        )
    )
    assert {s["ID"] for s in scans} == {"1", "2"}
    assert digests == sorted(hashlib.md5(p.read_bytes()).hexdigest() for p in study.paths)
    keep = os.environ.get("XNAT_TUI_KEEP_SCREENS")
    if keep:  # for a person to look at what the terminal showed
        Path(keep).write_text(f"{scanned}\n{'=' * WIDTH}\n{screen}")
