"""``xnat-tui`` without a subcommand: build the real services and run the App.

``--sandbox`` starts the demo sandbox server in-process (its own thread and event
loop), writes the demo DICOM tree next to it, opens the folder tree there and logs
in as alice. ``XNAT_TUI_SANDBOX_PORT`` fixes the sandbox port (tests and scripts
use it to reach the same server through the REST API).
"""

from __future__ import annotations

import argparse
import inspect
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from xnat_tui import config as cfgmod
from xnat_tui.dicom.model import ScanBatch, ScanSummary
from xnat_tui.ui.services import Connection, LoginRequest, Services

log = logging.getLogger("xnat_tui.ui")

SANDBOX_PORT_ENV = "XNAT_TUI_SANDBOX_PORT"
SANDBOX_DIR_ENV = "XNAT_TUI_SANDBOX_DIR"


async def connect(request: LoginRequest) -> Connection:
    """Log in with the real client and wrap it for the engine."""
    from xnat_tui.transfer.xnat_port import port_for
    from xnat_tui.xnat.client import XnatClient
    from xnat_tui.xnat.credentials import Credentials, normalise_server

    creds = Credentials(
        server=normalise_server(request.url),
        user=request.user,
        password=request.password,
        verify_tls=request.verify_tls,
        ca_bundle=request.ca_bundle,
        source="tui",
    )
    client = XnatClient(creds)
    try:
        await client.login()
    except BaseException:
        await client.close()
        raise
    return Connection(
        url=creds.server,
        user=client.username or request.user,
        port=port_for(client),
        client=client,
        close=client.close,
    )


async def scan_tree(paths: list[Path]) -> AsyncIterator[ScanBatch | ScanSummary]:
    """The scanner's event stream, whichever form (async or sync iterator) it has."""
    from xnat_tui.dicom import scan as scanmod

    result: Any = scanmod.scan(paths)
    if hasattr(result, "__aiter__"):
        async for event in result:
            yield event
        return
    if inspect.isawaitable(result):
        result = await result
    # A synchronous generator: step it in a thread so the loop never waits on disk.
    import asyncio

    iterator = iter(result)
    sentinel = object()
    try:
        while True:
            event = await asyncio.to_thread(next, iterator, sentinel)
            if event is sentinel:
                return
            yield event
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


def _password_for(args: argparse.Namespace, url: str, user: str) -> tuple[str, str]:
    """(user, password) from --password-stdin, XNAT_PASS or ~/.netrc; ("", "") if none."""
    if getattr(args, "password_stdin", False):
        return user, sys.stdin.readline().rstrip("\n")
    if os.environ.get("XNAT_PASS"):
        return user or os.environ.get("XNAT_USER", ""), os.environ["XNAT_PASS"]
    try:
        from urllib.parse import urlsplit

        from xnat_tui.xnat.credentials import netrc_credentials, normalise_server

        host = urlsplit(normalise_server(url)).hostname or ""
        login, password = netrc_credentials(host)
    except Exception:
        return user, ""
    if password and (not user or user == login):
        return login, password
    return user, ""


def _start_sandbox(base: Path) -> tuple[Any, Path]:
    from xnat_tui.dicom.synthetic import write_demo_tree
    from xnat_tui.sandbox.server import SandboxThread

    port = int(os.environ.get(SANDBOX_PORT_ENV, "0") or 0)
    sandbox = SandboxThread(base / "server", demo=True, port=port)
    sandbox.start()
    demo = base / "demo-dicom"
    if not demo.exists():
        write_demo_tree(demo)
    return sandbox, demo


def build_app(args: argparse.Namespace, cfg: cfgmod.Config, *, start_path: Path) -> Any:
    from xnat_tui.ui.app import XnatTuiApp

    services = Services(
        scan_func=scan_tree,
        concurrency=cfg.defaults.concurrency,
        bandwidth_limit_mbps=cfg.defaults.bandwidth_limit_mbps,
    )
    login: LoginRequest | None = None
    auto = False
    profile = cfg.profiles.get(args.profile) if getattr(args, "profile", None) else None
    url = (
        getattr(args, "server", None)
        or (profile.url if profile else "")
        or os.environ.get("XNAT_HOST", "")
    )
    if url:
        user = (
            getattr(args, "user", None)
            or (profile.user if profile else "")
            or os.environ.get("XNAT_USER", "")
        )
        user, password = _password_for(args, url, user)
        login = LoginRequest(
            url=url,
            user=user,
            password=password,
            verify_tls=not getattr(args, "insecure", False)
            and (profile.verify_tls if profile else True),
            ca_bundle=profile.ca_bundle if profile else "",
            profile=profile.name if profile else "",
        )
        auto = bool(user and password)
    return XnatTuiApp(
        cfg,
        services=services,
        connector=connect,
        start_path=start_path,
        login=login,
        auto_login=auto,
    )


def run_tui(args: argparse.Namespace) -> int:
    try:
        cfg = cfgmod.load()
    except cfgmod.ConfigError as exc:
        sys.stderr.write(f"xnat-tui: {exc}\n")
        return 2
    if getattr(args, "profile", None) and args.profile not in cfg.profiles:
        sys.stderr.write(f"xnat-tui: no profile named {args.profile!r} in {cfg.path}\n")
        return 2
    sandbox = None
    cleanup: Path | None = None
    start_path = Path.cwd()
    try:
        if getattr(args, "sandbox", False):
            override = os.environ.get(SANDBOX_DIR_ENV)
            base = (
                Path(override) if override else Path(tempfile.mkdtemp(prefix="xnat-tui-sandbox-"))
            )
            cleanup = None if override else base
            base.mkdir(parents=True, exist_ok=True)
            sandbox, start_path = _start_sandbox(base)
            (base / "sandbox-url").write_text(sandbox.url + "\n", encoding="utf-8")
            args.server, args.user = sandbox.url, "alice"
            app = build_app(args, cfg, start_path=start_path)
            app.login = LoginRequest(url=sandbox.url, user="alice", password="alice")
            app.auto_login = True
            app.sandbox_url = sandbox.url
        else:
            app = build_app(args, cfg, start_path=start_path)
        result = app.run()
        return int(result or 0)
    finally:
        if sandbox is not None:
            sandbox.stop()
        if cleanup is not None:
            shutil.rmtree(cleanup, ignore_errors=True)
