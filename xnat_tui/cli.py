"""Command-line entry: the TUI by default, subcommands for headless work.

Each subcommand lives in its own module under ``xnat_tui.commands`` and exposes
``register(subparsers)``; modules are discovered, so adding a command touches no
shared file. Heavy imports (Textual, the engine) happen inside the commands.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from xnat_tui import __version__, commands

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


CONNECTION_DEFAULTS: dict[str, object] = {
    "server": None,
    "user": None,
    "profile": None,
    "password_stdin": False,
    "insecure": False,
}


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags every command that talks to a server shares.

    Defaults are suppressed here and set once on the top-level parser: otherwise a
    subcommand's defaults would overwrite flags given before it
    (``xnat-tui --server URL prearchive list``).
    """
    group = parser.add_argument_group("connection")
    hide = argparse.SUPPRESS
    group.add_argument(
        "--server", metavar="URL", default=hide, help="XNAT base URL (or env XNAT_HOST)"
    )
    group.add_argument(
        "--user", metavar="USER", default=hide, help="user name or alias token (or XNAT_USER)"
    )
    group.add_argument(
        "--profile", metavar="NAME", default=hide, help="server profile from the config file"
    )
    group.add_argument(
        "--password-stdin",
        action="store_true",
        default=hide,
        help="read the password from standard input",
    )
    group.add_argument(
        "--insecure",
        action="store_true",
        default=hide,
        help="do not verify the server's TLS certificate",
    )


def command_names() -> list[str]:
    """The subcommands: one module each in ``xnat_tui.commands``."""
    try:
        files = os.listdir(commands.__path__[0])
    except OSError:  # not a folder (a zip archive): ask the import system
        import pkgutil

        files = [f"{m.name}.py" for m in pkgutil.iter_modules(commands.__path__)]
    names = {
        name.rsplit(".", 1)[0]
        for name in files
        if name.endswith((".py", ".pyc")) and name[0] != "_"
    }
    # Editor droppings (".#scan.py") and the like are not modules.
    return sorted(n for n in names if n.isidentifier())


def _named_command(argv: Sequence[str], names: list[str]) -> str | None:
    """The command ``argv`` runs: its first word that is not an option or an option's
    value (``--profile sandbox scan``: "scan", not "sandbox")."""
    probe = argparse.ArgumentParser(add_help=False)
    add_connection_arguments(probe)
    takes_value = {
        option for action in probe._actions if action.nargs != 0 for option in action.option_strings
    }
    words = iter(argv)
    for word in words:
        if word == "--":
            break
        if word.startswith("-"):
            if word in takes_value:
                next(words, None)
            continue
        return word if word in names else None
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; given ``argv``, only the command it runs is imported.

    Importing every command costs ~15 ms of start-up (HTTP client, upload engine),
    which ``xnat-tui scan`` and friends should not pay. Without a command in ``argv``
    (help, a typo) every command is registered, so help and errors list all.
    """
    names = command_names()
    if argv is not None:
        named = _named_command(argv, names)
        names = [named] if named else names
    parser = argparse.ArgumentParser(
        prog="xnat-tui",
        description="Upload DICOM sessions to XNAT and triage its prearchive.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--sandbox",
        action="store_true",
        help="start the built-in demo sandbox server in-process and log in as alice",
    )
    add_connection_arguments(parser)
    parser.set_defaults(**CONNECTION_DEFAULTS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in names:
        module = importlib.import_module(f"{commands.__name__}.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        if args.command is None:
            from xnat_tui.ui.launch import run_tui

            return int(run_tui(args))
        code: int = args.func(args)
        return code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
