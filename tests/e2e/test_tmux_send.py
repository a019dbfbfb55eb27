"""End to end in a real terminal, over DICOM (issue 16): tmux runs ``xnat-tui --sandbox
IN``, which also starts the sandbox's DICOM receiver and offers it as the destination
``sandbox``. Keys scan IN, choose PILOT, and in the Labels pane ``ctrl+t`` sends the
session over C-STORE to ``sandbox``. The Transfers panel must show the job verified with
its instance counts, and the server's REST API must hold the session (prearchive or
archive) with every instance, byte for byte.

Slow (~20 s): marked ``e2e``.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest

from tests.e2e.test_tmux import WIDTH, Tmux, rest, rows
from tests.e2e.test_tmux_archive import tmux  # noqa: F401  (the fixture, on bundle)
from xnat_tui.dicom.synthetic import SeriesSpec, WrittenStudy, write_study

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


@pytest.fixture
def bundle(tmp_path: Path) -> tuple[Path, WrittenStudy]:
    """The session's folder for the app's start path (test_tmux_archive's ``tmux``
    fixture starts ``xnat-tui --sandbox`` on this path's parent)."""
    study = write_study(
        tmp_path / "in" / "TMUXSEND",
        patient_id="TMUXSEND",
        series=[SeriesSpec("MR", 1, "T1", 3), SeriesSpec("MR", 2, "T2", 2)],
    )
    return study.root, study


def test_send_a_session_over_dicom_to_the_sandbox_receiver_in_tmux(
    tmux: tuple[Tmux, int],  # noqa: F811  (the imported fixture)
    bundle: tuple[Path, WrittenStudy],
) -> None:
    t, port = tmux
    _root, study = bundle
    screens: list[str] = []
    t.wait_for(r"alice @ http://127\.0\.0\.1", timeout=60)
    t.wait_for(r"─ Folders ─")
    t.keys("s")
    screens.append(t.wait_for(r"Scan done: 5 DICOM files", timeout=60))
    t.keys("C-p")
    t.wait_for("🔎")
    t.type("Use project PILOT")
    t.wait_for(r"Use project PILOT \(")
    t.keys("Enter")
    t.wait_for(r"TMUXSEND.*new", timeout=20)
    # The Labels pane's send: REST upload or a DICOM destination; the sandbox's
    # receiver is the second choice.
    t.keys("4", "C-t")
    screens.append(t.wait_for(r"sandbox", timeout=20))
    t.keys("Down")
    screens.append(t.wait_for(r"Send 1 session\(s\) to", timeout=20))
    t.keys("Enter")
    # The job in the Transfers panel: verified after the receiver's idle time, with
    # the instances counted.
    screen = t.wait_for(r"dicom\s+PILOT/TMUXSEND\S*\s+verified", timeout=90)
    screens.append(screen)
    assert "failed" not in screen
    panel = screen.split("─ Transfers ─", 1)[1]
    assert re.search(r"verified", panel), panel
    # Every instance counted (files 5/5) and the final counts in the message.
    assert re.search(r"verified\s.*100%.*\b5/5\b", panel), panel
    assert re.search(r"all 5 i", panel), panel

    # On the server, through REST: one session in PILOT with every instance, byte
    # for byte (MD5s), in the prearchive or, if PILOT auto-archives, the archive.
    local = sorted(hashlib.md5(p.read_bytes()).hexdigest() for p in study.paths)
    entries = [
        r
        for r in rows(rest(port, "/data/prearchive/projects/PILOT?format=json"))
        if str(r.get("subject", "")) == "TMUXSEND" or "TMUXSEND" in str(r.get("name", ""))
    ]
    keep = os.environ.get("XNAT_TUI_KEEP_SCREENS")
    if keep:  # for a person to look at what the terminal showed
        Path(keep).write_text(f"\n{'=' * WIDTH}\n".join(screens))
    if entries:
        assert len(entries) == 1, entries
        base = f"/data{entries[0]['url']}"
    else:
        experiments = [
            e
            for e in rows(rest(port, "/data/projects/PILOT/experiments?format=json"))
            if "TMUXSEND" in str(e.get("label", ""))
        ]
        assert len(experiments) == 1, "the session is neither in the prearchive nor archived"
        base = f"/data/experiments/{experiments[0]['ID']}"
    scans = rows(rest(port, f"{base}/scans?format=json"))
    assert {s["ID"] for s in scans} == {"1", "2"}
    files = [
        f
        for s in scans
        for f in rows(rest(port, f"{base}/scans/{s['ID']}/resources/DICOM/files?format=json"))
    ]
    assert len(files) == 5
    digests = sorted(str(f.get("digest", "")) for f in files)
    if all(digests):
        assert digests == local
