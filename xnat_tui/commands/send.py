"""``xnat-tui send PATH... --to AE@HOST:PORT``: send sessions to a DICOM receiver (C-STORE).

Routing (XNAT's ``Project: Subject: Session:`` form, or the site template in Study
Description) is written only into the copies sent, never into the files. Every
acknowledged instance is journalled: ``xnat-tui transfers resume`` sends only the rest.
With a server (``--server``/``--profile``/``--sandbox``) the session is looked up through
REST after the receiver's idle time. Exit codes: 0 every session sent (and verified when
looked up), 1 some refused/failed/interrupted, 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from xnat_tui.commands._args import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    add_connection_arguments,
    path_argument,
)
from xnat_tui.text import safe

if TYPE_CHECKING:
    from xnat_tui.config import Config
    from xnat_tui.workflow.send import SendSettings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "send",
        help="send DICOM sessions under PATHs to a DICOM receiver (C-STORE, resumable)",
        description=(
            "Scan PATHs and send each session over DICOM (C-STORE) to a receiver such as "
            "XNAT's (AE XNAT, port 8104). Routing is written only into the copies sent. "
            "Every acknowledged instance is journalled; see 'xnat-tui transfers'."
        ),
        epilog="Exit codes: 0 all sent (and verified when looked up), 1 failures, 2 usage.",
    )
    parser.add_argument("paths", nargs="+", type=path_argument, metavar="PATH")
    parser.add_argument(
        "--to",
        required=True,
        metavar="AE@HOST:PORT|NAME",
        help="the receiver: AE@HOST:PORT, or the name of a [dicom.NAME] profile",
    )
    parser.add_argument("--calling-ae", metavar="NAME", help="our AE title (default XNAT_TUI)")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--project", metavar="P", help="route every session to project P")
    target.add_argument(
        "--routed",
        action="store_true",
        help="route each session to the project its own DICOM routing names",
    )
    parser.add_argument("--subject", metavar="TEMPLATE", help="subject label template")
    parser.add_argument("--session", metavar="TEMPLATE", help="session label template")
    parser.add_argument(
        "--routing",
        choices=("xnat", "site", "none"),
        help="how routing is written: XNAT's 'Project: Subject: Session:' form (in "
        "PatientComments, the first place XNAT reads), the site template in "
        "StudyDescription, or none (files sent as they are; default from the profile, "
        "else xnat)",
    )
    parser.add_argument(
        "--associations", type=int, metavar="N", help="associations in parallel (default 1)"
    )
    parser.add_argument(
        "--anon",
        choices=("none", "xnat", "basic"),
        help="anonymize each copy before routing is written (xnat needs a server)",
    )
    parser.add_argument(
        "--idle",
        type=float,
        metavar="SECONDS",
        help="the receiver's idle time before the REST look-up (XNAT: 300)",
    )
    parser.add_argument(
        "--no-verify", action="store_true", help="do not look the sessions up through REST"
    )
    parser.add_argument("--journal", type=path_argument, metavar="PATH", help="journal to use")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, send nothing")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    add_connection_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import threading

    from xnat_tui.commands._connect import report_error
    from xnat_tui.dicom.processes import worker_context

    # The scan's worker processes (fork server, resource tracker: two interpreters to
    # start) come up on the other core while this one loads the sender.
    threading.Thread(target=worker_context, name="start-workers", daemon=True).start()

    try:
        return asyncio.run(_main(args))
    except Exception as exc:
        return report_error(exc)


def _usage_problem(args: argparse.Namespace, routing: str) -> str:
    if args.associations is not None and not 1 <= args.associations <= 32:
        return "--associations must be between 1 and 32"
    if args.idle is not None and not args.idle >= 0:
        return "--idle must be a number of seconds >= 0"
    for p in args.paths:
        if not p.exists():
            return f"{p}: no such file or folder"
    if routing != "none" and not (args.project or args.routed):
        return f"--routing {routing} needs --project P or --routed (or use --routing none)"
    if routing == "none" and (args.project or args.routed or args.subject or args.session):
        return "--routing none writes no labels: drop --project/--routed/--subject/--session"
    return ""


def _settings(args: argparse.Namespace, config: Config) -> SendSettings:
    from xnat_tui.transfer.cstore import DicomDestination
    from xnat_tui.workflow.send import SendSettings, settings_from_profile

    overrides: dict[str, Any] = {
        "routing": args.routing,
        "associations": args.associations,
        "anonymization": args.anon,
        "idle_seconds": args.idle,
    }
    profile = config.dicom.get(args.to)
    if profile is not None:
        settings = settings_from_profile(profile, **overrides)
        if args.calling_ae:
            dest = DicomDestination(
                settings.destination.ae,
                settings.destination.host,
                settings.destination.port,
                args.calling_ae,
            )
            settings = settings_from_profile(profile, destination=dest, **overrides)
        return settings
    dest = DicomDestination.parse(args.to, args.calling_ae or "XNAT_TUI")
    return SendSettings(destination=dest, **{k: v for k, v in overrides.items() if v is not None})


def _wants_server(args: argparse.Namespace) -> bool:
    return not args.no_verify and bool(
        getattr(args, "server", None)
        or getattr(args, "profile", None)
        or getattr(args, "sandbox", False)
        or os.environ.get("XNAT_HOST")
    )


@contextlib.asynccontextmanager
async def _maybe_client(args: argparse.Namespace, config: Config) -> AsyncIterator[Any]:
    if not _wants_server(args):
        yield None
        return
    from xnat_tui.commands._connect import open_client

    async with open_client(args, config) as client:
        yield client


async def _main(args: argparse.Namespace) -> int:
    from xnat_tui.commands._console import (
        Reporter,
        confirm,
        reporter_mode,
        run_until_done,
        summary,
    )
    from xnat_tui.commands.upload import _scan
    from xnat_tui.config import ConfigError, load
    from xnat_tui.transfer.anon import AnonymizationRefused, AnonymizerSet
    from xnat_tui.transfer.cstore import scanned_infos
    from xnat_tui.transfer.journal import Journal
    from xnat_tui.transfer.source import from_dicom
    from xnat_tui.workflow.send import engine_for, journal_jobs, plan, preview_lines

    try:
        config = load()
    except ConfigError as exc:
        print(f"error: {safe(exc)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        settings = _settings(args, config)
    except ValueError as exc:
        print(f"error: --to: {safe(exc)}", file=sys.stderr)
        return EXIT_USAGE
    problem = _usage_problem(args, settings.routing)
    if problem:
        print(f"error: {safe(problem)}", file=sys.stderr)
        return EXIT_USAGE
    if settings.anonymization == "xnat" and not _wants_server(args):
        print("error: --anon xnat needs the server's scripts: name a server", file=sys.stderr)
        return EXIT_USAGE
    quiet = bool(args.json)
    sessions = await _scan(list(args.paths), quiet, config.defaults.routing_patterns)
    if not sessions:
        print("error: no DICOM sessions found under the given paths", file=sys.stderr)
        return EXIT_FAILED
    # Burned-in warnings are the upload planner's: a send never reads them.
    sources = [from_dicom(s, burned_in=False) for s in sessions]

    def rules(project: str) -> Any:
        # Imported here: workflow.upload loads the upload engine, which --routing none
        # never needs (~0.1 s of start-up).
        from xnat_tui.workflow.upload import label_rules_for

        return label_rules_for(config, project, subject=args.subject, session=args.session)

    items = plan(sources, settings, rules, project=args.project, routed=args.routed)
    if not quiet:
        for line in preview_lines(items, settings):
            print(safe(line), file=sys.stderr)
    sendable = [it for it in items if it.ok]
    if args.dry_run:
        if args.json:
            print(json.dumps({"dry_run": True, "plan": [i.to_dict() for i in items]}, indent=2))
        return EXIT_OK if len(sendable) == len(items) else EXIT_FAILED
    if not sendable:
        print("error: nothing to send", file=sys.stderr)
        return EXIT_FAILED
    count = sum(it.files for it in sendable)
    question = f"Send {len(sendable)} session(s), {count} instance(s) to {settings.destination}?"
    if not args.yes and not confirm(safe(question)):
        print("not confirmed: nothing sent (use --yes to send without asking)", file=sys.stderr)
        return EXIT_FAILED
    journal = Journal(args.journal)
    async with _maybe_client(args, config) as client:
        anonymizers = AnonymizerSet()
        if settings.anonymization not in ("", "none"):
            for project in sorted({it.project for it in sendable}):
                try:
                    await anonymizers.prepare(
                        client, project, settings.anonymization, settings.anon_options
                    )
                except AnonymizationRefused as exc:
                    print(f"error: {safe(exc)}; nothing was sent", file=sys.stderr)
                    return EXIT_FAILED
        ids = journal_jobs(
            journal,
            sendable,
            settings,
            server=client.server if client is not None else "",
            username=client.username if client is not None else "",
        )
        engine = engine_for(
            journal, client=client, idle_seconds=settings.idle_seconds, anonymizers=anonymizers
        )
        engine.know(scanned_infos(f for s in sessions for f in s.files))
        stream = engine.subscribe()
        await engine.start(resume=False)
        engine.queue(ids)
        reporter = Reporter(reporter_mode(quiet))
        try:
            _states, interrupted = await run_until_done(engine, ids, reporter, stream)
        finally:
            await asyncio.to_thread(anonymizers.close)
    result = summary(journal, ids)
    result["refused"] = [it.to_dict() for it in items if not it.ok]
    result["interrupted"] = interrupted
    result["ok"] = result["ok"] and not result["refused"] and not interrupted
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for job in result["jobs"]:
            print(
                f"{job['id']}  {job['state']:<9} {safe(job['message'])}",
                file=sys.stderr,
            )
    if interrupted:
        print(
            "interrupted: acknowledged instances are journalled; continue with "
            "'xnat-tui transfers resume'",
            file=sys.stderr,
        )
        return 130
    return EXIT_OK if result["ok"] else EXIT_FAILED
