"""Restart persistence, demo seed contents, and error hygiene."""

from __future__ import annotations

import time
from pathlib import Path

import pydicom
import pytest

from tests.fixtures.sandbox import SandboxFactory
from tests.unit.sandbox.helpers import Api
from xnat_tui.sandbox.server import SandboxServer
from xnat_tui.sandbox.store import Store


async def test_restart_keeps_everything(sandbox_factory: SandboxFactory, tmp_path: Path) -> None:
    data = tmp_path / "persist"
    first = await sandbox_factory(data_dir=data, demo=True)
    api = Api(first.url)
    subject = (await api.put("/data/projects/PILOT/subjects/KEEP_ME", user="alice")).text
    await api.put("/data/projects/PILOT/prearchive_code/5", user="alice")
    await api.put(
        "/data/projects/PILOT/config/applet/require-date",
        user="alice",
        data="true",
        headers={"Content-Type": "text/plain"},
    )
    token = (await api.get("/data/services/tokens/issue", user="bob")).json()
    files_before = (
        await api.get(
            "/data/projects/PILOT/experiments/PIL_900_MR1/scans/1/resources/DICOM/files",
            user="alice",
        )
    ).rows
    await api.close()
    await first.close()

    second = await sandbox_factory(data_dir=data, demo=True)  # demo does not re-seed
    api = Api(second.url)
    try:
        subjects = (await api.get("/data/projects/PILOT/subjects", user="alice")).rows
        assert [s["label"] for s in subjects] == ["PIL_900", "KEEP_ME"]
        assert subjects[1]["ID"] == subject
        assert (await api.get("/data/projects/PILOT/prearchive_code", user="alice")).text == "5"
        cfg = await api.get(
            "/data/projects/PILOT/config/applet/require-date?contents=true", user="alice"
        )
        assert cfg.text == "true"
        as_token = await api.get("/data/auth", user=token["alias"], password=token["secret"])
        assert as_token.status == 200
        files_after = (
            await api.get(
                "/data/projects/PILOT/experiments/PIL_900_MR1/scans/1/resources/DICOM/files",
                user="alice",
            )
        ).rows
        assert files_after == files_before
        assert (await api.get(files_after[0]["URI"], user="alice")).status == 200
        nxt = (await api.put("/data/projects/PILOT/subjects/NEXT", user="alice")).text
        assert int(nxt.split("_S")[1]) == int(subject.split("_S")[1]) + 1
    finally:
        await api.close()


async def test_demo_seed_contents(sandbox: SandboxServer) -> None:
    store = sandbox.store
    assert store.get_user("admin")["admin"] == 1
    assert store.roles_of("alice") == {"PILOT": "owner", "STUDY_A": "member"}
    assert store.roles_of("bob") == {"PILOT": "collaborator"}
    assert store.roles_of("carol") == {}
    for login in ("admin", "alice", "bob", "carol"):
        assert store.check_password(login, login)
    codes = {r["id"]: r["prearchive_code"] for r in store.list_projects()}
    assert codes == {"PILOT": 0, "STUDY_A": 4, "STUDY_B": 5}
    assert store.get_config("applet", "allow-create-subject", "STUDY_A")["contents"] == "false"
    assert store.get_config("applet", "allow-bulk-upload", "STUDY_A")["contents"] == "false"
    assert store.get_config("seriesImportFilter", "config", "STUDY_B") is not None
    assert store.get_config("anon", "projects/STUDY_B", "STUDY_B") is not None
    assert len(store.list_subjects("STUDY_A")) >= 3
    experiments = store.list_experiments()
    assert {e["project"] for e in experiments} == {"PILOT", "STUDY_A", "STUDY_B"}
    for expt in experiments:
        scans = store.list_scans(expt["id"])
        assert scans
        for scan in scans:
            resource = store.find_resource(expt["id"], scan["pk"], "DICOM")
            assert resource is not None
            for f in store.list_files(resource["id"]):
                ds = pydicom.dcmread(store.file_path(f))
                assert ds.StudyInstanceUID == expt["uid"]
                assert ds.SeriesInstanceUID == scan["uid"]


def test_demo_seed_is_fast(tmp_path: Path) -> None:
    from xnat_tui.sandbox import demo

    demo.seed(Store(tmp_path / "warm"))  # imports paid once
    store = Store(tmp_path / "timed")
    # CPU time, not wall time: the suite shares two cores with other workers.
    start = time.process_time()
    assert demo.seed(store)
    assert time.process_time() - start < 1.0
    assert not demo.seed(store)  # second call is a no-op


async def test_unknown_routes_and_methods_are_tomcat_pages(api: Api) -> None:
    r = await api.get("/data/nothing/here", user="alice")
    assert r.status == 404 and r.content_type == "text/html"
    assert "HTTP Status 404" in r.text
    m = await api.request("PATCH", "/data/projects", user="alice")
    assert m.status == 405 and "HTTP Status 405" in m.text


async def test_unhandled_error_gives_short_500_without_traceback(
    sandbox: SandboxServer, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals /etc/passwd")

    monkeypatch.setattr(sandbox.store, "list_projects", boom)
    r = await api.get("/data/projects", user="alice")
    assert r.status == 500
    assert "Traceback" not in r.text and "secret internals" not in r.text
    assert "internal error" in r.text


async def test_garbage_input_never_gives_traceback(api: Api) -> None:
    cases = [
        ("POST", "/data/projects", 400),
        ("GET", "/data/projects?format=unknown/type", 415),
        ("GET", "/data/projects/PILOT/subjects?offset=-1&limit=abc", 400),
        ("PUT", "/data/projects/PILOT/subjects/S/experiments/E?xsiType=not%20a%20type", 400),
        ("GET", "/data/experiments/XNAT_E00001/scans/999/resources", 404),
        ("PUT", "/data/config/x/y?status=maybe", 400),
        ("GET", "/data/services/tokens/validate", 400),
    ]
    for method, path, status in cases:
        r = await api.request(method, path, user="admin", data=b"<not-xml")
        assert r.status == status, (method, path, r.status)
        assert r.content_type == "text/html"
        assert "Traceback" not in r.text and 'File "' not in r.text
