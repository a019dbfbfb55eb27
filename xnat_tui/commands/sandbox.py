"""``xnat-tui sandbox serve|demo-data``: the XNAT-compatible test and demo server."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

DEFAULT_PORT = 8080


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sandbox",
        help="run the XNAT-compatible sandbox server (for demos and tests; not XNAT)",
        description="The built-in XNAT-compatible sandbox server, for demos and tests.",
    )
    sub = parser.add_subparsers(dest="sandbox_command", metavar="ACTION")
    serve = sub.add_parser("serve", help="serve the sandbox until interrupted")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any)"
    )
    serve.add_argument(
        "--data-dir",
        type=Path,
        help="where the database and archive live (default: <state dir>/sandbox)",
    )
    serve.add_argument(
        "--demo", action="store_true", help="seed demo users, projects and sessions if empty"
    )
    serve.add_argument(
        "--faults",
        metavar="SPEC",
        help="fault injection, e.g. 'error=503:0.1,latency=200ms,seed=1' "
        "(see 'Fault injection' in the README)",
    )
    serve.add_argument(
        "--session-timeout",
        type=float,
        default=900.0,
        metavar="S",
        help="idle seconds before an HTTP session expires (default 900)",
    )
    serve.add_argument(
        "--autobuild-interval",
        type=float,
        default=300.0,
        metavar="S",
        help="idle seconds before a receiving prearchive session is built (default 300)",
    )
    serve.add_argument(
        "--dicom-port",
        type=int,
        metavar="N",
        help="also run a DICOM C-STORE receiver on port N (0 = any free port; with --demo "
        "the default is 8104, or any free port when --port is 0)",
    )
    serve.add_argument("--dicom-ae", default="XNAT", metavar="AE", help="its AE title (XNAT)")
    serve.add_argument(
        "--dicom-idle",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="idle time before received sessions are built (default 5; XNAT's is 300)",
    )
    serve.add_argument(
        "--dicom-allow",
        action="append",
        default=[],
        metavar="AE",
        help="accept only these calling AE titles (repeatable; default: any)",
    )
    serve.set_defaults(func=run_serve)
    demo = sub.add_parser("demo-data", help="write a synthetic local DICOM tree for demos")
    demo.add_argument("dir", type=Path, help="destination folder (created if missing)")
    demo.set_defaults(func=run_demo_data)
    parser.set_defaults(func=lambda args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_usage(sys.stderr)
    print("xnat-tui sandbox: choose an action: serve or demo-data", file=sys.stderr)
    return 2


def run_serve(args: argparse.Namespace) -> int:
    import asyncio

    from xnat_tui.config import state_dir
    from xnat_tui.sandbox.faults import FaultSpecError, parse_spec

    if args.faults:
        try:
            parse_spec(args.faults)
        except FaultSpecError as exc:
            print(f"xnat-tui sandbox: bad --faults: {exc}", file=sys.stderr)
            return 2
    if args.session_timeout <= 0 or args.autobuild_interval <= 0:
        print("xnat-tui sandbox: timeouts must be positive", file=sys.stderr)
        return 2
    if args.dicom_port is None and args.demo:
        args.dicom_port = 0 if args.port == 0 else 8104
    if args.dicom_port is not None and not 0 <= args.dicom_port <= 65535:
        print("xnat-tui sandbox: --dicom-port must be 0..65535", file=sys.stderr)
        return 2
    if not args.dicom_idle > 0:
        print("xnat-tui sandbox: --dicom-idle must be positive", file=sys.stderr)
        return 2
    data_dir: Path = args.data_dir or state_dir() / "sandbox"
    try:
        return asyncio.run(_serve(args, data_dir))
    except KeyboardInterrupt:
        print("sandbox stopped", file=sys.stderr)
        return 0


async def _serve(args: argparse.Namespace, data_dir: Path) -> int:
    import asyncio
    import contextlib
    import signal

    from xnat_tui.sandbox.server import start_sandbox

    try:
        server = await start_sandbox(
            data_dir,
            host=args.host,
            port=args.port,
            demo=args.demo,
            faults=args.faults,
            session_timeout=args.session_timeout,
            autobuild_interval=args.autobuild_interval,
            dicom_port=args.dicom_port,
            dicom_ae=args.dicom_ae,
            dicom_idle=args.dicom_idle,
            dicom_allowed=tuple(args.dicom_allow),
        )
    except OSError as exc:
        print(f"xnat-tui sandbox: cannot start: {exc}", file=sys.stderr)
        return 1
    print(f"XNAT-compatible sandbox (not XNAT) serving {server.url}", flush=True)
    print(f"data dir: {data_dir}", flush=True)
    if args.demo:
        print("demo users: admin/admin, alice/alice, bob/bob, carol/carol", flush=True)
    if args.faults:
        print(f"faults: {args.faults}", flush=True)
    if server.dicom is not None:
        print(
            f"DICOM receiver: AE {server.dicom.ae_title} on {args.host}:{server.dicom.port} "
            f"(sessions built after {args.dicom_idle:g} s idle)",
            flush=True,
        )
    print("press Ctrl-C to stop", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # A clean close on either signal lets e2e tests stop the server gracefully.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.close()
    print("sandbox stopped", flush=True)
    return 0


def run_demo_data(args: argparse.Namespace) -> int:
    from xnat_tui.dicom.synthetic import write_demo_tree

    dest: Path = args.dir
    if dest.exists() and not dest.is_dir():
        print(f"xnat-tui sandbox demo-data: {dest} is not a directory", file=sys.stderr)
        return 2
    try:
        tree = write_demo_tree(dest)
    except OSError as exc:
        print(f"xnat-tui sandbox demo-data: {exc}", file=sys.stderr)
        return 1
    files = sum(len(s.paths) for s in tree.studies)
    print(
        f"wrote {len(tree.studies)} studies ({files} DICOM files, {len(tree.junk)} junk files) "
        f"under {tree.root}"
    )
    return 0
