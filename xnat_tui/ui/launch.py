"""``xnat-tui`` without a subcommand: build the real services and run the App.

``--sandbox`` starts the demo sandbox server in-process (its own thread and event
loop), writes the demo DICOM tree next to it, opens the folder tree there and logs
in as alice. ``XNAT_TUI_SANDBOX_PORT`` fixes the sandbox port (tests and scripts
use it to reach the same server through the REST API).

The sandbox's DICOM receiver runs too: AE ``XNAT`` on 127.0.0.1 port 8104 (XNAT's), or
any free port when 8104 is taken; ``XNAT_TUI_SANDBOX_DICOM_PORT`` fixes it (0: any free
port). It builds received sessions after ``SANDBOX_DICOM_IDLE`` seconds (XNAT: 300),
and the app offers it as the DICOM destination ``sandbox`` (a ``[dicom.sandbox]``
profile for this run only, never written to the config file) whose look-up waits just
past that idle time. The address is written to ``sandbox-dicom`` beside ``sandbox-url``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from xnat_tui import config as cfgmod
from xnat_tui.dicom.model import ScanBatch, ScanSummary
from xnat_tui.workflow.login import LoginRequest, login

if TYPE_CHECKING:
    from xnat_tui.sandbox.server import SandboxThread
    from xnat_tui.ui.app import XnatTuiApp

log = logging.getLogger("xnat_tui.ui")

SANDBOX_PORT_ENV = "XNAT_TUI_SANDBOX_PORT"
SANDBOX_DIR_ENV = "XNAT_TUI_SANDBOX_DIR"
SANDBOX_DICOM_PORT_ENV = "XNAT_TUI_SANDBOX_DICOM_PORT"
SANDBOX_DICOM_DEFAULT_PORT = 8104
# The sandbox builds a received session after this idle time; its auto-build pass runs
# every quarter of it, so the look-up waits idle + a quarter + a margin.
SANDBOX_DICOM_IDLE = 3.0


async def scan_tree(paths: list[Path]) -> AsyncIterator[ScanBatch | ScanSummary]:
    """The scanner's stream: each step runs in a thread, the event loop stays free.

    The routing patterns are the config's as it reads now (an edit takes effect at
    the next scan; the defaults if it cannot be read: the app started with it).
    """
    from xnat_tui.dicom.scan import scan_async

    try:
        patterns = list(cfgmod.load().defaults.routing_patterns)
    except cfgmod.ConfigError:
        patterns = list(cfgmod.Defaults().routing_patterns)
    async for event in scan_async(paths, routing_patterns=patterns):
        yield event


def _login_request(
    args: argparse.Namespace, cfg: cfgmod.Config
) -> tuple[LoginRequest | None, bool]:
    """Pre-fill the login form from flags/profile/env; log in at once when complete.

    Without --server, --profile or XNAT_HOST the user picks a profile on the login screen.
    """
    from xnat_tui.workflow.connect import ConnectionFlags, resolve_credentials
    from xnat_tui.xnat.credentials import server_user
    from xnat_tui.xnat.errors import XnatError

    explicit = getattr(args, "server", None) or getattr(args, "profile", None)
    if not (explicit or os.environ.get("XNAT_HOST")):
        return None, False

    def no_prompt(_: str) -> str:
        raise EOFError

    try:
        creds = resolve_credentials(
            ConnectionFlags.from_namespace(args),
            cfg,
            interactive=False,
            prompt_password=no_prompt,
            prompt_user=no_prompt,
        )
    except (XnatError, EOFError):
        # Something is missing (usually the password): the login screen asks for it.
        profile = cfg.profiles.get(getattr(args, "profile", None) or "")
        url = getattr(args, "server", None) or (profile.url if profile else "")
        url = url or os.environ.get("XNAT_HOST", "")
        user = (
            getattr(args, "user", None)
            or server_user(url)
            or (profile.user if profile else "")
            or os.environ.get("XNAT_USER", "")
        )
        return (
            LoginRequest(
                url=url,
                user=user,
                verify_tls=not getattr(args, "insecure", False)
                and (profile.verify_tls if profile else True),
                ca_bundle=getattr(args, "ca_bundle", None)
                or (profile.ca_bundle if profile else ""),
                profile=profile.name if profile else "",
                allow_http=bool(getattr(args, "allow_http", False))
                or (profile.allow_http if profile else False),
            ),
            False,
        )
    return (
        LoginRequest(
            url=creds.server,
            user=creds.user,
            password=creds.password,
            verify_tls=creds.verify_tls,
            ca_bundle=creds.ca_bundle,
            profile=getattr(args, "profile", None) or "",
            allow_http=creds.allow_http,
        ),
        True,
    )


def tune_runtime() -> None:
    """Interpreter settings for an interactive app that also scans and uploads.

    Scans create ~10 objects per file; with CPython's default thresholds the full
    (generation 2) collections that follow take 100-400 ms on 50,000 files and freeze
    the screen. Objects alive at start-up are frozen out of collection and the older
    generations are collected far less often (benchmarks/ui_lag.py measures it; a
    shorter GIL switch interval was tried too and made no measurable difference).
    """
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 1000)


def keys_from_terminal() -> str:
    """Make sure the keys come from the terminal; "" when they do, else why not.

    Textual reads keys from standard input. When that is not the terminal (the
    password came through a pipe with ``--password-stdin``, or ``< /dev/null``), its
    input thread spins on end-of-file at 100% CPU and no key ever arrives. Read them
    from the controlling terminal instead, as ``less`` and ``vim`` do.
    """
    try:
        if os.isatty(0):
            return ""
    except OSError:
        pass
    if os.name != "posix":
        return "standard input is not a terminal"
    try:
        fd = os.open("/dev/tty", os.O_RDWR)
    except OSError:
        return (
            "no terminal to read keys from (standard input is not one, and there is no "
            "controlling terminal); the headless commands (xnat-tui scan, upload, "
            "transfers, prearchive) need none"
        )
    os.dup2(fd, 0)
    os.close(fd)
    return ""


def _start_sandbox(base: Path) -> tuple[SandboxThread, Path]:
    from xnat_tui.dicom.synthetic import write_demo_tree
    from xnat_tui.sandbox.server import SandboxThread

    port = int(os.environ.get(SANDBOX_PORT_ENV, "0") or 0)
    wanted = os.environ.get(SANDBOX_DICOM_PORT_ENV, "")
    dicom_port = int(wanted) if wanted.strip() else SANDBOX_DICOM_DEFAULT_PORT
    options = {"port": port, "dicom_idle": SANDBOX_DICOM_IDLE}
    try:
        sandbox = SandboxThread(base / "server", demo=True, dicom_port=dicom_port, **options)
        sandbox.start()
    except OSError as exc:
        if wanted.strip():
            raise  # a port asked for explicitly: say it is taken rather than move
        log.info("DICOM port %d not free (%s); the receiver takes any free port", dicom_port, exc)
        sandbox = SandboxThread(base / "server", demo=True, dicom_port=0, **options)
        sandbox.start()
    demo = base / "demo-dicom"
    if not demo.exists():
        write_demo_tree(demo)
    return sandbox, demo


def sandbox_destination(sandbox: SandboxThread) -> cfgmod.DicomProfile | None:
    """The sandbox's receiver as a DICOM destination profile (for this run only)."""
    receiver = sandbox.server.dicom if sandbox.server is not None else None
    if receiver is None:
        return None
    return cfgmod.DicomProfile(
        name="sandbox",
        ae=receiver.ae_title,
        host="127.0.0.1",
        port=receiver.port,
        idle_seconds=SANDBOX_DICOM_IDLE * 1.25 + 1.0,
    )


def build_app(args: argparse.Namespace, cfg: cfgmod.Config, *, start_path: Path) -> XnatTuiApp:
    from xnat_tui.ui.app import XnatTuiApp

    request, auto = _login_request(args, cfg)
    return XnatTuiApp(
        cfg,
        scan=scan_tree,
        connector=login,
        start_path=start_path,
        login=request,
        auto_login=auto,
    )


def run_tui(args: argparse.Namespace) -> int:
    from xnat_tui.xnat.errors import UsageError

    try:
        cfg = cfgmod.load()
    except cfgmod.ConfigError as exc:
        sys.stderr.write(f"xnat-tui: {exc}\n")
        return 2
    if getattr(args, "server", None) and not getattr(args, "sandbox", False):
        # A URL that can never work (not a URL, a password in it) stops here, with exit
        # code 2 as in the commands, rather than in a pre-filled login form.
        from xnat_tui.xnat.credentials import normalise_server

        try:
            normalise_server(args.server)
        except UsageError as exc:
            sys.stderr.write(f"xnat-tui: {exc.message}\n")
            if exc.hint:
                sys.stderr.write(f"hint: {exc.hint}\n")
            return 2
    if getattr(args, "profile", None) and args.profile not in cfg.profiles:
        sys.stderr.write(f"xnat-tui: no profile named {args.profile!r} in {cfg.path}\n")
        return 2
    sandbox = None
    cleanup: Path | None = None
    # ``xnat-tui PATH`` (cli.main checked it is a folder); else the demo tree with
    # --sandbox, else the current folder.
    given: Path | None = getattr(args, "path", None)
    start_path = given or Path.cwd()
    try:
        if getattr(args, "sandbox", False):
            override = os.environ.get(SANDBOX_DIR_ENV)
            base = (
                Path(override) if override else Path(tempfile.mkdtemp(prefix="xnat-tui-sandbox-"))
            )
            cleanup = None if override else base
            base.mkdir(parents=True, exist_ok=True)
            sandbox, demo = _start_sandbox(base)
            start_path = given or demo
            (base / "sandbox-url").write_text(sandbox.url + "\n", encoding="utf-8")
            receiver = sandbox_destination(sandbox)
            if receiver is not None:
                cfg.dicom["sandbox"] = receiver
                where = f"{receiver.ae}@{receiver.host}:{receiver.port}"
                (base / "sandbox-dicom").write_text(where + "\n", encoding="utf-8")
            args.server, args.user = sandbox.url, "alice"
            app = build_app(args, cfg, start_path=start_path)
            app.login = LoginRequest(url=sandbox.url, user="alice", password="alice")
            app.auto_login = True
            app.sandbox_url = sandbox.url
        else:
            app = build_app(args, cfg, start_path=start_path)
        problem = keys_from_terminal()
        if problem:
            sys.stderr.write(f"xnat-tui: {problem}\n")
            return 2
        tune_runtime()
        result = app.run()
        # A crash (an unhandled exception: Textual prints the traceback) exits with
        # Textual's non-zero return code, never 0.
        crashed: int | None = getattr(app, "return_code", None)
        return crashed or int(result or 0)
    finally:
        if sandbox is not None:
            sandbox.stop()
        if cleanup is not None:
            shutil.rmtree(cleanup, ignore_errors=True)
