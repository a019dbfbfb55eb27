"""End to end in a real terminal: tmux runs ``xnat-tui --sandbox``; keys open the server
browser, select the demo PILOT session, download it, and every file on disk must equal,
byte for byte, what the sandbox serves; the Transfers panel must say it was verified.

Slow: marked ``e2e``.
"""

from __future__ import annotations

import base64
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.test_tmux import Tmux, rest, rows, tmux  # noqa: F401 - the fixture

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def fetch(port: int, path: str) -> bytes:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    request.add_header("Authorization", "Basic " + base64.b64encode(b"alice:alice").decode())
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as reply:
        return bytes(reply.read())


def test_browse_select_download_byte_for_byte_in_tmux(
    tmux: tuple[Tmux, int, Path],  # noqa: F811 - the imported fixture
    tmp_path: Path,
) -> None:
    t, port, _ = tmux
    out = tmp_path / "downloaded"
    t.wait_for(r"alice @ http://127\.0\.0\.1", timeout=60)
    t.wait_for(r"─ Folders ─")
    t.keys("B")
    t.wait_for(r"PILOT\s+Pilot study", timeout=20)
    t.keys("Enter")  # open PILOT: its subjects and sessions load
    t.wait_for(r"PIL_900\s", timeout=20)
    t.keys("Down", "Enter")  # open subject PIL_900
    t.wait_for(r"PIL_900_MR1", timeout=20)
    t.keys("Down", "space")  # select the session
    t.wait_for(r"1 session\(s\) of 1 subject\(s\) in PILOT", timeout=10)
    t.keys("d")
    t.wait_for(r"Folder", timeout=10)
    t.keys("C-u")
    t.type(str(out))
    t.keys("C-s")
    t.wait_for(r"Downloading 1 session\(s\), 7 file\(s\)", timeout=30)
    t.keys("Escape")  # back to the workbench and its Transfers panel
    screen = t.wait_for(r"PIL_900_MR1.*verified", timeout=90)
    assert "↓" in screen.split("─ Transfers ─", 1)[1]

    experiments = rows(rest(port, "/data/projects/PILOT/experiments?format=json"))
    eid = next(e["ID"] for e in experiments if e["label"] == "PIL_900_MR1")
    listed = rows(rest(port, f"/data/experiments/{eid}/scans/ALL/files?format=json"))
    assert len(listed) == 7
    local = {p for p in out.rglob("*") if p.is_file()}
    assert len(local) == 7 and not [p for p in local if p.name.endswith(".part")]
    for row in listed:
        scan = row["URI"].split("/scans/", 1)[1].split("/", 1)[0]
        [path] = [
            p
            for p in local
            if p.name == row["Name"] and p.relative_to(out).parts[2].split("-")[0] == scan
        ]
        assert path.read_bytes() == fetch(port, row["URI"]), path
