"""The sandbox stops at once even mid-import (issue 14, item 2: SIGTERM during a bomb).

``slow-import`` (fault injection) makes the import service wait after every unpacked
chunk, standing in for a long inflation without gigabytes of test data."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import requests

from tests.fixtures.sandbox import SandboxFactory
from tests.unit.sandbox.helpers import basic, serve_process
from tests.unit.sandbox_import.helpers import zipfile_bytes

# 8 MiB of zeros, deflated: read in 256 KiB chunks, 32 chunks x 1 s at slow-import=1s.
BODY = zipfile_bytes([("slow.dcm", bytes(8 << 20))], deflate=True)


def _wait_for_staging(data_dir: Path, proc: subprocess.Popen[str] | None = None) -> None:
    deadline = time.monotonic() + 30
    while not any(data_dir.glob("tmp/import-*/*.dcm")):
        assert proc is None or proc.poll() is None, "server exited early"
        assert time.monotonic() < deadline, "the import never started"
        time.sleep(0.02)


def test_sigterm_during_an_import_stops_the_server_within_seconds(tmp_path: Path) -> None:
    data = tmp_path / "data"
    outcome: dict[str, Any] = {}

    def upload(url: str) -> None:
        try:
            r = requests.post(
                url + "/data/services/import",
                params={"PROJECT_ID": "PILOT"},
                data=BODY,
                headers={"Content-Type": "application/zip", **basic("alice")},
                timeout=60,
            )
            outcome["status"] = r.status_code
        except requests.RequestException as exc:
            outcome["error"] = exc

    faults = "slow-import=1s,only=/data/services/import"
    with serve_process(data, "--faults", faults) as (proc, url):
        client = threading.Thread(target=upload, args=(url,), daemon=True)
        client.start()
        _wait_for_staging(data, proc)
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        # Without stopping the worker, the 32 slow chunks kept the process for ~30 s.
        assert time.monotonic() - start < 5
        client.join(10)
        assert outcome.get("status") in (None, 503), outcome
    assert sorted((data / "tmp").iterdir()) == []


async def test_close_during_an_import_returns_at_once(sandbox_factory: SandboxFactory) -> None:
    sandbox = await sandbox_factory(faults="slow-import=1s")

    async def upload() -> int:
        async with aiohttp.ClientSession() as session:
            async with session.post(
                sandbox.url + "/data/services/import",
                params={"PROJECT_ID": "PILOT"},
                data=BODY,
                headers={"Content-Type": "application/zip", **basic("alice")},
            ) as r:
                return r.status

    task = asyncio.create_task(upload())
    await asyncio.to_thread(_wait_for_staging, sandbox.data_dir)
    start = time.monotonic()
    await sandbox.close()
    # What asyncio.run does on the way out (and where SIGTERM used to hang): join the
    # worker threads. The import's worker must be gone, not just its request.
    await asyncio.wait_for(asyncio.get_running_loop().shutdown_default_executor(), 5)
    assert time.monotonic() - start < 5  # the worker ran on ~30 s before
    results = await asyncio.gather(task, return_exceptions=True)
    assert results[0] == 503 or isinstance(results[0], aiohttp.ClientError), results
    assert sorted((sandbox.data_dir / "tmp").iterdir()) == []
