"""Every client call against the sandbox, as the users of the demo seed."""

from __future__ import annotations

import asyncio
import hashlib
import io
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fixtures.dicom import DicomFactory, SeriesSpec
from tests.fixtures.sandbox import SandboxFactory
from xnat_tui.dicom.synthetic import WrittenStudy
from xnat_tui.sandbox.server import SandboxServer
from xnat_tui.transfer.types import SourceSeries
from xnat_tui.transfer.xnat_port import XnatPort
from xnat_tui.xnat import (
    AuthenticationError,
    Conflict,
    ConnectionFailed,
    Credentials,
    NotFound,
    PermissionDenied,
    ServerError,
    SessionExpired,
    XnatClient,
)


def _client(sandbox: SandboxServer, user: str, password: str | None = None) -> XnatClient:
    return XnatClient(Credentials(sandbox.url, user, user if password is None else password))


async def _kept(client: XnatClient, project: str, description: str) -> bool:
    """Whether the planner expects the project's series import filters to keep a series."""
    info = await XnatPort(client).project_info(project)
    return info.drop_reason(SourceSeries("1.2.3", 1, description)) is None


def _zip(study: WrittenStudy) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for series in study.series:
            for path in series.paths:
                archive.write(path, f"{series.series_number}/{path.name}")
    return buffer.getvalue()


async def _stream(data: bytes, size: int = 4096) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _study(dicom_factory: DicomFactory, tmp_path: Path, patient: str = "PX01") -> WrittenStudy:
    return dicom_factory(
        tmp_path / patient,
        patient_id=patient,
        series=[SeriesSpec("MR", 1, "localizer", 2), SeriesSpec("MR", 2, "T1_MPRAGE", 3)],
    )


async def test_login_and_uploadable_projects(sandbox: SandboxServer) -> None:
    async with _client(sandbox, "alice") as alice:
        assert alice.username == "alice"
        ids = [p.id for p in await alice.uploadable_projects()]
        assert ids == ["PILOT", "STUDY_A"]
    async with _client(sandbox, "carol") as carol:
        assert await carol.uploadable_projects() == []


async def test_wrong_password_versus_expired_session(sandbox: SandboxServer) -> None:
    with pytest.raises(AuthenticationError) as wrong:
        async with _client(sandbox, "alice", "not-her-password"):
            pass
    assert not isinstance(wrong.value, SessionExpired)
    assert "Login to" in str(wrong.value) and "alice" in str(wrong.value)

    async with _client(sandbox, "alice") as alice:
        sandbox.faults.configure("expire-sessions")
        # Transparent: the expired session is renewed and the call succeeds.
        assert [p.id for p in await alice.uploadable_projects()] == ["PILOT", "STUDY_A"]
        assert alice.relogins == 1
        # Now the stored password no longer works (changed on the server meanwhile).
        alice.credentials = Credentials(sandbox.url, "alice", "changed-since")
        sandbox.faults.configure("expire-sessions")
        with pytest.raises(SessionExpired):
            await alice.subjects("PILOT")


async def test_not_visible_project_and_missing_permission(sandbox: SandboxServer) -> None:
    async with _client(sandbox, "alice") as alice:
        with pytest.raises(NotFound) as hidden:
            await alice.project_settings("STUDY_B")
        assert "project STUDY_B is not visible to user alice or does not exist" in str(hidden.value)
        entry = next(e for e in await alice.prearchive("PILOT") if e.status == "READY")
    async with _client(sandbox, "bob") as bob:
        with pytest.raises(PermissionDenied) as listing:
            await bob.prearchive("PILOT")
        assert "does not have access" in str(listing.value)
        with pytest.raises(PermissionDenied) as denied:
            await bob.archive(entry.uri)
        assert "bob lacks edit access to project PILOT" in str(denied.value)
        assert denied.value.server_message


async def test_project_settings_bundle(sandbox: SandboxServer) -> None:
    async with _client(sandbox, "admin") as admin:
        study_a = await admin.project_settings("STUDY_A")
        assert study_a.prearchive_code == 4
        assert not study_a.allow_create_subject and not study_a.allow_bulk_upload
        study_b = await admin.project_settings("STUDY_B")
        assert study_b.prearchive_code == 5
        assert study_b.project_filter is not None
        assert not await _kept(admin, "STUDY_B", "3-plane Localizer")
        assert await _kept(admin, "STUDY_B", "T1_MPRAGE")
        assert study_b.project_anon is not None and study_b.project_anon.enabled
        assert "version" in study_b.project_anon.contents
        details = await admin.project("PILOT")
        assert (details.name, details.pi_lastname) == ("Pilot study", "Anderson")
        pilot = await admin.project_settings("PILOT")
        assert pilot.prearchive_code == 0 and pilot.allow_create_subject
        assert pilot.filters == ()


async def test_subjects_experiments_and_create_subject(sandbox: SandboxServer) -> None:
    async with _client(sandbox, "alice") as alice:
        labels = {s.label for s in await alice.subjects("STUDY_A")}
        assert {"SA_001", "SA_002", "SA_003"} <= labels
        found = await alice.find_experiment("STUDY_A", "SA_002_MR1")
        assert found is not None and found.subject_label == "SA_002"
        assert found.study_uid and found.modality == "MR"
        assert await alice.find_experiment("STUDY_A", "sa_002_mr1") is None
        created = await alice.create_subject("PILOT", "PIL_NEW")
        again = await alice.create_subject("PILOT", "PIL_NEW")
        assert created.created and not again.created and created.id == again.id
        scans = await alice.scans(found.uri)
        files = await alice.scan_files(found.uri, scans[0].id)
        assert files and all(len(f.digest) == 32 and f.size for f in files)


async def test_import_commit_archive_round_trip(
    sandbox: SandboxServer, dicom_factory: DicomFactory, tmp_path: Path
) -> None:
    study = _study(dicom_factory, tmp_path)
    data = _zip(study)
    async with _client(sandbox, "alice") as alice:
        result = await alice.import_zip(
            lambda: _stream(data), project="PILOT", subject="PX01", session="PX01_MR1"
        )
        assert result.uri.startswith("/data/prearchive/projects/PILOT/")
        again = await alice.import_zip(data, project="PILOT", subject="PX01", session="PX01_MR1")
        assert again.uri == result.uri  # same study+label → same prearchive session

        commit = await alice.commit(result.uri)
        assert not commit.archived and commit.status == 200  # PILOT keeps it in the prearchive
        entry = await alice.prearchive_entry(commit.uri)
        assert entry.name == "PX01_MR1" and entry.tag == study.study_instance_uid
        prearc_files = await alice.session_files(commit.uri)
        assert sum(len(f) for f in prearc_files.values()) == len(study.paths)

        archived = await alice.archive(commit.uri)
        assert archived.uri.startswith("/data/archive/projects/PILOT/subjects/PX01/")
        experiment = await alice.find_experiment("PILOT", "PX01_MR1")
        assert experiment is not None and experiment.study_uid == study.study_instance_uid
        sent = {hashlib.md5(p.read_bytes()).hexdigest() for p in study.paths}
        on_server = await alice.session_files(archived.uri)
        assert {f.digest for files in on_server.values() for f in files} == sent


async def test_commit_to_auto_archive_project_archives(
    sandbox: SandboxServer, dicom_factory: DicomFactory, tmp_path: Path
) -> None:
    study = _study(dicom_factory, tmp_path, "SA_001")
    async with _client(sandbox, "alice") as alice:
        result = await alice.import_zip(
            _zip(study), project="STUDY_A", subject="SA_001", session="SA_001_MR9"
        )
        commit = await alice.commit(result.uri)
        assert commit.archived and commit.status == 301
        assert commit.uri == "/data/archive/projects/STUDY_A/subjects/SA_001/experiments/SA_001_MR9"
        existing = [e.as_existing() for e in await alice.experiments("STUDY_A")]
        # What the planner needs to call another study under this label a conflict.
        same_label = [e for e in existing if e.label == "SA_001_MR9"]
        assert same_label and same_label[0].study_uid not in ("", "9.9.9")
        assert same_label[0].subject_label == "SA_001"


async def test_prearchive_actions(sandbox: SandboxServer) -> None:
    async with _client(sandbox, "admin") as admin:
        entries = {e.name: e for e in await admin.prearchive()}
        assert {"PIL_001_MR1", "PIL_900_MR1", "SA_004_MR1", "ANON_7731"} <= set(entries)
        conflict = entries["PIL_900_MR1"]
        assert conflict.status == "CONFLICT"
        with pytest.raises(Conflict) as refused:
            await admin.archive(conflict.uri)
        # The archive service merges by default; the other StudyInstanceUID still conflicts.
        assert "Invalid modification of session UID" in str(refused.value)
        with pytest.raises(Conflict) as uid:
            await admin.commit(conflict.uri, auto_archive=True)
        assert "Invalid modification of session UID" in str(uid.value)
        relabelled = await admin.archive(conflict.uri, subject="PIL_900", label="PIL_900_MR2")
        assert relabelled.uri.endswith("/experiments/PIL_900_MR2")

        rebuilt = await admin.prearchive_rebuild(entries["SA_004_MR1"].uri)
        assert (await admin.prearchive_entry(rebuilt)).status == "READY"

        moved = await admin.prearchive_move(entries["ANON_7731"].uri, "PILOT")
        assert moved.startswith("/data/prearchive/projects/PILOT/")
        assert (await admin.prearchive_entry(moved)).project == "PILOT"

        await admin.prearchive_delete(moved)
        with pytest.raises(NotFound):
            await admin.prearchive_entry(moved)
        remaining = {e.name for e in await admin.prearchive()}
        assert "ANON_7731" not in remaining and "PIL_900_MR1" not in remaining


async def test_faults_map_to_retriable_or_final_errors(
    sandbox: SandboxServer, dicom_factory: DicomFactory, tmp_path: Path
) -> None:
    data = _zip(_study(dicom_factory, tmp_path))
    async with _client(sandbox, "alice") as alice:
        # Listings ride out a flaky server by themselves (bounded GET retries).
        sandbox.faults.configure("error=503:0.5,seed=3")
        for _ in range(4):
            assert await alice.subjects("STUDY_A")
        assert sandbox.faults.stats["error-503"] > 0

        sandbox.faults.configure("drop=1,only=/data/services/import")
        with pytest.raises(ConnectionFailed) as dropped:
            await alice.import_zip(data, project="PILOT", subject="PX01", session="PX01_MR1")
        assert dropped.value.retriable

        sandbox.faults.configure("disk-full,only=/data/services/import")
        with pytest.raises(ServerError) as full:
            await alice.import_zip(data, project="PILOT", subject="PX01", session="PX01_MR1")
        assert not full.value.retriable and "disk space" in str(full.value)

        sandbox.faults.clear()
        result = await alice.import_zip(data, project="PILOT", subject="PX01", session="PX01_MR1")
        assert result.uri


async def test_real_session_timeout_mid_batch(
    sandbox_factory: SandboxFactory, dicom_factory: DicomFactory, tmp_path: Path
) -> None:
    server = await sandbox_factory(session_timeout=0.5)
    data = _zip(_study(dicom_factory, tmp_path))
    async with _client(server, "alice") as alice:
        await alice.subjects("PILOT")
        await asyncio.sleep(0.7)
        # The idle session has expired on the server: renewed behind the scenes.
        assert await alice.subjects("STUDY_A")
        assert alice.relogins == 1
        await asyncio.sleep(0.7)
        # A one-shot stream is never sent into an expired session: renewed first.
        result = await alice.import_zip(
            _stream(data), project="PILOT", subject="PX01", session="PX01_MR1"
        )
        assert result.uri and alice.relogins == 2


async def test_alias_token_logs_in_as_its_owner(sandbox: SandboxServer) -> None:
    async with _client(sandbox, "alice") as alice:
        token = await alice.issue_token()
    assert token.secret not in repr(token)
    async with XnatClient(Credentials(sandbox.url, token.alias, token.secret)) as by_token:
        assert by_token.credentials.is_token
        assert by_token.username == "alice"
        assert [p.id for p in await by_token.uploadable_projects()] == ["PILOT", "STUDY_A"]
        await by_token.invalidate_token(token.alias)
    with pytest.raises(AuthenticationError, match="alias token"):
        async with XnatClient(Credentials(sandbox.url, token.alias, token.secret)):
            pass


async def test_filter_evaluator_agrees_with_the_server(
    sandbox: SandboxServer, dicom_factory: DicomFactory, tmp_path: Path
) -> None:
    localizer = dicom_factory(
        tmp_path / "loc", patient_id="SB_009", series=[SeriesSpec("CT", 1, "Scout 2-plane", 2)]
    )
    async with _client(sandbox, "admin") as admin:
        assert not await _kept(admin, "STUDY_B", "Scout 2-plane")
        result = await admin.import_zip(
            _zip(localizer), project="STUDY_B", subject="SB_009", session="SB_009_CT1"
        )
    # Everything was filtered: 200 with an empty body, no session created.
    assert result.uris == () and result.status == 200
