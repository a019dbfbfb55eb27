"""Archiving into an existing session: merge and conflict rules (xnat-api.md §5.5)."""

from __future__ import annotations

from tests.unit.sandbox_import.conftest import Client
from tests.unit.sandbox_import.helpers import series_files, stream_zip_bytes
from xnat_tui.sandbox.prearchive_store import prearchive_of
from xnat_tui.sandbox.server import SandboxServer

STUDY = "1.2.826.0.1.3680043.8.498.4242"


async def prearchive(client: Client, files: list[tuple[str, bytes]], label: str = "M1") -> str:
    status, text = await client.upload(
        stream_zip_bytes(files), PROJECT_ID="PILOT", SUBJECT_ID="MS", EXPT_LABEL=label
    )
    assert status == 200, text
    return text.strip()


async def archive(client: Client, src: str, **params: str) -> tuple[int, str]:
    status, text, _ = await client.request(
        "POST", "/data/services/archive", data={"src": src, **params}
    )
    return status, text


def row_status(sandbox: SandboxServer, uri: str) -> str | None:
    _, _, _, _, project, ts, folder = uri.split("/")
    s = prearchive_of(sandbox.store).find(project, ts, folder)
    return None if s is None else s.status


async def test_archive_service_merges_a_single_session(
    client: Client, sandbox: SandboxServer
) -> None:
    # Archiver (1.8.11) commits a single session with allowSessionMerge=true, so a second
    # series of the same study merges even without overwrite.
    first = await prearchive(client, series_files(1, study_uid=STUDY))
    assert (await archive(client, first))[0] == 200
    second = await prearchive(client, series_files(1, series=2, description="T2", study_uid=STUDY))
    status, text = await archive(client, second)
    assert status == 200, text
    expt = sandbox.store.find_experiment("PILOT", "M1")
    assert expt is not None
    assert [s["scan_id"] for s in sandbox.store.list_scans(str(expt["id"]))] == ["1", "2"]


async def test_other_study_uid_conflicts_unless_overridden(
    client: Client, sandbox: SandboxServer
) -> None:
    first = await prearchive(client, series_files(1, study_uid=STUDY))
    await archive(client, first)
    other = await prearchive(client, series_files(1, series=3, study_uid=STUDY + ".9"))
    status, text = await archive(client, other)
    assert status == 409
    assert "Invalid modification of session UID via archive process." in text
    assert row_status(sandbox, other) == "CONFLICT"
    # append and delete both set overrideExceptions on the archive service.
    status, text = await archive(client, other, overwrite="append")
    assert status == 200, text


async def test_modality_and_subject_conflicts(client: Client, sandbox: SandboxServer) -> None:
    first = await prearchive(client, series_files(1, study_uid=STUDY))
    await archive(client, first)
    ct = await prearchive(client, series_files(1, series=5, modality="CT", study_uid=STUDY))
    status, text = await archive(client, ct, overwrite="append")
    assert status == 409
    assert "Invalid modification of session modality via archive process." in text
    status, text, _ = await client.request(
        "POST",
        "/data/services/import",
        params={"PROJECT_ID": "PILOT", "SUBJECT_ID": "SOMEONE_ELSE", "EXPT_LABEL": "M1"},
        data=stream_zip_bytes(series_files(1, series=6, study_uid=STUDY + ".7")),
        headers={"Content-Type": "application/zip"},
    )
    status, text = await archive(client, text.strip(), overwrite="append")
    assert status == 409
    assert "M1 Already Exists for another Subject" in text


async def test_scan_number_and_uid_clashes(client: Client, sandbox: SandboxServer) -> None:
    first = await prearchive(client, series_files(1, study_uid=STUDY))
    await archive(client, first)
    clash = await prearchive(client, series_files(1, description="other", study_uid=STUDY))
    status, text = await archive(client, clash)
    assert status == 409
    assert "Session already contains a scan (1) with the same number, but a different UID." in text


async def test_resent_files_need_overwrite_files(client: Client, sandbox: SandboxServer) -> None:
    files = series_files(2, study_uid=STUDY)
    await archive(client, await prearchive(client, files))
    again = await prearchive(client, files)
    status, text = await archive(client, again)
    assert status == 409 and "overwrite_files=true" in text
    status, text = await archive(client, again, overwrite="append", overwrite_files="true")
    assert status == 200, text
    expt = sandbox.store.find_experiment("PILOT", "M1")
    assert expt is not None
    scan = sandbox.store.list_scans(str(expt["id"]))[0]
    res = sandbox.store.find_resource(str(expt["id"]), int(scan["pk"]), "DICOM")
    assert res is not None and len(sandbox.store.list_files(int(res["id"]))) == 2
