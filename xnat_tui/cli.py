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
from pathlib import Path
from typing import NoReturn

from xnat_tui import __version__, commands
from xnat_tui.commands._args import (
    CONNECTION_DEFAULTS,
    EXIT_USAGE,
    add_connection_arguments,
    option_values,
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


def _words(argv: Sequence[str]) -> tuple[list[str], bool]:
    """The words of ``argv`` that are not options or option values, and whether the
    first came after ``--`` (then it is a folder, even one named like a command)."""
    takes_value = option_values()
    words: list[str] = []
    literal = False
    items = iter(argv)
    for word in items:
        if word == "--":
            rest = list(items)
            literal = not words and bool(rest)
            words.extend(rest)
            break
        if word.startswith("-") and word != "-":
            if word in takes_value:
                next(items, None)
            continue
        words.append(word)
    return words, literal


def _named_command(argv: Sequence[str], names: list[str]) -> str | None:
    """The command ``argv`` runs: its first word that is not an option or an option's
    value (``--profile sandbox scan``: "scan", not "sandbox")."""
    words, literal = _words(argv)
    if words and not literal and words[0] in names:
        return words[0]
    return None


def _opens_a_folder(argv: Sequence[str], names: list[str]) -> bool:
    """``xnat-tui PATH``: one word that is not a command (``./scan`` or ``-- scan``
    for a folder named like one). Several words starting with an unknown one are
    taken for a mistyped command, so the error lists the commands."""
    words, literal = _words(argv)
    if literal:
        return True
    return len(words) == 1 and words[0] not in names


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; given ``argv``, only the command it runs is imported.

    Importing every command costs ~15 ms of start-up (HTTP client, upload engine),
    which ``xnat-tui scan`` and friends should not pay. Without a command in ``argv``
    (help, a typo) every command is registered, so help and errors list all. An
    ``argv`` that opens the TUI at a folder (``xnat-tui PATH``) gets a parser with a
    PATH argument instead of the commands.
    """
    names = command_names()
    folder = argv is not None and _opens_a_folder(argv, names)
    if argv is not None:
        named = _named_command(argv, names)
        names = [named] if named else names
    parser = argparse.ArgumentParser(
        prog="xnat-tui",
        usage="%(prog)s [options] [PATH]\n       %(prog)s [options] COMMAND ...",
        description="Get DICOM sessions into XNAT (from folders, archives or over DICOM) "
        "and manage them there (browse, download, copy, move, prearchive triage). "
        "'xnat-tui [PATH]' opens the terminal UI with its folder tree at PATH "
        "(default: the current folder); a COMMAND works without it. For a folder "
        "named like a command, write ./NAME or '-- NAME'.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--sandbox",
        action="store_true",
        help="start the built-in demo sandbox server in-process and log in as alice",
    )
    add_connection_arguments(parser)
    parser.set_defaults(**CONNECTION_DEFAULTS, path=None, command=None)
    if folder:
        parser.add_argument(
            "path", nargs="?", metavar="PATH", help="folder the TUI's folder tree starts at"
        )
        return parser
    # prog: a command's usage and errors begin "xnat-tui download", not with the
    # two lines of the top-level usage.
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", prog=parser.prog)
    for name in names:
        module = importlib.import_module(f"{commands.__name__}.{name}")
        module.register(sub)
    return parser


def start_folder(value: str | None) -> tuple[Path | None, str]:
    """The TUI's start folder from ``xnat-tui PATH`` (None: the current folder), or
    why it cannot be used."""
    if value is None:
        return None, ""
    path = Path(value).expanduser()
    try:
        if not path.exists():
            return None, f"{value}: no such folder"
        if not path.is_dir():
            return None, f"{value}: not a folder"
    except OSError as exc:
        return None, f"{value}: {exc.strerror or exc}"
    return path.absolute(), ""


def main(argv: Sequence[str] | None = None) -> int:
    from xnat_tui.text import safe, safe_streams

    # Every command's output (and argparse's errors) survive an ASCII or odd locale:
    # what the terminal cannot show is written as \xNN, never a UnicodeEncodeError.
    safe_streams()
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        if args.command is None:
            start, problem = start_folder(args.path)
            if problem:
                names = command_names()
                if start is None and os.sep not in args.path and args.path not in names:
                    problem += f" (or a mistyped command: {', '.join(names)})"
                print(f"xnat-tui: {safe(problem)}", file=sys.stderr)  # it holds the PATH
                return EXIT_USAGE
            args.path = start
            from xnat_tui.ui.launch import run_tui

            return int(run_tui(args))
        code: int = args.func(args)
        return code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def entry() -> NoReturn:
    """The program itself (the ``xnat-tui`` script, ``python -m xnat_tui``): :func:`main`,
    then exit."""
    code = main()
    # Everything is closed by now, yet the interpreter's exit would search the whole
    # heap for reference cycles, more than once: ~50 ms of every command with aiohttp
    # loaded. Frozen objects are skipped (and still freed by reference counting). Not in
    # main(): tests call it in-process, which must go on collecting cycles.
    import gc

    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    entry()
