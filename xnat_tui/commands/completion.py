"""``xnat-tui completion bash|zsh|fish``: print a shell completion script.

The script holds the commands, options and option choices of this version (read from
the parsers every command registers, so it never lists a stale option; generate it
again after an upgrade). Profile names and job IDs change between uses, so the script
asks for them each time it completes one, through a hidden fast path::

    xnat-tui completion --complete profiles        # from the config file
    xnat-tui completion --complete jobs:retry      # from the journal, for that action

which prints ``value<TAB>description`` lines and imports neither the engine nor the HTTP
client: the config is read as plain TOML and the journal with SQLite, read-only, so
completing never creates a journal or waits on one a running upload holds.
Not handled: ``--option=value`` (complete ``--option value`` instead).
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xnat_tui.commands._args import EXIT_OK, EXIT_USAGE, add_connection_arguments

SHELLS = ("bash", "zsh", "fish")

# The journal's file under the state dir (xnat_tui.transfer.journal.default_path; not
# imported from there, as xnat_tui.transfer loads the whole engine).
JOURNAL_NAME = "journal.sqlite3"

# Which jobs each `transfers ACTION ID` can act on (None: any job). The state names of
# xnat_tui.transfer.types.JobState, and the choices transfers.py makes.
_ACTIVE = ("queued", "sending", "committing", "verifying")
JOB_STATES: dict[str, tuple[str, ...] | None] = {
    "list": None,
    "show": None,
    "resume": (*_ACTIVE, "paused"),
    "pause": _ACTIVE,
    "cancel": (*_ACTIVE, "paused", "failed"),
    "retry": ("failed",),
}

# Words the generated scripts embed unquoted: command names, options, choices.
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*|-{1,2}[A-Za-z0-9][A-Za-z0-9_-]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "completion",
        help="print a shell completion script (bash, zsh or fish)",
        description="Print a completion script for SHELL: subcommands, options, profile "
        "names (from the config) and job IDs (from the journal, looked up as you type).",
        epilog="Load it with: bash: source <(xnat-tui completion bash) in ~/.bashrc; "
        "zsh: source <(xnat-tui completion zsh) in ~/.zshrc after compinit; "
        "fish: xnat-tui completion fish > ~/.config/fish/completions/xnat-tui.fish",
    )
    parser.add_argument(
        "shell", nargs="?", choices=SHELLS, metavar="SHELL", help="bash, zsh or fish"
    )
    # What the scripts call back while completing (profiles, jobs, jobs:ACTION).
    parser.add_argument("--complete", metavar="WHAT", help=argparse.SUPPRESS)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.complete is not None:
        return complete(args.complete)
    if args.shell is None:
        print(
            "xnat-tui completion: name a shell: bash, zsh or fish "
            "(e.g. source <(xnat-tui completion bash))",
            file=sys.stderr,
        )
        return EXIT_USAGE
    sys.stdout.write(script(args.shell))
    return EXIT_OK


# --------------------------------------------------------------- dynamic values
def complete(what: str) -> int:
    """Print the candidates for ``what`` (``profiles``, ``jobs`` or ``jobs:ACTION``)."""
    kind, _, action = what.partition(":")
    if kind == "profiles" and not action:
        lines = profile_candidates()
    elif kind == "jobs" and (not action or action in JOB_STATES):
        lines = job_candidates(action or None)
    else:
        print(f"xnat-tui completion: cannot complete {what!r}", file=sys.stderr)
        return EXIT_USAGE
    if lines:
        sys.stdout.write("".join(f"{line}\n" for line in lines))
    return EXIT_OK


def _clean(text: object) -> str:
    """A description on one line: control characters (tabs, newlines) become spaces."""
    return _CONTROL.sub(" ", str(text)).strip()


def profile_candidates() -> list[str]:
    """``NAME<TAB>URL`` per profile of the config file; nothing if it cannot be read.

    Read as raw TOML, not through ``config.load``: a config with a mistake elsewhere
    still completes its profile names (the command itself then reports the mistake).
    """
    import tomllib

    from xnat_tui.config import config_path

    try:
        with open(config_path(), "rb") as fh:
            raw = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError):
        return []
    profiles = raw.get("profiles")
    if not isinstance(profiles, dict):
        return []
    out = []
    for name, body in profiles.items():
        if not isinstance(name, str) or not _WORD.fullmatch(name):
            continue  # spaces, quotes or $: not offered (a shell would split or expand it)
        url = body.get("url", "") if isinstance(body, dict) else ""
        out.append(f"{name}\t{_clean(url)}" if url else name)
    return out


def journal_path() -> Path:
    from xnat_tui.config import state_dir

    return state_dir() / JOURNAL_NAME


def job_candidates(action: str | None = None) -> list[str]:
    """``ID<TAB>state project/subject/label`` per job ``transfers ACTION`` can act on,
    newest first; nothing if there is no journal or it cannot be read."""
    import sqlite3

    path = journal_path()
    if not path.is_file():
        return []
    states = JOB_STATES.get(action) if action else None
    sql = "SELECT id, state, project, subject, label FROM jobs"
    params: tuple[str, ...] = ()
    if states is not None:
        sql += f" WHERE state IN ({','.join('?' * len(states))})"
        params = states
    sql += " ORDER BY created DESC, id"
    try:
        # Read-only: completing never creates a journal, and a running upload keeps
        # its write lock (a busy journal gives no candidates after 0.2 s, not a hang).
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=0.2)
        try:
            rows = db.execute(sql, params).fetchall()
        finally:
            db.close()
    except sqlite3.Error:
        return []
    return [
        f"{job_id}\t{_clean(state)} {_clean(project)}/{_clean(subject)}/{_clean(label)}"
        for job_id, state, project, subject, label in rows
        if isinstance(job_id, str) and _WORD.fullmatch(job_id)
    ]


# --------------------------------------------------------------- the command tree
@dataclass
class Level:
    """One command level (``""``, ``"transfers"``, ``"transfers show"``): what may follow.

    A value kind is ``""`` (a flag, no value), ``"-"`` (a value, nothing to offer),
    ``"@files"``, ``"@dirs"``, ``"@profiles"``, ``"@jobs:ACTION"`` or choices
    ``"a,b,c"``.
    """

    path: str
    commands: dict[str, str] = field(default_factory=dict)  # name -> help
    options: dict[str, tuple[str, str]] = field(default_factory=dict)  # -> (kind, help)
    positional: str = ""  # kind of the level's positional arguments ("": none)


def command_modules() -> list[str]:
    """The subcommand modules, found as ``xnat_tui.cli.command_names`` finds them."""
    import pkgutil

    from xnat_tui import commands

    names = {m.name for m in pkgutil.iter_modules(commands.__path__)}
    return sorted(n for n in names if n[0] != "_" and n.isidentifier())


def full_parser() -> argparse.ArgumentParser:
    """A parser with every command registered, top-level options as ``xnat_tui.cli``
    sets them (a command may not import the CLI; tests compare the two)."""
    parser = argparse.ArgumentParser(prog="xnat-tui")
    parser.add_argument("--version", action="version", help="show the version and exit")
    parser.add_argument(
        "--sandbox", action="store_true", help="start the built-in demo sandbox and log in"
    )
    add_connection_arguments(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in command_modules():
        importlib.import_module(f"xnat_tui.commands.{name}").register(sub)
    return parser


def _help(action: argparse.Action) -> str:
    text = action.help or ""
    if "%" in text:
        try:
            text = text % {**vars(action), "prog": "xnat-tui"}
        except (KeyError, TypeError, ValueError):
            pass
    return _clean(text)


def _kind(action: argparse.Action, path: tuple[str, ...]) -> str:
    if action.choices:
        return ",".join(str(c) for c in action.choices)
    if action.dest == "profile":
        return "@profiles"
    if path[:1] == ("transfers",) and action.dest == "id" and len(path) == 2:
        return f"@jobs:{path[1]}"
    metavar = str(action.metavar or "").upper()
    if action.type is Path or metavar in ("PATH", "FILE", "DIR"):
        return "@dirs" if metavar == "DIR" or action.dest.endswith("dir") else "@files"
    return "-"


def command_tree(parser: argparse.ArgumentParser | None = None) -> list[Level]:
    """Every level of ``parser`` (default: the full one), top level first."""
    levels: list[Level] = []

    def visit(p: argparse.ArgumentParser, path: tuple[str, ...]) -> None:
        level = Level(" ".join(path))
        levels.append(level)
        children: list[tuple[str, argparse.ArgumentParser]] = []
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {a.dest: _help(a) for a in action._choices_actions}
                for name, child in action.choices.items():
                    level.commands[name] = helps.get(name, "")
                    children.append((name, child))
            elif action.help == argparse.SUPPRESS:
                continue
            elif action.option_strings:
                kind = "" if action.nargs == 0 else _kind(action, path)
                for option in action.option_strings:
                    level.options[option] = (kind, _help(action))
            elif not level.positional:
                level.positional = _kind(action, path)
        for name, child in children:
            visit(child, (*path, name))

    visit(parser or full_parser(), ())
    # `xnat-tui PATH`: the TUI's folder (cli.py builds that parser only when one is given).
    levels[0].positional = levels[0].positional or "@dirs"
    for level in levels:
        words = [*level.commands, *level.options, *level.path.split()]
        words += [c for kind, _ in level.options.values() for c in _choices(kind)]
        words += _choices(level.positional)
        for word in words:
            if not _WORD.fullmatch(word):
                raise ValueError(f"{word!r} cannot go into a completion script unquoted")
    return levels


def _choices(kind: str) -> list[str]:
    return [] if kind in ("", "-") or kind.startswith("@") else kind.split(",")


# --------------------------------------------------------------- the scripts
def script(shell: str, levels: list[Level] | None = None) -> str:
    from xnat_tui import __version__

    levels = levels if levels is not None else command_tree()
    make = {"bash": _bash, "zsh": _zsh, "fish": _fish}[shell]
    return make(levels, __version__)


def _vals(level: Level) -> str:
    """`` --opt:kind ... ``: the options that take a value, and what it is."""
    pairs = [f"{opt}:{kind}" for opt, (kind, _) in level.options.items() if kind]
    return f" {' '.join(pairs)} " if pairs else " "


def _sq(text: str) -> str:
    """Single-quoted for bash and zsh."""
    return "'" + text.replace("'", "'\\''") + "'"


def _fq(text: str) -> str:
    """Single-quoted for fish (which knows backslash escapes inside them)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class _Syntax:
    """How a shell's script writes the case of one level."""

    quote: Callable[[str], str]
    head: str  # the case's first line: {} is the level's path, quoted
    setting: str  # a line a variable: {} its name, {} its value
    end: str = ""  # after the case's last line


_SH = _Syntax(_sq, "{})", "_xt_{}={}", " ;;")  # bash and zsh
_FISH_CASE = _Syntax(_fq, "case {}", "set -g __xt_{} {}")


def _fill(
    template: str,
    version: str,
    levels: list[Level],
    syntax: _Syntax,
    values: Callable[[Level], dict[str, str]],
) -> str:
    """``template`` with its version and its cases, one a level: the shell's own ``values``
    of the level, then what every shell sets (the value kinds, the positional's kind)."""
    q = syntax.quote
    blocks = []
    for lv in levels:
        settings = {**values(lv), "vals": q(_vals(lv)), "pos": q(lv.positional)}
        lines = [f"        {syntax.head.format(q(lv.path))}"]
        lines += [f"            {syntax.setting.format(k, v)}" for k, v in settings.items()]
        blocks.append("\n".join(lines) + syntax.end)
    return template.replace("@VERSION@", version).replace("@CASES@", "\n".join(blocks))


def _bash(levels: list[Level], version: str) -> str:
    def values(lv: Level) -> dict[str, str]:
        return {"cmds": _sq(" ".join(lv.commands)), "opts": _sq(" ".join(lv.options))}

    return _fill(_BASH, version, levels, _SH, values)


def _zsh(levels: list[Level], version: str) -> str:
    def values(lv: Level) -> dict[str, str]:
        cmds = " ".join(_sq(f"{name}:{text}") for name, text in lv.commands.items())
        opts = " ".join(_sq(f"{opt}:{text}") for opt, (_, text) in lv.options.items())
        return {
            "names": _sq(" " + " ".join(lv.commands) + " "),
            "cmds": f"({cmds})",
            "opts": f"({opts})",
        }

    return _fill(_ZSH, version, levels, _SH, values)


def _fish(levels: list[Level], version: str) -> str:
    def values(lv: Level) -> dict[str, str]:
        return {
            "names": " ".join(lv.commands),
            "cmds": " ".join(f"{name}\\t{_fq(text)}" for name, text in lv.commands.items()),
            "opts": " ".join(f"{opt}\\t{_fq(text)}" for opt, (_, text) in lv.options.items()),
        }

    return _fill(_FISH, version, levels, _FISH_CASE, values)


_BASH = r"""# bash completion for xnat-tui @VERSION@ (written by `xnat-tui completion bash`;
# write it again after an upgrade). Load it from ~/.bashrc:
#     source <(xnat-tui completion bash)
# or save it as ~/.local/share/bash-completion/completions/xnat-tui.
# Profile names and job IDs are asked from xnat-tui each time.

_xnat_tui_level() {
    case "$1" in
@CASES@
        *)
            _xt_cmds='' _xt_opts='' _xt_vals=' ' _xt_pos='' ;;
    esac
}

_xnat_tui_add() {
    local line
    while IFS= read -r line; do
        [[ -n $line ]] && COMPREPLY+=("$line")
    done
}

_xnat_tui_values() {
    # $1: what the word is (@files, @dirs, @profiles, @jobs:ACTION, a,b,c or -)
    local kind="$1" exe="${COMP_WORDS[0]}"
    case "$kind" in
        ''|-) ;;
        @files)
            compopt -o filenames 2>/dev/null
            _xnat_tui_add < <(compgen -f -- "$cur") ;;
        @dirs)
            compopt -o filenames 2>/dev/null
            _xnat_tui_add < <(compgen -d -- "$cur") ;;
        @*)
            # Not through compgen -W, which would expand $(...) in a value.
            [[ $exe == "~/"* ]] && exe="$HOME/${exe#"~/"}"
            local value rest
            while IFS=$'\t' read -r value rest; do
                [[ -n $value && $value == "$cur"* ]] && COMPREPLY+=("$value")
            done < <("$exe" completion --complete "${kind#@}" 2>/dev/null) ;;
        *)
            _xnat_tui_add < <(compgen -W "${kind//,/ }" -- "$cur") ;;
    esac
}

_xnat_tui() {
    local cur="${COMP_WORDS[COMP_CWORD]}" level='' kind='' word i literal=''
    local _xt_cmds _xt_opts _xt_vals _xt_pos
    COMPREPLY=()
    _xnat_tui_level ''
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${COMP_WORDS[i]}"
        if [[ -n $kind ]]; then
            kind=''
        elif [[ -z $literal && $word == -- ]]; then
            literal=1
        elif [[ -z $literal && $word == -* ]]; then
            if [[ $_xt_vals == *" $word:"* ]]; then
                kind="${_xt_vals#*" $word:"}"
                kind="${kind%% *}"
            fi
        elif [[ -z $literal && " $_xt_cmds " == *" $word "* ]]; then
            level="${level:+$level }$word"
            _xnat_tui_level "$level"
        fi
    done
    if [[ -n $kind ]]; then
        _xnat_tui_values "$kind"
    elif [[ -z $literal && $cur == -* ]]; then
        _xnat_tui_add < <(compgen -W "$_xt_opts" -- "$cur")
    else
        [[ -z $literal ]] && _xnat_tui_add < <(compgen -W "$_xt_cmds" -- "$cur")
        _xnat_tui_values "$_xt_pos"
    fi
    return 0
}

complete -F _xnat_tui xnat-tui
"""

_ZSH = r"""#compdef xnat-tui
# zsh completion for xnat-tui @VERSION@ (written by `xnat-tui completion zsh`;
# write it again after an upgrade). Load it from ~/.zshrc, after compinit:
#     source <(xnat-tui completion zsh)
# or save it as _xnat-tui in a folder of $fpath.
# Profile names and job IDs are asked from xnat-tui each time.

_xnat_tui_level() {
    case "$1" in
@CASES@
        *)
            _xt_names=' ' _xt_cmds=() _xt_opts=() _xt_vals=' ' _xt_pos='' ;;
    esac
}

_xnat_tui_values() {
    # $1: what the word is (@files, @dirs, @profiles, @jobs:ACTION, a,b,c or -)
    local kind=$1 exe=${(Q)words[1]} line value text
    local -a items
    case $kind in
        ''|-) _message 'value'; return 1 ;;
        @files) _files ;;
        @dirs) _files -/ ;;
        @*)
            [[ $exe == '~/'* ]] && exe=$HOME/${exe#'~/'}
            for line in ${(f)"$("$exe" completion --complete ${kind#@} 2>/dev/null)"}; do
                value=${line%%$'\t'*}
                text=${line#*$'\t'}
                [[ $text == $line ]] && text=''
                items+=("${value//:/\\:}${text:+:$text}")
            done
            _describe -t values ${kind#@} items ;;
        *)
            items=(${(s:,:)kind})
            compadd -a items ;;
    esac
}

_xnat_tui() {
    local level='' kind='' word literal='' i ret=1
    local _xt_names _xt_vals _xt_pos
    local -a _xt_cmds _xt_opts
    _xnat_tui_level ''
    for (( i = 2; i < CURRENT; i++ )); do
        word=${words[i]}
        if [[ -n $kind ]]; then
            kind=''
        elif [[ -z $literal && $word == -- ]]; then
            literal=1
        elif [[ -z $literal && $word == -* ]]; then
            if [[ $_xt_vals == *" $word:"* ]]; then
                kind=${_xt_vals#*" $word:"}
                kind=${kind%% *}
            fi
        elif [[ -z $literal && $_xt_names == *" $word "* ]]; then
            level=${level:+$level }$word
            _xnat_tui_level $level
        fi
    done
    if [[ -n $kind ]]; then
        _xnat_tui_values $kind
        return
    fi
    if [[ -z $literal && ${words[CURRENT]} == -* ]]; then
        _describe -t options option _xt_opts
        return
    fi
    if [[ -z $literal ]] && (( ${#_xt_cmds} )); then
        _describe -t commands command _xt_cmds && ret=0
    fi
    if [[ -n $_xt_pos ]]; then
        _xnat_tui_values $_xt_pos && ret=0
    fi
    return ret
}

if [[ $funcstack[1] == _xnat-tui ]]; then
    _xnat_tui "$@"
else
    compdef _xnat_tui xnat-tui
fi
"""

_FISH = r"""# fish completion for xnat-tui @VERSION@ (written by `xnat-tui completion fish`;
# write it again after an upgrade). Load it with
#     xnat-tui completion fish > ~/.config/fish/completions/xnat-tui.fish
# Profile names and job IDs are asked from xnat-tui each time.

function __xnat_tui_level
    set -g __xt_names
    set -g __xt_cmds
    set -g __xt_opts
    set -g __xt_vals ' '
    set -g __xt_pos ''
    switch "$argv[1]"
@CASES@
    end
end

function __xnat_tui_values --argument-names kind exe
    switch "$kind"
        case '' -
        case @files
            __fish_complete_path (commandline -ct)
        case @dirs
            __fish_complete_directories (commandline -ct)
        case '@*'
            $exe completion --complete (string sub -s 2 -- $kind) 2>/dev/null
        case '*'
            string split , -- $kind
    end
end

function __xnat_tui_complete
    set -l words (commandline -opc)
    set -l cur (commandline -ct)
    set -l level ''
    set -l kind ''
    set -l literal ''
    __xnat_tui_level ''
    for word in $words[2..-1]
        if test -n "$kind"
            set kind ''
        else if test -z "$literal" -a "$word" = --
            set literal 1
        else if test -z "$literal"; and string match -q -- '-*' $word
            if string match -q -- "* $word:*" $__xt_vals
                set -l option (string escape --style=regex -- $word)
                set kind (string replace -r -- '^.* '$option':(\S+) .*$' '$1' $__xt_vals)
            end
        else if test -z "$literal"; and contains -- $word $__xt_names
            set level (string trim -- "$level $word")
            __xnat_tui_level $level
        end
    end
    if test -n "$kind"
        __xnat_tui_values $kind $words[1]
    else if test -z "$literal"; and string match -q -- '-*' $cur
        printf '%s\n' $__xt_opts
    else
        test -z "$literal"; and printf '%s\n' $__xt_cmds
        __xnat_tui_values "$__xt_pos" $words[1]
    end
end

complete -c xnat-tui -f -a '(__xnat_tui_complete)'
"""
