"""An upload streams to disk: server memory does not grow with the upload size."""

from __future__ import annotations

import tracemalloc
from collections.abc import AsyncIterator
from datetime import datetime

from stream_zip import NO_COMPRESSION_64, async_stream_zip

from tests.unit.sandbox_import.conftest import Client
from tests.unit.sandbox_import.helpers import dataset, dicom_bytes
from xnat_tui.sandbox.prearchive_store import prearchive_of
from xnat_tui.sandbox.server import SandboxServer

FILES = 50
PIXELS = 4 * 1024 * 1024  # 4 MiB per instance → 200 MiB upload
PLACEHOLDER = "1.2.826.0.1.3680043.8.498.77.10000000"


def template() -> bytes:
    ds = dataset(patient="BIG", description="big_series")
    ds.SOPInstanceUID = PLACEHOLDER
    ds.file_meta.MediaStorageSOPInstanceUID = PLACEHOLDER
    ds.Rows, ds.Columns = 1024, 2048
    ds.PixelData = bytes(PIXELS)
    return dicom_bytes(ds)


async def body(tpl: bytes) -> AsyncIterator[bytes]:
    async def members() -> AsyncIterator[tuple[str, datetime, int, object, AsyncIterator[bytes]]]:
        for i in range(FILES):
            uid = PLACEHOLDER[:-8] + f"1{i:07d}"

            async def data(i: int = i, uid: str = uid) -> AsyncIterator[bytes]:
                yield tpl.replace(PLACEHOLDER.encode(), uid.encode())

            yield f"big/IM{i:04d}.dcm", datetime(2024, 1, 1), 0o600, NO_COMPRESSION_64, data()

    async for chunk in async_stream_zip(members()):  # type: ignore[arg-type]
        yield chunk


async def test_200_mb_upload_keeps_memory_flat(client: Client, sandbox: SandboxServer) -> None:
    tpl = template()
    tracemalloc.start()
    try:
        status, text = await client.upload(body(tpl), PROJECT_ID="PILOT")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == 200, text
    sessions = [s for s in prearchive_of(sandbox.store).sessions() if s.name == "BIG"]
    assert len(prearchive_of(sandbox.store).files(sessions[0].id)) == FILES
    total = FILES * len(tpl)
    assert total > 200 * 1024 * 1024
    # Client and server share this process: a few 4 MiB members in flight at most.
    assert peak < 40 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB for {total / 2**20:.0f} MiB"
