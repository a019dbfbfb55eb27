"""``xnat-tui download``: sessions from a project (or an XNAT catalog) to a local folder.

Files are fetched one by one from the server's file listing, several at once, each to
``NAME.part``, verified (size, MD5 against the listing's digest, never an HTML page),
fsynced and renamed. The same engine and journal as the TUI: a download interrupted by
Ctrl-C, a lost connection or ``kill -9`` continues with ``xnat-tui transfers resume``
(or by running the same command again), skipping files already complete and verified.
Exit codes: 0 every session verified, 1 some failed, 2 usage error, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from xnat_tui.commands._args import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    add_connection_arguments,
    path_argument,
)
from xnat_tui.text import safe


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of files") from None
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError("give from 1 to 64 files at once")
    return value


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "download",
        help="download sessions (or an XNAT catalog) to a folder: parallel, resumable, "
        "verified by MD5",
        description=(
            "Download archived sessions file by file from the server's file listing: "
            "several files at once, each written to NAME.part, checked against the "
            "listing's size and MD5 digest (an HTML or error page is never saved as data), "
            "fsynced, then renamed. Running it again, or 'xnat-tui transfers resume', skips "
            "files already complete and verified. --session takes labels or IDs."
        ),
        epilog="Exit codes: 0 all sessions verified, 1 some failed, 2 usage, 130 interrupted.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--project", metavar="P", help="the project to download from")
    source.add_argument(
        "--catalog",
        type=path_argument,
        metavar="FILE.xml",
        help="a catalog from XNAT's Download Images → Catalog XML",
    )
    parser.add_argument(
        "--subject", action="append", default=[], metavar="S", help="only these subjects"
    )
    parser.add_argument(
        "--session",
        action="append",
        default=[],
        metavar="E",
        help="only these sessions (label or ID; repeatable)",
    )
    parser.add_argument(
        "--scan-type",
        action="append",
        default=[],
        metavar="T",
        help="only scans of these types (repeatable)",
    )
    parser.add_argument(
        "--resource",
        metavar="R",
        help="resource label(s) to fetch, comma separated, or ALL (default [download] "
        "resource: DICOM)",
    )
    parser.add_argument(
        "--out",
        type=path_argument,
        metavar="DIR",
        help="folder to save into (default [download] out_dir, else ./xnat-downloads)",
    )
    parser.add_argument(
        "--layout",
        choices=("xnat", "session", "flat"),
        help="xnat: SESSION/scans/ID-TYPE/resources/R/files/...; session: "
        "SUBJECT/SESSION/ID-TYPE/...; flat: SESSION/ID-FILE (default [download] layout)",
    )
    parser.add_argument(
        "--jobs", type=_jobs, metavar="N", help="files fetched at once (default [download] jobs)"
    )
    parser.add_argument(
        "--journal", type=path_argument, metavar="PATH", help="the transfer journal to use"
    )
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    add_connection_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from xnat_tui.commands._connect import report_error

    if args.catalog is not None and (args.subject or args.session or args.scan_type):
        print(
            "error: --catalog names its sessions and scans itself; drop --subject/--session/"
            "--scan-type",
            file=sys.stderr,
        )
        return EXIT_USAGE
    catalog: bytes | None = None
    if args.catalog is not None:
        try:
            catalog = Path(args.catalog).read_bytes()
        except OSError as exc:
            print(f"error: cannot read the catalog {safe(args.catalog)}: {exc}", file=sys.stderr)
            return EXIT_USAGE
    try:
        return asyncio.run(_main(args, catalog))
    except Exception as exc:  # typed XNAT errors get their hint printed
        return report_error(exc)


async def _main(args: argparse.Namespace, catalog_text: bytes | None) -> int:
    from xnat_tui.commands._connect import open_client
    from xnat_tui.commands._console import (
        Reporter,
        confirm,
        keep_running_on_hangup,
        reporter_mode,
        run_until_done,
        summary,
    )
    from xnat_tui.config import load
    from xnat_tui.transfer.journal import Journal
    from xnat_tui.transfer.types import JobState
    from xnat_tui.units import human_bytes
    from xnat_tui.workflow import download as dl
    from xnat_tui.workflow.login import connection_for

    keep_running_on_hangup()
    config = load()
    quiet = bool(args.json)
    out = Path(args.out) if args.out is not None else dl.default_out(config)
    problem = dl.out_problem(out)
    if problem is not None:
        print(f"error: {safe(problem)}", file=sys.stderr)
        return EXIT_USAGE
    layout = args.layout or config.download.layout
    resource = args.resource or config.download.resource
    async with open_client(args, config) as client:
        if catalog_text is not None:
            plan = await dl.plan_catalog(client, catalog_text, out=out)
        else:
            plan = await dl.plan_request(
                client,
                project=args.project,
                out=out,
                subjects=args.subject,
                sessions=args.session,
                scan_types=args.scan_type,
                resource=resource,
                layout=layout,
            )
        if not quiet:
            print(
                f"Download {len(plan.downloads)} session(s), {plan.files} file(s), "
                f"{human_bytes(plan.bytes)} into {safe(out)}:",
                file=sys.stderr,
            )
            for line in dl.summary_lines(plan):
                print(line, file=sys.stderr)
        if not plan.downloads:
            if args.json:
                # The same keys as any other summary: a script reads one shape.
                nothing = {"ok": False, "jobs": [], "verified": 0, "failed": 0, "out": str(out)}
                nothing.update(
                    empty=plan.empty, missing=plan.missing, replaced=[], interrupted=False
                )
                print(json.dumps(nothing, indent=2))
            print("error: nothing to download", file=sys.stderr)
            return EXIT_FAILED
        if not args.yes and not confirm(f"Download {len(plan.downloads)} session(s)?"):
            print(
                "not confirmed: nothing downloaded (use --yes to download without asking)",
                file=sys.stderr,
            )
            return EXIT_FAILED
        connection = connection_for(client, url=client.server, owned=False)
        journal = Journal(Path(args.journal) if args.journal else None)
        engine = dl.engine_for(
            client,
            journal,
            server_url=connection.port.server_url,
            username=connection.port.username,
            jobs=args.jobs or config.download.jobs,
        )
        stream = engine.subscribe()
        queued = await dl.queue(engine, plan)
        ids, replaced = queued.ids, queued.replaced
        if not quiet:
            for jid in replaced:
                print(f"{jid}: {safe(journal.job(jid).message)}", file=sys.stderr)
        empty, missing = plan.empty, plan.missing
        del plan  # the journal and the engine hold the files now: ~1 KiB each fewer
        reporter = Reporter(reporter_mode(quiet))
        states, interrupted = await run_until_done(engine, ids, reporter, stream)
        result = summary(journal, ids)
        result["out"] = str(out)
        result["empty"] = empty
        # A catalog entry no longer on the server: the rest arrived, this one did not.
        result["missing"] = missing
        result["ok"] = result["ok"] and not missing
        result["replaced"] = [{"id": j, "message": journal.job(j).message} for j in replaced]
        result["interrupted"] = interrupted
        result["ok"] = result["ok"] and not interrupted
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            from xnat_tui.commands._console import summary_line

            for job in result["jobs"]:
                print(summary_line(job, reporter), file=sys.stderr)
            print(f"{result['verified']} verified, {result['failed']} failed", file=sys.stderr)
        if interrupted:
            print(
                "interrupted: complete files are kept, the rest stay *.part; continue with "
                "'xnat-tui transfers resume' or run the same command again",
                file=sys.stderr,
            )
            return 130
        paused = [jid for jid, state in states.items() if state is JobState.PAUSED]
        if paused:  # by 'transfers pause' from another shell, or the TUI
            print(
                f"paused from elsewhere: {' '.join(paused)}; complete files are kept, the "
                f"rest stay *.part; continue with 'xnat-tui transfers resume "
                f"{' '.join(paused)}'",
                file=sys.stderr,
            )
        del states
        return EXIT_OK if result["ok"] else EXIT_FAILED
