"""Conformance with a third-party client: xnatpy's import service and prearchive API."""

from __future__ import annotations

from pathlib import Path

import xnat

from tests.unit.sandbox_import.helpers import series_files, stream_zip_bytes
from xnat_tui.sandbox.server import SandboxThread


def connect(sb: SandboxThread, user: str = "alice") -> xnat.XNATSession:
    return xnat.connect(sb.url, user=user, password=user, no_parse_model=True, loglevel="ERROR")


def test_import_then_list_move_archive_delete(
    sandbox_thread: SandboxThread, tmp_path: Path
) -> None:
    upload = tmp_path / "series.zip"
    upload.write_bytes(stream_zip_bytes(series_files(2, patient="XP1")))
    with connect(sandbox_thread) as session:
        imported = session.services.import_(
            upload,
            project="PILOT",
            subject="XP1",
            experiment="XP1_MR1",
            import_handler="DICOM-zip",
            content_type="application/zip",
        )
        assert imported.uri.startswith("/data/prearchive/projects/PILOT/")
        assert imported.uri.endswith("/XP1_MR1")

        listed = {s.label: s for s in session.prearchive.sessions("PILOT", allow_receiving=True)}
        assert {"XP1_MR1", "PIL_001_MR1", "PIL_900_MR1"} <= set(listed)
        mine = listed["XP1_MR1"]
        assert mine.status == "RECEIVING" and mine.subject == "XP1"
        # (xnatpy needs its parsed data model to wrap scans; read the table instead.)
        scans = session.get_json(mine.uri + "/scans")["ResultSet"]["Result"]
        assert [scan["ID"] for scan in scans] == ["1"]

        mine.rebuild(asynchronous=False)
        mine.move("STUDY_A", asynchronous=False)
        moved = {s.label: s for s in session.prearchive.sessions("STUDY_A")}
        assert moved["XP1_MR1"].status == "READY"

        try:
            moved["XP1_MR1"].archive(subject="XP1", experiment="XP1_MR1")
        except KeyError as exc:
            # The POST succeeded; without its parsed data model xnatpy cannot wrap the
            # returned xnat:mrSessionData URI. Anything else is a real failure.
            assert "xnat:mrSessionData" in str(exc)
        assert "XP1_MR1" not in {s.label for s in session.prearchive.sessions("STUDY_A")}
        experiments = session.get_json("/data/projects/STUDY_A/experiments")
        labels = {e["label"]: e for e in experiments["ResultSet"]["Result"]}
        assert labels["XP1_MR1"]["xsiType"] == "xnat:mrSessionData"

        ready = {s.label: s for s in session.prearchive.sessions("PILOT")}["PIL_001_MR1"]
        ready.delete(asynchronous=False)
        assert "PIL_001_MR1" not in {s.label for s in session.prearchive.sessions("PILOT")}
