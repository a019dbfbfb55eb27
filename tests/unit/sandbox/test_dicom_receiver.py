"""The sandbox's DICOM receiver against dcmtk's storescu (issue 16, 6-7), and our
sender's association errors against it.

dcmtk sends; the receiver files the study into the prearchive session the site
pattern in Study Description names, or as Unassigned without one; the series import
filter drops instances yet answers 0x0000; calling AEs outside the allow-list and
unknown called AEs are rejected before anything is filed.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import pytest

from xnat_tui.dicom.synthetic import SeriesSpec, write_study
from xnat_tui.sandbox.autobuild import run_once
from xnat_tui.sandbox.prearchive_store import prearchive_of
from xnat_tui.sandbox.server import SandboxServer
from xnat_tui.transfer.cstore import DicomDestination, DicomSendError, open_link

pytestmark = pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk not installed")


async def storescu(port: int, files: list[Path], *, aet: str = "SCANNER", aec: str = "XNAT") -> int:
    proc = await asyncio.create_subprocess_exec(
        "storescu",
        "-aet",
        aet,
        "-aec",
        aec,
        "127.0.0.1",
        str(port),
        *map(str, files),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await proc.wait()


def study(dest: Path, description: str, series: list[SeriesSpec] | None = None) -> list[Path]:
    write_study(
        dest,
        patient_id="PAT 9",
        patient_name="Doe^Ann",
        study_description=description,
        series=series or [SeriesSpec("MR", 1, "T1", 3), SeriesSpec("MR", 2, "T2", 2)],
    )
    return sorted(dest.rglob("*.dcm"))


def sessions(server: SandboxServer) -> list[tuple[str, str, str, int, str]]:
    pre = prearchive_of(server.store)
    return [(s.project, s.subject, s.name, len(pre.files(s.id)), s.status) for s in pre.sessions()]


async def test_site_pattern_files_the_study_into_its_session(
    sandbox_factory: object, tmp_path: Path
) -> None:
    server = await sandbox_factory(dicom_port=0)  # type: ignore[operator]
    assert server.dicom is not None and server.dicom.port > 0
    before = sessions(server)
    files = study(tmp_path / "s", "xnat://PILOT/SUBJ_7/SUBJ_7_MR")
    assert await storescu(server.dicom.port, files) == 0
    new = [s for s in sessions(server) if s not in before]
    assert new == [("PILOT", "SUBJ_7", "SUBJ_7_MR", 5, "RECEIVING")]
    # After the idle time the session is built (PILOT keeps it in the prearchive).
    run_once(server.store, 5.0, now=time.time() + 5.0)
    assert ("PILOT", "SUBJ_7", "SUBJ_7_MR", 5, "READY") in sessions(server)


async def test_without_routing_the_study_is_unassigned(
    sandbox_factory: object, tmp_path: Path
) -> None:
    server = await sandbox_factory(dicom_port=0)  # type: ignore[operator]
    before = sessions(server)
    files = study(tmp_path / "s", "Brain MRI")
    assert await storescu(server.dicom.port, files) == 0
    new = [s for s in sessions(server) if s not in before]
    # XNAT's fallbacks: subject from PatientName, session from PatientID.
    assert new == [("", "Doe_Ann", "PAT_9", 5, "RECEIVING")]


async def test_filtered_series_answered_success_but_not_filed(
    sandbox_factory: object, tmp_path: Path
) -> None:
    server = await sandbox_factory(dicom_port=0)  # type: ignore[operator]
    before = sessions(server)
    files = study(
        tmp_path / "s",
        "xnat://STUDY_B/B1/B1_CT",
        [SeriesSpec("CT", 1, "Scout", 2), SeriesSpec("CT", 2, "Body", 3)],
    )
    assert await storescu(server.dicom.port, files) == 0  # every C-STORE-RSP was 0x0000
    new = [s for s in sessions(server) if s not in before]
    assert [(p, subj, n, count) for p, subj, n, count, _ in new] == [("STUDY_B", "B1", "B1_CT", 3)]


async def test_calling_ae_outside_the_allow_list_is_rejected(
    sandbox_factory: object, tmp_path: Path
) -> None:
    server = await sandbox_factory(dicom_port=0, dicom_allowed=("SCANNER",))  # type: ignore[operator]
    before = sessions(server)
    files = study(tmp_path / "s", "xnat://PILOT/S/E")
    assert await storescu(server.dicom.port, files, aet="INTRUDER") != 0
    assert await storescu(server.dicom.port, files, aec="NOT_XNAT") != 0
    assert sessions(server) == before
    # Our sender says what to check.
    contexts = [("1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.1.2.1")]
    dest = DicomDestination("XNAT", "127.0.0.1", server.dicom.port, "INTRUDER")
    with pytest.raises(DicomSendError, match="calling AE title not recognised.*INTRUDER"):
        await asyncio.to_thread(open_link, dest, contexts, timeout=10)
    wrong = DicomDestination("NOT_XNAT", "127.0.0.1", server.dicom.port, "SCANNER")
    with pytest.raises(DicomSendError, match="called AE title not recognised"):
        await asyncio.to_thread(open_link, wrong, contexts, timeout=10)
