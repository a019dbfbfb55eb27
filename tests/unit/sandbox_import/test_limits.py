"""Zip bombs, oversized entries and deep nesting are refused (issue 14, item 2).

The limits are set low on the test's server, so each bomb is a few MiB of zeros."""

from __future__ import annotations

import asyncio
import io
import tarfile
import time
from pathlib import Path

import pytest

from tests.unit.sandbox_import.conftest import Client
from tests.unit.sandbox_import.helpers import series_files, tar_bytes, zipfile_bytes
from xnat_tui.sandbox.importer import Extractor, ImportContext, ImportOptions
from xnat_tui.sandbox.limits import (
    GunzipStream,
    ImportCancelled,
    ImportGuard,
    ImportLimits,
    MiB,
    human,
)
from xnat_tui.sandbox.server import SandboxServer


def nested_zip(depth: int) -> bytes:
    """A zip holding a zip … ``depth`` archives in all, one DICOM series innermost."""
    body = zipfile_bytes(series_files(1))
    for level in range(depth - 1):
        body = zipfile_bytes([(f"level{level}.zip", body)])
    return body


def temp_leftovers(sandbox: SandboxServer) -> list[Path]:
    tmp = sandbox.data_dir / "tmp"
    return sorted(tmp.iterdir()) if tmp.exists() else []


def test_defaults_are_generous_and_documented() -> None:
    limits = ImportLimits()
    assert limits.max_entry_bytes == 4 << 30
    assert limits.max_request_bytes == 64 << 30
    assert limits.max_ratio == 200
    assert limits.ratio_grace_bytes == 64 << 20
    assert limits.max_depth == 4
    assert human(4 << 30) == "4 GiB" and human(1536) == "1.5 KiB" and human(10) == "10 bytes"


async def test_entry_past_the_size_limit_is_refused(client: Client, sandbox: SandboxServer) -> None:
    sandbox.import_limits = ImportLimits(max_entry_bytes=1 * MiB)
    bomb = zipfile_bytes([("bomb.dcm", bytes(8 * MiB))], deflate=True)
    assert len(bomb) < 64 * 1024
    status, text = await client.upload(bomb, PROJECT_ID="PILOT", **{"Ignore-Unparsable": "true"})
    assert status == 413, text
    assert "per-entry size limit" in text and "max_entry_bytes" in text and "1 MiB" in text
    assert "bomb.dcm" in text
    assert temp_leftovers(sandbox) == []


async def test_compression_ratio_limit(client: Client, sandbox: SandboxServer) -> None:
    sandbox.import_limits = ImportLimits(ratio_grace_bytes=1 * MiB, max_ratio=50)
    bomb = zipfile_bytes([("bomb.dcm", bytes(4 * MiB))], deflate=True)
    status, text = await client.upload(bomb, PROJECT_ID="PILOT")
    assert status == 413, text
    assert "compression-ratio limit" in text and "50:1" in text and "bomb.dcm" in text
    assert temp_leftovers(sandbox) == []
    # Real DICOM, deflated, is far from the limit.
    ok = zipfile_bytes(series_files(3), deflate=True)
    status, text = await client.upload(ok, PROJECT_ID="PILOT")
    assert status == 200, text


async def test_request_total_limit_is_not_ignorable(client: Client, sandbox: SandboxServer) -> None:
    sandbox.import_limits = ImportLimits(max_request_bytes=2 * MiB)
    junk = [(f"junk{i}.dcm", b"\1" * MiB) for i in range(3)]  # stored: ratio 1
    status, text = await client.upload(
        zipfile_bytes(junk), PROJECT_ID="PILOT", **{"Ignore-Unparsable": "true"}
    )
    assert status == 413, text
    assert "per-request size limit" in text and "max_request_bytes" in text
    assert temp_leftovers(sandbox) == []


async def test_tgz_bomb_is_counted_in_the_gzip_layer(
    client: Client, sandbox: SandboxServer
) -> None:
    sandbox.import_limits = ImportLimits(ratio_grace_bytes=1 * MiB, max_ratio=50)
    bomb = tar_bytes([("bomb.dcm", bytes(8 * MiB))], "w:gz")
    status, text = await client.upload(
        bomb,
        path="/data/services/import/bomb.tgz",
        content_type="application/octet-stream",
        PROJECT_ID="PILOT",
    )
    assert status == 413, text
    assert "compression-ratio limit" in text
    assert temp_leftovers(sandbox) == []
    # A normal .tgz still imports through the bounded reader.
    status, text = await client.upload(
        tar_bytes(series_files(2), "w:gz"),
        path="/data/services/import/series.tgz",
        content_type="application/octet-stream",
        PROJECT_ID="PILOT",
    )
    assert status == 200, text


async def test_tar_member_past_the_entry_limit(client: Client, sandbox: SandboxServer) -> None:
    sandbox.import_limits = ImportLimits(max_entry_bytes=1 * MiB)
    status, text = await client.upload(
        tar_bytes([("big.dcm", b"\1" * (2 * MiB))]),
        content_type="application/x-tar",
        PROJECT_ID="PILOT",
    )
    assert status == 413, text
    assert "per-entry size limit" in text and "big.dcm" in text


async def test_nesting_within_the_limit_imports(client: Client) -> None:
    status, text = await client.upload(nested_zip(4), PROJECT_ID="PILOT")
    assert status == 200, text


@pytest.mark.parametrize("depth", [5, 600])
async def test_nesting_past_the_limit_is_a_400(
    client: Client, sandbox: SandboxServer, depth: int
) -> None:
    # 600 levels used to end in a RecursionError (500).
    status, text = await client.upload(nested_zip(depth), PROJECT_ID="PILOT")
    assert status == 400, text
    assert "nesting-depth limit" in text and "max_depth=4" in text
    assert temp_leftovers(sandbox) == []


def test_gunzip_stream_reads_concatenated_members() -> None:
    import gzip

    data = gzip.compress(b"abc" * 1000) + gzip.compress(b"xyz")
    guard = ImportGuard()
    stream = GunzipStream(io.BytesIO(data), guard)
    assert stream.read() == b"abc" * 1000 + b"xyz"
    assert guard.produced == 3003
    with pytest.raises(tarfile.ReadError):
        GunzipStream(io.BytesIO(b"not gzip at all"), ImportGuard()).read(10)


def test_a_cancelled_extraction_stops_and_removes_its_staging(tmp_path: Path) -> None:
    upload = tmp_path / "upload.zip"
    upload.write_bytes(zipfile_bytes([("a.dcm", bytes(4 * MiB))], deflate=True))
    staging = tmp_path / "import-x"
    guard = ImportGuard(pause=0.05)
    extractor = Extractor(ImportContext({}), ImportOptions(), staging, guard)

    async def run() -> float:
        task = asyncio.create_task(asyncio.to_thread(extractor.run, upload, "upload.zip"))
        deadline = time.monotonic() + 10
        while not any(staging.glob("*.dcm")):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        start = time.monotonic()
        guard.cancel()
        with pytest.raises(ImportCancelled):
            await task
        return time.monotonic() - start

    # Without cancellation the 16+ chunks would take about a second; it stops at once.
    assert asyncio.run(run()) < 0.5
    assert not staging.exists()
