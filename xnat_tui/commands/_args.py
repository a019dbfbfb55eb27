"""What the subcommands share: exit codes, connection flags, ``--var`` values.

Private (a leading underscore: not discovered as a subcommand). ``xnat_tui.cli``
imports it too, so no module under ``commands/`` needs to import the CLI.
"""

from __future__ import annotations

import argparse
from collections.abc import Collection, Sequence
from pathlib import Path

from xnat_tui.config import BANDWIDTH_RANGE, check_bandwidth
from xnat_tui.workflow.shards import Shard

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

# The connection flags' values when none is given; set once, on the top-level parser.
CONNECTION_DEFAULTS: dict[str, object] = {
    "server": None,
    "user": None,
    "profile": None,
    "password_stdin": False,
    "insecure": False,
    "ca_bundle": None,
    "allow_http": False,
}


def add_connection_arguments(
    parser: argparse.ArgumentParser,
    *,
    profile_flag: str = "--profile",
    title: str = "connection",
) -> None:
    """Flags every command that talks to a server shares, with suppressed defaults.

    argparse copies a subcommand's defaults over the values the top-level parser
    already holds, so ``xnat-tui --server URL prearchive list`` would lose URL; a
    suppressed default keeps it. The real defaults (``CONNECTION_DEFAULTS``) are set
    once on the top-level parser. ``profile_flag`` renames ``--profile`` where a
    command uses that word for something else (``anonymize --profile basic``).
    """
    group = parser.add_argument_group(title)
    hide = argparse.SUPPRESS
    group.add_argument(
        "--server", metavar="URL", default=hide, help="XNAT base URL (or env XNAT_HOST)"
    )
    group.add_argument(
        "--user", metavar="USER", default=hide, help="user name or alias token (or XNAT_USER)"
    )
    group.add_argument(
        profile_flag,
        dest="profile",
        metavar="NAME",
        default=hide,
        help="server profile from the config file",
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
    group.add_argument(
        "--ca-bundle",
        metavar="PATH",
        default=hide,
        help="PEM file (or folder) of a private certificate authority to trust, added to "
        "the system's (or the profile's ca_bundle)",
    )
    group.add_argument(
        "--allow-http",
        action="store_true",
        default=hide,
        help="allow plain http:// to a host other than this machine (the password then "
        "crosses the network unencrypted; or the profile's allow_http = true)",
    )
    for action in parser._actions:
        if action.dest in CONNECTION_DEFAULTS:
            action.default = hide


def path_argument(text: str) -> Path:
    """A PATH argument: an empty one is refused (``Path("")`` would be this folder, and
    ``xnat-tui upload "$DIR"`` with DIR unset must not upload the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path is not a folder (use . for this one)")
    return Path(text)


def shard_argument(text: str) -> Shard:
    """``--shard I/N``."""
    try:
        return Shard.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix(f"--shard {text!r}: ")) from None


def bandwidth_argument(text: str) -> float:
    """``--bandwidth MBPS``: 0 (unlimited) or a finite rate within the engine's range."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number: give {BANDWIDTH_RANGE}"
        ) from None
    try:
        return check_bandwidth(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is out of range: give {BANDWIDTH_RANGE}"
        ) from None


def option_values() -> set[str]:
    """The connection options that take a value (``--profile NAME``)."""
    probe = argparse.ArgumentParser(add_help=False)
    add_connection_arguments(probe)
    return {
        option for action in probe._actions if action.nargs != 0 for option in action.option_strings
    }


# --var names the upload sets itself (from --project/--subject/--session).
UPLOAD_VARIABLES = ("project", "subject", "session")


def parse_variables(items: Sequence[str], reserved: Collection[str] = ()) -> dict[str, str]:
    """``--var NAME=VALUE`` items → dict; ValueError naming the offending item.

    ``reserved`` are names the command sets itself (refused with a hint).
    """
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise ValueError(f"--var {item!r}: expected NAME=VALUE")
        if name in reserved:
            raise ValueError(
                f"--var {name}: set by the upload itself (use --project/--subject/--session)"
            )
        if not value.strip():
            raise ValueError(f"--var {name}: a value is required")
        if "\\" in value or any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError(
                f"--var {name}: control characters and backslashes are not allowed "
                "(a backslash would split the value into several DICOM values)"
            )
        out[name] = value
    return out
