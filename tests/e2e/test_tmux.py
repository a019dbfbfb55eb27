"""End to end in a real terminal: tmux runs ``xnat-tui --sandbox``; keys scan the demo
tree, pick a project, label a session and upload it. Then the REST API of the sandbox
(running inside the app's process, on a port we chose) must hold the session with all
of its files, and the screen must say it was verified.

Slow (~20 s): marked ``e2e``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

WIDTH, HEIGHT = 140, 45


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Tmux:
    def __init__(self, socket_name: str) -> None:
        self.socket = socket_name

    def run(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True
        )
        return done.stdout

    def keys(self, *keys: str, pause: float = 0.4) -> None:
        # A pause per key: focus changes must land before the next key is read.
        for key in keys:
            self.run("send-keys", "-t", "app", key)
            time.sleep(pause)

    def type(self, text: str) -> None:
        self.run("send-keys", "-t", "app", "-l", text)
        time.sleep(0.5)

    def capture(self) -> str:
        return self.run("capture-pane", "-p", "-t", "app")

    def wait_for(self, pattern: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.capture()
            if re.search(pattern, screen):
                return screen
            time.sleep(0.25)
        raise AssertionError(f"{pattern!r} never appeared; the screen shows:\n{screen}")


@contextlib.contextmanager
def sandbox_app(name: str, base: Path, *app_args: str) -> Iterator[tuple[Tmux, int]]:
    """``xnat-tui --sandbox [APP_ARGS]`` in a detached tmux session of WIDTH x HEIGHT, its
    sandbox on a free port with its data in ``base``; killed on exit."""
    if shutil.which("tmux") is None:
        pytest.fail("tmux is required (make test installs it)")
    port = free_port()
    t = Tmux(f"xnat-tui-e2e-{name}-{os.getpid()}-{port}")
    env = {
        "XNAT_TUI_SANDBOX_PORT": str(port),
        "XNAT_TUI_SANDBOX_DIR": str(base),
        "TERM": "xterm-256color",
        "COLORTERM": "truecolor",
    }
    # Same isolation as the rest of the suite (conftest sets these for this process).
    for var in (
        "HOME",
        "XDG_CONFIG_HOME",
        "XDG_STATE_HOME",
        "XDG_CACHE_HOME",
        "XNAT_TUI_CONFIG",
        "NO_PROXY",
        "PATH",
    ):
        if var in os.environ:
            env[var] = os.environ[var]
    command = " ".join(
        [
            "env",
            # The terminal size must come from tmux, not from inherited COLUMNS/LINES.
            "-u",
            "COLUMNS",
            "-u",
            "LINES",
            *(f"{k}={v}" for k, v in env.items()),
            sys.executable,
            "-m",
            "xnat_tui",
            "--sandbox",
            *app_args,
        ]
    )
    t.run("-f", "/dev/null", "new-session", "-d", "-s", "app", "-x", str(WIDTH), "-y",
          str(HEIGHT), command)  # fmt: skip
    # Detached sessions may start at the default 80x24; make the size explicit.
    subprocess.run(
        ["tmux", "-L", t.socket, "resize-window", "-t", "app", "-x", str(WIDTH), "-y", str(HEIGHT)],
        capture_output=True,
    )
    try:
        yield t, port
    finally:
        subprocess.run(["tmux", "-L", t.socket, "kill-server"], capture_output=True)


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[tuple[Tmux, int, Path]]:
    base = tmp_path / "sandbox"
    with sandbox_app("app", base) as (t, port):
        yield t, port, base


def rest(port: int, path: str) -> object:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    token = base64.b64encode(b"alice:alice").decode()
    request.add_header("Authorization", f"Basic {token}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as reply:
        return json.loads(reply.read().decode())


def rows(payload: object) -> list[dict[str, str]]:
    assert isinstance(payload, dict)
    return list(payload["ResultSet"]["Result"])


def session_row(screen: str, patient: str) -> int:
    """Index of ``patient`` among the rows of the Sessions table on the screen."""
    lines = screen.splitlines()
    header = next(i for i, line in enumerate(lines) if "Patient" in line and "Target" in line)
    body = []
    for line in lines[header + 1 :]:
        if "╰" in line:
            break
        body.append(line)
    return next(i for i, line in enumerate(body) if patient in line)


def test_scan_label_upload_verify_in_tmux(tmux: tuple[Tmux, int, Path]) -> None:
    t, port, base = tmux
    t.wait_for(r"alice @ http://127\.0\.0\.1", timeout=60)
    t.wait_for(r"─ Folders ─")
    # The folder tree opens on the demo tree: scan all of it.
    t.keys("s")
    screen = t.wait_for(r"Scan done: \d+ DICOM files", timeout=60)
    # Scan again: the tree has not changed, so its last result comes back whole. The
    # demo files were written at start-up, and files younger than 2 s are never
    # trusted, so it may take a scan or two before the result is kept.
    for _ in range(6):
        time.sleep(1)
        t.keys("s")
        try:
            screen = t.wait_for(r"tree unchanged\)", timeout=5)
            break
        except AssertionError:
            continue
    else:
        raise AssertionError(f"a rescan never said 'tree unchanged':\n{screen}")
    # Choose PILOT through the command palette (a state-aware command).
    t.keys("C-p")
    t.wait_for("🔎")
    t.type("Use project PILOT")
    t.wait_for(r"Use project PILOT \(")
    t.keys("Enter")
    t.wait_for(r"new subjects yes", timeout=20)
    screen = t.wait_for(r"Demo\^Alice.*new", timeout=20)
    # Highlight Demo^Alice's MR brain session and give it our own label.
    t.keys("2")
    for _ in range(session_row(screen, "Demo^Alice")):
        t.keys("Down", pause=0.2)
    t.keys("4", "Tab", "Tab")  # project -> subject -> session label
    t.keys("C-a", "C-k")
    t.type("E2E_BRAIN_1")
    screen = t.wait_for(r"E2E_BRAIN_1.*new", timeout=20)
    # Queue it (Tab leaves the input first): the confirmation screen, then yes.
    t.keys("Tab", "2", "u")
    t.wait_for(r"Queue upload\?", timeout=20)
    t.keys("y")
    screen = t.wait_for(r"E2E_BRAIN_1\s.*verified", timeout=90)
    assert "failed" not in screen

    # The server side, through the REST API: the session exists in PILOT's prearchive
    # (PILOT does not auto-archive) or archive, with every file of the local study.
    from xnat_tui.dicom.scan import scan_all

    local = scan_all([base / "demo-dicom" / "nested" / "DEMO001"], use_cache=False)
    assert len(local.sessions) == 1
    expected_files = local.sessions[0].file_count
    expected_scans = {s.label for s in local.sessions[0].scans.values()}

    entries = [
        r
        for r in rows(rest(port, "/data/prearchive/projects/PILOT?format=json"))
        if r.get("name") == "E2E_BRAIN_1"
    ]
    if entries:
        uri = entries[0]["url"]
        scans = rows(rest(port, f"/data{uri}/scans?format=json"))
        files = 0
        for scan in scans:
            listing = rest(port, f"/data{uri}/scans/{scan['ID']}/resources/DICOM/files?format=json")
            files += len(rows(listing))
        ids = {s["ID"] for s in scans}
    else:
        experiments = rows(
            rest(port, "/data/projects/PILOT/experiments?format=json&label=E2E_BRAIN_1")
        )
        assert experiments, "session not found in the prearchive nor the archive"
        eid = experiments[0]["ID"]
        scans = rows(rest(port, f"/data/experiments/{eid}/scans?format=json"))
        ids = {s["ID"] for s in scans}
        files = sum(
            len(
                rows(
                    rest(
                        port,
                        f"/data/experiments/{eid}/scans/{sid}/resources/DICOM/files?format=json",
                    )
                )
            )
            for sid in ids
        )
    assert ids == expected_scans
    assert files == expected_files
    # And the screen says so, in the Transfers panel too, every file counted (once
    # the notifications covering the right of the panel have timed out).
    screen = t.wait_for(rf"verified .*\b{expected_files}/{expected_files}\b", timeout=20)
    assert re.search(r"verified", screen.split("─ Transfers ─", 1)[1])
