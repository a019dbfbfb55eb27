"""Site anon script on import, project anon script at archive, unless prevent_anon."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pydicom

from tests.unit.sandbox_import.conftest import Client
from tests.unit.sandbox_import.helpers import series_files, stream_zip_bytes
from xnat_tui.sandbox.prearchive_store import prearchive_of
from xnat_tui.sandbox.server import SandboxServer

SITE_SCRIPT = 'version "6.1"\n(0010,0010) := "SITE_ANON"\n(0008,1030) := project\n'


def md5_of(path: str | Path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def prearchive_paths(sandbox: SandboxServer, name: str) -> list[str]:
    pre = prearchive_of(sandbox.store)
    s = next(s for s in pre.sessions() if s.name == name)
    return [str(pre.file_path(s, f)) for f in pre.files(s.id)]


async def test_site_script_applies_on_import(client: Client, sandbox: SandboxServer) -> None:
    sandbox.store.put_config("anon", "script", SITE_SCRIPT, user="admin")
    await client.upload(stream_zip_bytes(series_files(1)), PROJECT_ID="PILOT", EXPT_LABEL="A1")
    await client.upload(
        stream_zip_bytes(series_files(1)),
        PROJECT_ID="PILOT",
        EXPT_LABEL="A2",
        prevent_anon="true",
    )
    (anonymized,) = prearchive_paths(sandbox, "A1")
    ds = pydicom.dcmread(anonymized)
    assert str(ds.PatientName) == "SITE_ANON" and ds.StudyDescription == "PILOT"
    (kept,) = prearchive_paths(sandbox, "A2")
    assert str(pydicom.dcmread(kept).PatientName) == "Synthetic^SUBJ01"
    pre = prearchive_of(sandbox.store)
    s = next(s for s in pre.sessions() if s.name == "A1")
    assert pre.files(s.id)[0].md5 == md5_of(anonymized)


async def test_project_script_applies_at_archive(client: Client, sandbox: SandboxServer) -> None:
    for label, prevent in (("B1", "false"), ("B2", "true")):
        status, uri = await client.upload(
            stream_zip_bytes(series_files(1, modality="CT", description="Chest")),
            user="admin",
            PROJECT_ID="STUDY_B",
            SUBJECT_ID="SB_009",
            EXPT_LABEL=label,
            prevent_anon=prevent,
        )
        assert status == 200
        status, text, _ = await client.request(
            "POST", uri.strip(), user="admin", params={"action": "commit"}
        )
        assert status == 301, text
    store = sandbox.store
    institutions = {}
    for label in ("B1", "B2"):
        expt = store.find_experiment("STUDY_B", label)
        assert expt is not None
        scan = store.list_scans(str(expt["id"]))[0]
        res = store.find_resource(str(expt["id"]), int(scan["pk"]), "DICOM")
        assert res is not None
        (row,) = store.list_files(int(res["id"]))
        path = store.file_path(row)
        assert row["digest"] == md5_of(path)
        institutions[label] = pydicom.dcmread(path).InstitutionName
    assert institutions == {"B1": "STUDY_B site", "B2": "Synthetic Imaging Centre"}
