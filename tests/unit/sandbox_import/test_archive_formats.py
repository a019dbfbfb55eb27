"""The sandbox's import service takes archives as XNAT does (xnat-api-2.md §C.3):
the format from the file name only, case-sensitively; nested archives unpacked;
``Ignore-Unparsable`` honoured; entries read before a bad one stay imported."""

from __future__ import annotations

import gzip

import pytest

from tests.unit.sandbox_import.conftest import Client
from tests.unit.sandbox_import.helpers import series_files, tar_bytes, zipfile_bytes
from tests.unit.sandbox_import.test_import_service import session_files
from xnat_tui.sandbox.importer import archive_format
from xnat_tui.sandbox.server import SandboxServer


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.zip", "zip"),
        ("a.zar", "zip"),
        ("a.tar", "tar"),
        ("a.xar", "tar"),
        ("a.tgz", "tgz"),
        ("a.tar.gz", "tgz"),
        ("a.gz", "gz"),
        ("A.ZIP", None),
        ("a.Zip", None),
        ("a.TGZ", None),
        ("a.tar.bz2", None),
        ("a.tar.xz", None),
        ("a.7z", None),
    ],
)
def test_format_from_the_name_case_sensitively(name: str, fmt: str | None) -> None:
    assert archive_format(name) == fmt


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("BUNDLE.ZIP", "Unsupported format UNKNOWN"),
        ("bundle.tar.bz2", "Unsupported format UNKNOWN"),
        ("bundle.tar.xz", "Unsupported format UNKNOWN"),
        ("series.gz", "Unsupported format GZ"),
    ],
)
async def test_names_xnat_refuses_at_the_top(client: Client, name: str, message: str) -> None:
    status, text = await client.upload(
        zipfile_bytes(series_files(1)),
        path=f"/data/services/import/{name}",
        content_type="application/octet-stream",
        PROJECT_ID="PILOT",
    )
    assert status == 400 and message in text


async def test_a_tgz_of_zips_of_zips(client: Client, sandbox: SandboxServer) -> None:
    inner = zipfile_bytes(series_files(2, series=2), deflate=True)
    middle = zipfile_bytes([("s/inner.zip", inner), *series_files(1, series=1)])
    body = tar_bytes(
        [("middle.zip", middle), ("more.tar", tar_bytes(series_files(1, series=3)))], "w:gz"
    )
    status, text = await client.upload(
        body,
        path="/data/services/import/bundle.tgz",
        content_type="application/octet-stream",
        PROJECT_ID="PILOT",
        EXPT_LABEL="NEST",
    )
    assert status == 200, text
    assert len(session_files(sandbox, text)) == 4


async def test_an_upper_case_archive_inside_is_a_dicom_object(
    client: Client, sandbox: SandboxServer
) -> None:
    inner = zipfile_bytes(series_files(1, series=2))
    body = zipfile_bytes([*series_files(2), ("INNER.ZIP", inner)])
    status, text = await client.upload(body, PROJECT_ID="PILOT", EXPT_LABEL="UPPER")
    assert status == 400 and "unable to read DICOM object INNER.ZIP" in text
    status, text = await client.upload(
        body, PROJECT_ID="PILOT", EXPT_LABEL="UPPER2", **{"Ignore-Unparsable": "true"}
    )
    assert status == 200, text
    assert len(session_files(sandbox, text)) == 2  # the inner zip's file is not read


async def test_a_gzip_inside_is_unsupported_unless_ignored(
    client: Client, sandbox: SandboxServer
) -> None:
    body = zipfile_bytes([*series_files(2), ("extra/IM9.dcm.gz", gzip.compress(b"x" * 500))])
    status, text = await client.upload(body, PROJECT_ID="PILOT", EXPT_LABEL="GZ1")
    assert status == 400 and "Unsupported format GZ" in text
    status, text = await client.upload(
        body, PROJECT_ID="PILOT", EXPT_LABEL="GZ2", **{"Ignore-Unparsable": "true"}
    )
    assert status == 200 and len(session_files(sandbox, text)) == 2


async def test_entries_before_a_bad_one_stay_imported(
    client: Client, sandbox: SandboxServer
) -> None:
    """XNAT's partial import: a 400, and a prearchive session holding what came first."""
    good = series_files(3)
    body = zipfile_bytes([*good[:2], ("bad.dcm", b"not dicom" * 40), good[2]])
    status, text = await client.upload(body, PROJECT_ID="PILOT", EXPT_LABEL="PARTIAL")
    assert status == 400 and "unable to read DICOM object bad.dcm" in text
    rows = await client.json("/data/prearchive/projects/PILOT")
    partial = [r for r in rows["ResultSet"]["Result"] if r["name"] == "PARTIAL"]
    assert len(partial) == 1
    status, text = await client.upload(
        zipfile_bytes(good[2:]), PROJECT_ID="PILOT", EXPT_LABEL="PARTIAL"
    )
    assert status == 200
    assert len(session_files(sandbox, text)) == 3
