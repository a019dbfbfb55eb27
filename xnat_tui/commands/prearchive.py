"""``xnat-tui prearchive``: list and triage prearchive sessions without the TUI.

Same domain code as the triage screen (``xnat_tui.workflow.prearchive``). Exit codes:
0 everything succeeded, 1 a session failed or the server refused, 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from xnat_tui.commands._args import EXIT_FAILED, EXIT_OK, EXIT_USAGE, add_connection_arguments
from xnat_tui.text import cells, pad, safe

if TYPE_CHECKING:
    from xnat_tui.workflow.prearchive import ActionRequest, ActionResult, PrearchiveRow, TriageOps

OVERWRITE = ("none", "append", "delete")
# Columns of the plain listing; --json carries every XNAT column.
LIST_COLUMNS = ("project", "timestamp", "subject", "name", "status", "scan_date", "tag", "url")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "prearchive",
        help="list and triage prearchive sessions (archive, move, rebuild, delete)",
        description="List and triage XNAT prearchive sessions. URL is a row's 'url' as "
        "'prearchive list' prints it (/prearchive/projects/P/TIMESTAMP/FOLDER).",
    )
    sub = parser.add_subparsers(dest="prearchive_command", metavar="ACTION", required=True)

    ls = sub.add_parser("list", help="list prearchive sessions you can edit")
    ls.add_argument("--project", metavar="P", help="only this project (or Unassigned)")
    ls.add_argument("--status", metavar="S", help="only this status (READY, CONFLICT, ERROR...)")
    ls.add_argument("--json", action="store_true", help="print XNAT's rows as JSON")
    add_connection_arguments(ls)
    ls.set_defaults(func=run)

    helps = {
        "archive": "archive sessions (routing Unassigned ones to --project first)",
        "move": "move sessions to another project's prearchive",
        "rebuild": "rebuild the session documents (e.g. after RECEIVING or ERROR)",
        "delete": "delete sessions and their files from the prearchive",
    }
    for name, text in helps.items():
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("urls", nargs="+", metavar="URL", help="prearchive url of a session")
        if name in ("archive", "move"):
            p.add_argument(
                "--project",
                metavar="P2",
                required=name == "move",
                help="destination project" + (" (moves first)" if name == "archive" else ""),
            )
        if name == "archive":
            p.add_argument("--subject", metavar="S", help="subject label (one URL only)")
            p.add_argument("--label", metavar="L", help="session label (one URL only)")
            p.add_argument("--overwrite", choices=OVERWRITE, default="none")
        if name != "rebuild":
            p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        p.add_argument("--json", action="store_true", help="print per-session results as JSON")
        add_connection_arguments(p)
        p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from xnat_tui.commands._connect import report_error

    try:
        import asyncio  # here, not at the top: every CLI start imports this module

        return asyncio.run(_main(args))
    except Exception as exc:  # noqa: BLE001 - typed XNAT errors get their hint printed
        return report_error(exc)


async def _main(args: argparse.Namespace) -> int:
    from xnat_tui.commands._connect import open_client
    from xnat_tui.xnat.prearchive_ops import ClientTriageOps

    usage = _usage_problem(args)
    if usage:
        print(f"error: {usage}", file=sys.stderr)
        return EXIT_USAGE
    async with open_client(args) as client:
        ops = ClientTriageOps(client)
        if args.prearchive_command == "list":
            return await _list(ops, args)
        return await _act(ops, args)


def _usage_problem(args: argparse.Namespace) -> str:
    from xnat_tui.workflow.labels import label_problem

    command = args.prearchive_command
    if command == "archive":
        if (args.subject or args.label) and len(args.urls) > 1:
            return "--subject and --label apply to one session; give a single URL"
        for value, what in ((args.subject, "subject label"), (args.label, "session label")):
            if value is not None:
                problem = label_problem(value, what)
                if problem:
                    return problem
    if command != "list":
        bad = [u for u in args.urls if "/prearchive/projects/" not in u]
        if bad:
            return (
                f"{bad[0]!r} is not a prearchive url (expected /prearchive/projects/P/TS/FOLDER"
                " as 'xnat-tui prearchive list' prints it)"
            )
    return ""


async def _list(ops: TriageOps, args: argparse.Namespace) -> int:
    from xnat_tui.workflow.prearchive import RowFilter, filter_rows, parse_rows, sort_rows

    rows = parse_rows(await ops.list_prearchive(args.project or None))
    rows = sort_rows(filter_rows(rows, RowFilter(status=args.status or "")), "timestamp")
    if args.json:
        print(json.dumps([r.as_json() for r in rows], indent=2))
        return EXIT_OK
    if not rows:
        print("No prearchive sessions" + (f" in {args.project}" if args.project else "") + ".")
        return EXIT_OK
    # The server's values, made safe; columns padded in terminal cells.
    table = [list(LIST_COLUMNS)] + [
        [safe(r.project if c == "project" else r.get(c)) for c in LIST_COLUMNS] for r in rows
    ]
    widths = [max(cells(row[i]) for row in table) for i in range(len(LIST_COLUMNS) - 1)]
    for row in table:
        padded = [pad(cell, w) for cell, w in zip(row, widths, strict=False)]
        print("  ".join([*padded, row[-1]]))
    return EXIT_OK


async def _rows_for(ops: TriageOps, urls: list[str]) -> tuple[list[PrearchiveRow], set[str]]:
    """The listed row of each URL, and the URLs not listed (no edit access?) given bare rows."""
    from xnat_tui.workflow.prearchive import PrearchiveRow, parse_rows
    from xnat_tui.xnat.errors import NotFound, PermissionDenied
    from xnat_tui.xnat.prearchive_ops import listing_url, project_of

    wanted = [listing_url(u) for u in urls]
    by_url: dict[str, PrearchiveRow] = {}
    scopes: list[str | None] = [None] + sorted({project_of(u) for u in wanted})
    for scope in scopes:
        if all(u in by_url for u in wanted):
            break
        try:
            listed = parse_rows(await ops.list_prearchive(scope))
        except (PermissionDenied, NotFound):
            # Let the action itself hit the server: its refusal is the clearer message.
            # (Wrong password, unreachable server... end the command with one message.)
            continue
        by_url.update({listing_url(r.url): r for r in listed})
    rows = []
    unlisted: set[str] = set()
    for url in wanted:
        row = by_url.get(url)
        if row is None:
            unlisted.add(url)
            parts = url.strip("/").split("/")
            folder = parts[4] if len(parts) > 4 else ""
            row = PrearchiveRow.from_mapping(
                {
                    "project": project_of(url),
                    "timestamp": parts[3] if len(parts) > 3 else "",
                    "folderName": folder,
                    "name": folder,
                    "status": "READY",
                    "url": url,
                }
            )
        rows.append(row)
    return rows, unlisted


def _confirm(args: argparse.Namespace, question: str, lines: list[str]) -> bool | None:
    """True to go on, False if the user said no, None if nobody can be asked."""
    if getattr(args, "yes", True):
        return True
    if not sys.stdin.isatty():
        return None
    print("\n".join(safe(line) for line in lines))
    answer = input(f"{question} [y/N] ").strip().lower()
    return answer in ("y", "yes")


async def _act(ops: TriageOps, args: argparse.Namespace) -> int:
    from xnat_tui.workflow import prearchive as triage
    from xnat_tui.workflow.prearchive import Action, ActionRequest, ActionResult

    action = Action(args.prearchive_command)
    rows, unlisted = await _rows_for(ops, list(args.urls))
    requests: list[ActionRequest] = []
    refused: list[ActionResult] = []
    to_check: list[ActionRequest] = []
    for row in rows:
        blocker = triage.action_blocker(row, action)
        if blocker:
            refused.append(ActionResult(ActionRequest(row, action), False, blocker))
        elif action is Action.ARCHIVE:
            base = triage.default_target(row, args.overwrite)
            target = triage.ArchiveTarget(
                args.project or base.project,
                args.subject if args.subject is not None else base.subject,
                args.label if args.label is not None else base.label,
                args.overwrite,
            )
            # Unlisted: nothing known to check against, the server's answer is the result.
            (requests if row.url in unlisted else to_check).append(
                ActionRequest(row, action, target)
            )
        else:
            requests.append(ActionRequest(row, action, project=getattr(args, "project", "") or ""))
    if to_check:
        pairs = [(r.row, r.target) for r in to_check if r.target is not None]
        for request, preview in zip(to_check, await triage.preview_many(ops, pairs), strict=True):
            if preview.allowed:
                requests.append(request)
            else:
                refused.append(ActionResult(request, False, f"not archived: {preview.reason}"))

    if requests and action is not Action.REBUILD:
        lines = (
            triage.delete_summary([r.row for r in requests])
            if action is Action.DELETE
            else [r.describe() for r in requests]
        )
        verb = action.value
        answer = _confirm(args, f"{verb.capitalize()} {len(requests)} session(s)?", lines)
        if answer is None:
            print(
                f"error: refusing to {verb} without --yes when standard input is not a terminal",
                file=sys.stderr,
            )
            return EXIT_USAGE
        if not answer:
            print("Nothing done.")
            return EXIT_FAILED

    results = refused + await triage.perform_many(ops, requests)
    _report(results, args.json)
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILED


def _report(results: list[ActionResult], as_json: bool) -> None:
    if as_json:
        print(json.dumps([r.as_json() for r in results], indent=2))
        return
    for r in results:
        if r.ok:
            print(f"ok      {safe(r.url)}  {safe(r.message)}")
        else:
            print(f"FAILED  {safe(r.url)}  {safe(r.message)}", file=sys.stderr)
    failed = sum(1 for r in results if not r.ok)
    if failed:
        print(f"{failed} of {len(results)} failed", file=sys.stderr)
