"""The connection of a command: its flags → a logged-in client; errors printed.

Where the server, user and password come from (and in which order) is decided by
``xnat_tui.workflow.connect``, shared with the TUI.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TextIO

from xnat_tui.config import Config, state_dir
from xnat_tui.text import safe
from xnat_tui.workflow import connect

if TYPE_CHECKING:
    from xnat_tui.xnat.client import XnatClient
    from xnat_tui.xnat.credentials import Credentials

EXIT_FAILED = 1
EXIT_USAGE = 2


def resolve_credentials(
    args: argparse.Namespace,
    config: Config | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    stdin: TextIO | None = None,
    prompt_password: Callable[[str], str] | None = None,
    prompt_user: Callable[[str], str] | None = None,
    interactive: bool | None = None,
) -> Credentials:
    """``workflow.connect.resolve_credentials`` for a command's parsed arguments."""
    return connect.resolve_credentials(
        connect.ConnectionFlags.from_namespace(args),
        config,
        environ=environ,
        stdin=stdin,
        prompt_password=prompt_password,
        prompt_user=prompt_user,
        interactive=interactive,
    )


@asynccontextmanager
async def open_client(
    args: argparse.Namespace, config: Config | None = None
) -> AsyncIterator[XnatClient]:
    """A logged-in client for the command's connection flags; closed on exit.

    ``xnat-tui --sandbox COMMAND`` (no ``--server``) starts the demo sandbox in a background
    thread and logs in as alice.
    """
    from xnat_tui.xnat.client import XnatClient

    if getattr(args, "sandbox", False) and not getattr(args, "server", None):
        from xnat_tui.sandbox.server import SandboxThread
        from xnat_tui.xnat.credentials import Credentials

        thread = SandboxThread(state_dir() / "sandbox", demo=True).start()
        try:
            async with XnatClient(Credentials(thread.url, "alice", "alice", source="sandbox")) as c:
                yield c
        finally:
            thread.stop()
        return
    credentials = resolve_credentials(args, config)
    async with XnatClient(credentials) as client:
        yield client


def report_error(exc: BaseException, *, stream: TextIO | None = None) -> int:
    """Print an XNAT error the way every command does; returns the exit code."""
    from xnat_tui.xnat.errors import UsageError, XnatError

    out = sys.stderr if stream is None else stream
    if isinstance(exc, BrokenPipeError):
        # The reader went away (`... --json | head`): stop quietly, as other tools do, and
        # keep Python from complaining again when it flushes stdout at exit.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_FAILED
    if isinstance(exc, XnatError):
        print(f"error: {safe(exc.message, lines=True)}", file=out)
        if exc.hint:
            print(f"hint: {safe(exc.hint, lines=True)}", file=out)
        return EXIT_USAGE if isinstance(exc, UsageError) else EXIT_FAILED
    print(f"error: {safe(exc, lines=True)}", file=out)
    return EXIT_FAILED
