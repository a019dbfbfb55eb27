"""A third-party client (xnatpy) against the sandbox: login, listings, creation, logout.

The import and prearchive parts of the conformance test live with the import service
tests (tests/unit/sandbox_import/).
"""

from __future__ import annotations

import pytest
import requests
import xnat

from xnat_tui.sandbox.server import SandboxThread


def test_xnatpy_login_and_listings(sandbox_thread: SandboxThread) -> None:
    with xnat.connect(
        sandbox_thread.url, user="alice", password="alice", no_parse_model=True
    ) as session:
        assert session.logged_in_user == "alice"
        expiration = session.session_expiration_time
        assert expiration is not None and expiration[1] == 900.0
        assert session.xnat_version.startswith("1.8")

        projects = session.get_json("/data/projects")["ResultSet"]["Result"]
        assert [p["ID"] for p in projects] == ["PILOT", "STUDY_A"]
        editable = session.get_json(
            "/data/projects", query={"permissions": "edit", "dataType": "xnat:subjectData"}
        )["ResultSet"]["Result"]
        assert [p["id"] for p in editable] == ["PILOT", "STUDY_A"]

        subjects = session.get_json("/data/projects/STUDY_A/subjects")["ResultSet"]
        assert subjects["totalRecords"] == "3"
        assert [s["label"] for s in subjects["Result"]] == ["SA_001", "SA_002", "SA_003"]

        experiments = session.get_json("/data/archive/projects/PILOT/experiments")
        row = experiments["ResultSet"]["Result"][0]
        assert row["label"] == "PIL_900_MR1"
        scans = session.get_json(f"/data/experiments/{row['ID']}/scans")["ResultSet"]["Result"]
        assert [s["ID"] for s in scans] == ["1", "2"]

        created = session.put("/data/projects/PILOT/subjects/XNATPY_1", accepted_status=[201])
        assert created.text.startswith("XNAT_S")
        again = session.put("/data/projects/PILOT/subjects/XNATPY_1", accepted_status=[200])
        assert again.text == created.text

        with pytest.raises(xnat.exceptions.XNATResponseError):
            session.get_json("/data/projects/STUDY_B")
        jsession = session.interface.cookies.get("JSESSIONID")
        assert jsession
    # Leaving the context deletes the JSESSION: the cookie is dead afterwards.
    after = requests.get(
        sandbox_thread.url + "/data/auth", cookies={"JSESSIONID": jsession}, timeout=10
    )
    assert after.status_code == 401


def test_xnatpy_wrong_password_raises_login_error(sandbox_thread: SandboxThread) -> None:
    with pytest.raises(xnat.exceptions.XNATLoginFailedError):
        xnat.connect(sandbox_thread.url, user="alice", password="nope", no_parse_model=True)


def test_xnatpy_alias_token_login(sandbox_thread: SandboxThread) -> None:
    token = requests.get(
        sandbox_thread.url + "/data/services/tokens/issue", auth=("bob", "bob"), timeout=10
    ).json()
    with xnat.connect(
        sandbox_thread.url, user=token["alias"], password=token["secret"], no_parse_model=True
    ) as session:
        assert session.logged_in_user == "bob"
        projects = session.get_json("/data/projects")["ResultSet"]["Result"]
        assert [p["ID"] for p in projects] == ["PILOT"]
