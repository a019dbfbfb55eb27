"""The threaded download path over HTTPS: the client's CA bundle and host check apply."""

from __future__ import annotations

import ssl
from pathlib import Path

from aiohttp import web

from tests.fixtures.sandbox import from_template
from xnat_tui.sandbox.app import make_app
from xnat_tui.sandbox.store import Store
from xnat_tui.transfer.download import DownloadEngine
from xnat_tui.transfer.journal import Journal
from xnat_tui.transfer.types import JobState
from xnat_tui.workflow import download as dl
from xnat_tui.xnat.client import XnatClient
from xnat_tui.xnat.credentials import Credentials


async def test_download_over_tls_with_a_private_ca(
    certificate: tuple[Path, Path], demo_template: Path, tmp_path: Path
) -> None:
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    store = Store(from_template(demo_template, tmp_path / "sandbox"))
    runner = web.AppRunner(make_app(store))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"https://127.0.0.1:{port}"
    out = tmp_path / "out"
    try:
        creds = Credentials(url, "alice", "alice", ca_bundle=str(cert))
        async with XnatClient(creds) as client:
            plan = await dl.plan_request(client, project="PILOT", out=out)
            engine = DownloadEngine(
                client, Journal(tmp_path / "j.sqlite3"), server_url=url, username="alice"
            )
            assert engine.fetcher is not None and engine.fetcher.https
            await engine.start(resume=False)
            ids = await engine.submit(plan.downloads)
            assert (await engine.wait(ids))[ids[0]] is JobState.VERIFIED
            await engine.close()
        assert len([p for p in out.rglob("*.dcm")]) == 7
        # Without the CA the certificate is refused: nothing is written.
        async with XnatClient(Credentials(url, "alice", "alice", ca_bundle=str(cert))) as client:
            client._ssl = ssl.create_default_context()
            engine = DownloadEngine(
                client, Journal(tmp_path / "k.sqlite3"), server_url=url, username="alice"
            )
            other = tmp_path / "other"
            plan = await dl.plan_request(client, project="PILOT", out=other)
            await engine.start(resume=False)
            ids = await engine.submit(plan.downloads)
            assert (await engine.wait(ids))[ids[0]] is JobState.FAILED
            await engine.close()
        assert "CERTIFICATE_VERIFY_FAILED" in engine.journal.job(ids[0]).message
        assert not [p for p in other.rglob("*") if p.is_file()]
    finally:
        await runner.cleanup()
        store.close()
