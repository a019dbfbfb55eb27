"""Our C-STORE sender against dcmtk's storescp, the third-party receiver (issue 16, 7).

Every instance is received; with ``--routing none --anon none`` every data set is
byte-identical to the source; routing is written only into the copies sent; a receiver
on a closed port gives an error that says what to check.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pynetdicom.dsutils import split_dataset

from tests.unit.transfer.e2e_support import cli, digests
from xnat_tui.dicom.synthetic import SeriesSpec, write_study

pytestmark = pytest.mark.skipif(shutil.which("storescp") is None, reason="dcmtk not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(500):
        if proc.poll() is not None:
            raise RuntimeError("storescp exited")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                return
        except OSError:
            time.sleep(0.01)  # polling for a subprocess to bind, not timing a result
    raise RuntimeError("storescp did not start")


@pytest.fixture
def storescp(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    out = tmp_path / "received"
    out.mkdir()
    port = free_port()
    # +B: write what arrives bit for bit; +xa: accept every syntax dcmtk knows;
    # --fork: one process per association (several associations at once).
    proc = subprocess.Popen(
        ["storescp", "--fork", "-aet", "XNAT", "+xa", "+B", "-od", str(out), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(port, proc)
        yield port, out
    finally:
        proc.terminate()
        proc.wait(10)


def body(path: Path) -> bytes:
    """The data set without the file meta (storescp writes its own meta group)."""
    _meta, offset = split_dataset(path)
    return path.read_bytes()[offset:]


def study(tmp_path: Path, *extra: SeriesSpec) -> Path:
    src = tmp_path / "src"
    write_study(
        src,
        patient_id="SUBJ 01",
        study_description="Brain",
        series=[SeriesSpec("MR", 1, "T1", 3), SeriesSpec("CT", 2, "Scout", 2), *extra],
    )
    return src


def test_routing_none_every_data_set_is_byte_identical(
    tmp_path: Path, storescp: tuple[int, Path]
) -> None:
    port, out = storescp
    # A 1.3 MB instance: many P-DATA PDUs (storescp takes 16 KB) over more than one of
    # the sender's read blocks.
    src = study(tmp_path, SeriesSpec("MR", 3, "Big", 1, 800, 800))
    before = digests(src)
    r = cli(
        "send",
        str(src),
        "--to",
        f"XNAT@127.0.0.1:{port}",
        "--routing",
        "none",
        "--anon",
        "none",
        "--yes",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["ok"] and result["jobs"][0]["state"] == "verified"
    sources = {pydicom.dcmread(p).SOPInstanceUID: p for p in src.rglob("*.dcm")}
    received = {pydicom.dcmread(p).SOPInstanceUID: p for p in out.iterdir()}
    assert received.keys() == sources.keys() and len(received) == 6
    for uid, path in sources.items():
        assert body(received[uid]) == body(path), uid
    assert digests(src) == before  # the user's files are untouched


def test_routing_is_written_only_into_the_copies(
    tmp_path: Path, storescp: tuple[int, Path]
) -> None:
    port, out = storescp
    src = study(tmp_path)
    before = digests(src)
    r = cli(
        "send",
        str(src),
        "--to",
        f"XNAT@127.0.0.1:{port}",
        "--project",
        "PILOT",
        "--subject",
        "S01",
        "--session",
        "S01_MR1",
        "--associations",
        "2",
        "--yes",
    )
    assert r.returncode == 0, r.stderr
    # The preview shows the exact value written.
    assert "PatientComments = 'Project: PILOT Subject: S01 Session: S01_MR1'" in r.stderr
    copies = [pydicom.dcmread(p) for p in out.iterdir()]
    assert len(copies) == 5
    assert {c.PatientComments for c in copies} == {"Project: PILOT Subject: S01 Session: S01_MR1"}
    assert digests(src) == before
    assert all("PatientComments" not in pydicom.dcmread(p) for p in src.rglob("*.dcm"))


def test_site_routing_in_study_description(tmp_path: Path, storescp: tuple[int, Path]) -> None:
    port, out = storescp
    src = study(tmp_path)
    r = cli(
        "send",
        str(src),
        "--to",
        f"XNAT@127.0.0.1:{port}",
        "--project",
        "PILOT",
        "--subject",
        "S01",
        "--session",
        "E1",
        "--routing",
        "site",
        "--yes",
    )
    assert r.returncode == 0, r.stderr
    assert {pydicom.dcmread(p).StudyDescription for p in out.iterdir()} == {"xnat://PILOT/S01/E1"}


def test_closed_port_says_nothing_listens(tmp_path: Path) -> None:
    port = free_port()
    r = cli(
        "send", str(study(tmp_path)), "--to", f"XNAT@127.0.0.1:{port}", "--routing", "none", "--yes"
    )
    assert r.returncode == 1
    assert "connection refused: nothing listens on port" in r.stderr


def test_usage_errors(tmp_path: Path) -> None:
    src = study(tmp_path)
    r = cli("send", str(src), "--to", "XNAT@127.0.0.1:99999", "--routing", "none")
    assert r.returncode == 2 and "port" in r.stderr
    r = cli("send", str(src), "--to", "XNAT@127.0.0.1:8104")
    assert r.returncode == 2 and "needs --project P or --routed" in r.stderr
