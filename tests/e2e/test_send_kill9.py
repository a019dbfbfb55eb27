"""``xnat-tui send`` killed with SIGKILL mid-send, then ``xnat-tui transfers resume``
(issue 16, 4): only what was not acknowledged is sent again, and no instance reaches
the receiver twice. The receiver is dcmtk's storescp, slowed down (``--sleep-after``:
a second after each store) so the kill lands mid-send, and writing every received
object to its own file (``+uf``) so a duplicate would show up as a second file."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pydicom
import pytest

from tests.e2e.test_dcmtk_send import free_port, wait_listening
from tests.unit.transfer.e2e_support import cli, spawn
from xnat_tui.dicom.synthetic import SeriesSpec, write_study
from xnat_tui.transfer.journal import Journal
from xnat_tui.transfer.kinds import JobKind
from xnat_tui.transfer.types import JobState

pytestmark = pytest.mark.skipif(shutil.which("storescp") is None, reason="dcmtk not installed")


def received(out: Path) -> Counter[str]:
    """SOP Instance UID -> how many objects with it the receiver wrote."""
    return Counter(
        str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
        for p in out.iterdir()
        if p.is_file()
    )


def test_kill_9_mid_send_then_resume_sends_only_the_rest(tmp_path: Path) -> None:
    out = tmp_path / "received"
    out.mkdir()
    port = free_port()
    rx = subprocess.Popen(
        ["storescp", "-aet", "XNAT", "+xa", "+uf", "--sleep-after", "1"]
        + ["-od", str(out), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(port, rx)
        src = tmp_path / "src"
        write_study(src, patient_id="P1", series=[SeriesSpec("MR", 1, "T1", 5)])
        journal_path = tmp_path / "journal.sqlite3"
        args = ["--journal", str(journal_path)]
        sender = spawn(
            "send", str(src), "--to", f"XNAT@127.0.0.1:{port}", "--routing", "none",
            "--yes", "--json", *args,
        )  # fmt: skip
        # Wait (for another process: polling, not timing) until two acknowledgements
        # are journalled, then kill -9 while the receiver sleeps over the next one.
        deadline = time.monotonic() + 60
        done = 0
        while done < 2:
            assert sender.poll() is None, sender.communicate()
            assert time.monotonic() < deadline, "no acknowledgement journalled"
            time.sleep(0.05)
            if journal_path.exists():
                journal = Journal(journal_path)
                jobs = journal.jobs(kinds=[JobKind.SEND])
                done = len(journal.done_files(jobs[0].id)) if jobs else 0
                journal.close()
        os.kill(sender.pid, signal.SIGKILL)
        sender.wait(10)
        journal = Journal(journal_path)
        [job] = journal.jobs(kinds=[JobKind.SEND])
        acknowledged = len(journal.done_files(job.id))
        assert 2 <= acknowledged < 5 and not job.state.finished
        journal.close()

        # No REST server was named: the resume needs no login (nothing to look up).
        r = cli("transfers", "resume", "--yes", "--json", *args, timeout=120)
        assert json.loads(r.stdout), r.stderr  # a summary was printed
        journal = Journal(journal_path)
        assert len(journal.done_files(job.id)) == 5
        message = journal.job(job.id).message
        assert "all 5 instance(s) stored" in message, message
        assert journal.job(job.id).state is JobState.VERIFIED
    finally:
        rx.terminate()
        rx.wait(10)
    # Every instance arrived, none twice: the ones acknowledged (0x0000) before the kill
    # were not sent again by the resume.
    counts = received(out)
    sent = {
        str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in src.rglob("*.dcm")
    }
    assert set(counts) == sent
    assert all(n == 1 for n in counts.values()), counts
