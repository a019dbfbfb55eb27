"""What a command imports before it does its work: start-up is part of every transfer.

A send to a bare receiver (issue 16's benchmark runs storescu against us process for
process) must not load the DicomEdit package, the anonymizer's process pool or the
upload packer; a download must not load pydicom at all. Each check runs the real
command in a fresh interpreter and lists the modules it loaded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_dcmtk_send import free_port, wait_listening
from xnat_tui.dicom.synthetic import SeriesSpec, write_study
from xnat_tui.sandbox.server import SandboxThread

ROOT = Path(__file__).resolve().parents[2]


def _loaded_by(
    argv: list[str], tmp_path: Path, before_main: str = "", password: str = ""
) -> set[str]:
    """The modules loaded once ``xnat-tui ARGV`` has run (in a fresh interpreter)."""
    code = (
        "import sys\n"
        "from xnat_tui.cli import main\n"
        f"{before_main}\n"
        "try:\n"
        f"    code = main({argv!r})\n"
        "except SystemExit as exc:\n"
        "    code = exc.code\n"
        "sys.__stdout__.write('\\n'.join(['--modules--', *sorted(sys.modules)]))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT), XDG_STATE_HOME=str(tmp_path / "state"))
    env.update(XDG_CACHE_HOME=str(tmp_path / "cache"), XNAT_TUI_CONFIG=str(tmp_path / "no.toml"))
    for name in ("XNAT_HOST", "XNAT_USER", "XNAT_PASS", "PYTHONASYNCIODEBUG"):
        env.pop(name, None)
    if password:
        env["XNAT_PASS"] = password
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert "--modules--" in proc.stdout, proc.stderr[-2000:]
    return set(proc.stdout.split("--modules--", 1)[1].split())


def _heavy(loaded: set[str], *prefixes: str) -> list[str]:
    return sorted(m for m in loaded if m.startswith(prefixes))


def test_send_without_routing_or_anonymization_loads_no_dicomedit(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_study(src, patient_id="P1", series=[SeriesSpec("MR", 1, "T1", 2)])
    # --dry-run: the same imports, scan and plan as a real send, without a receiver.
    argv = ["send", str(src), "--to", "XNAT@127.0.0.1:1", "--routing", "none"]
    loaded = _loaded_by([*argv, "--anon", "none", "--dry-run", "--json"], tmp_path)
    assert "xnat_tui.workflow.send" in loaded  # the command did run its path
    assert "xnat_tui.transfer.anon" in loaded  # the set is built, but stays empty
    offenders = _heavy(
        loaded,
        "xnat_tui.dicom.dicomedit",
        "xnat_tui.transfer.packer",
        "stream_zip",
        "concurrent.futures.process",
        "aiohttp",
        "textual",
        # pydicom (with numpy and requests) and pynetdicom cost ~0.2 s: more than
        # storescu takes to send 200 MB. The association PDUs are our own (acse.py).
        "pydicom",
        "pynetdicom",
        "numpy",
    )
    assert offenders == []


@pytest.mark.skipif(shutil.which("storescp") is None, reason="dcmtk not installed")
def test_a_real_send_loads_neither_pydicom_nor_pynetdicom(tmp_path: Path) -> None:
    """Associating, sending and releasing with our own PDU code: the whole send."""
    src = tmp_path / "src"
    write_study(src, patient_id="P1", series=[SeriesSpec("MR", 1, "T1", 3)])
    port = free_port()
    received = tmp_path / "received"
    received.mkdir()
    proc = subprocess.Popen(
        ["storescp", "-aet", "XNAT", "+xa", "-od", str(received), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(port, proc)
        argv = ["send", str(src), "--to", f"XNAT@127.0.0.1:{port}", "--routing", "none"]
        argv += ["--anon", "none", "--yes", "--json", "--journal", str(tmp_path / "j.db")]
        loaded = _loaded_by(argv, tmp_path)
    finally:
        proc.terminate()
        proc.wait(10)
    assert len(list(received.iterdir())) == 3  # the send did happen
    assert _heavy(loaded, "pydicom", "pynetdicom", "numpy") == []


def test_download_help_and_import_path_load_no_pydicom(tmp_path: Path) -> None:
    # The modules download's run imports before it talks to the server.
    preload = (
        "from xnat_tui.commands._console import Reporter, run_until_done\n"
        "from xnat_tui.transfer.journal import Journal\n"
        "from xnat_tui.workflow import download\n"
        "from xnat_tui.commands._connect import open_client, report_error\n"
    )
    loaded = _loaded_by(["download", "--help"], tmp_path, preload)
    assert "xnat_tui.commands.download" in loaded
    assert _heavy(loaded, "pydicom", "pynetdicom", "xnat_tui.dicom.dicomedit", "textual") == []


def test_a_real_download_loads_no_pydicom(sandbox_thread: SandboxThread, tmp_path: Path) -> None:
    """Login, listing, plan and the per-file GETs: the anonymization settings every
    login reads brought DicomEdit and pydicom (~0.2 s) into each download."""
    out = tmp_path / "out"
    argv = ["download", "--project", "PILOT", "--out", str(out), "--yes", "--json"]
    argv += ["--server", sandbox_thread.url, "--user", "alice"]
    loaded = _loaded_by([*argv, "--journal", str(tmp_path / "j.db")], tmp_path, password="alice")
    assert any(p.suffix == ".dcm" for p in out.rglob("*"))  # it did download
    assert _heavy(loaded, "pydicom", "pynetdicom", "xnat_tui.dicom.dicomedit", "textual") == []
    # Nor what only the browser or a --catalog needs (~10 ms of a download's start).
    assert _heavy(loaded, "xnat_tui.workflow.browse", "xml.etree") == []


def test_a_scan_reads_routing_without_loading_pydicom_in_the_main_process(
    tmp_path: Path,
) -> None:
    # The routing proposal of every session with a Study Description went through the
    # keyword -> tag lookup, which loads pydicom's dictionary (~0.2 s of each scan).
    src = tmp_path / "src"
    write_study(
        src,
        patient_id="P1",
        series=[SeriesSpec("MR", 1, "T1", 2)],
        study_description="xnat://PILOT/S1/E1",
    )
    loaded = _loaded_by(["scan", "--json", "--no-cache", str(src)], tmp_path)
    assert "xnat_tui.dicom.routing" in loaded  # the proposal was made
    assert _heavy(loaded, "pydicom") == []
