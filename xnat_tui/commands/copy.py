"""``xnat-tui copy --from P --to Q``: copy sessions between projects (and ``move``).

Files stream from the source project to the destination's import service as per-scan
zips, with no local copy, through the upload engine (journal, resume, verification),
then each scan is compared with the source (MD5s, counts, sizes). ``move`` deletes the
source session only after that comparison passed. ``--share`` and ``--change-primary``
use XNAT's own operations instead (links only / the server moves the files).
Exit codes: 0 all done and verified, 1 refused/failed/interrupted, 2 usage error.
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


def register(subparsers: Any) -> None:
    add_parser(subparsers, move=False)


def add_parser(subparsers: Any, *, move: bool) -> None:
    name = "move" if move else "copy"
    what = (
        "copy, verify against the source, then delete the source sessions"
        if move
        else "copy sessions into another project (source kept)"
    )
    parser = subparsers.add_parser(
        name,
        help=what,
        description=(
            f"{what[0].upper()}{what[1:]}. Files stream from the source to the destination's "
            "import service (one zip per scan, nothing written locally), through the same "
            "planner, anonymization, journal, resume and verification as uploads. Label "
            "templates: {routing.subject} and {routing.session} are the source labels; "
            "{PatientID}, {StudyDate}, {Modality}, {n} work as for uploads."
        ),
        epilog="Exit codes: 0 all verified, 1 some refused/failed/interrupted, 2 usage.",
    )
    parser.add_argument("--from", dest="source", required=True, metavar="P", help="source project")
    parser.add_argument("--to", dest="dest", required=True, metavar="Q", help="destination")
    pick = parser.add_mutually_exclusive_group(required=True)
    pick.add_argument("--session", nargs="+", metavar="E", help="session labels or IDs")
    pick.add_argument("--subject", nargs="+", metavar="S", help="every session of subjects")
    pick.add_argument("--all", action="store_true", help="every session of the source project")
    parser.add_argument("--subject-label", metavar="TPL", help="destination subject template")
    parser.add_argument("--session-label", metavar="TPL", help="destination session template")
    parser.add_argument(
        "--map",
        type=path_argument,
        metavar="FILE.csv",
        help="labels from a CSV with columns source, subject, session",
    )
    parser.add_argument(
        "--dest",
        dest="where",
        choices=("prearchive", "archive"),
        help="where the copies go (default: [copy] destination, else [defaults] destination)",
    )
    parser.add_argument(
        "--anon",
        choices=("none", "xnat", "basic"),
        help="anonymize the copies here (default: [copy] anonymization, else none)",
    )
    native = parser.add_mutually_exclusive_group()
    if not move:
        native.add_argument(
            "--share",
            action="store_true",
            help="XNAT's share: links only, nothing copied (subject shared first, labels given)",
        )
    native.add_argument(
        "--change-primary",
        action="store_true",
        help="XNAT's change of primary project: the server moves the files (needs delete "
        "rights on the source; destination labels are checked first)",
    )
    parser.add_argument(
        "--via-disk",
        type=path_argument,
        metavar="DIR",
        help="also keep a local copy of every file copied, under DIR",
    )
    parser.add_argument("--jobs", type=int, metavar="N", help="scans sent at once (default 4)")
    parser.add_argument("--journal", type=path_argument, metavar="PATH")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, copy nothing")
    parser.add_argument(
        "--yes",
        action="store_true",
        help="do not ask for confirmation" + (" (a move requires it)" if move else ""),
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    add_connection_arguments(parser)
    parser.set_defaults(func=run, move=move)
    if move:
        parser.set_defaults(share=False)


def run(args: argparse.Namespace) -> int:
    from xnat_tui.commands._connect import report_error

    problem = _usage_problem(args)
    if problem:
        print(f"error: {safe(problem)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return asyncio.run(_main(args))
    except Exception as exc:
        return report_error(exc)


def _usage_problem(args: argparse.Namespace) -> str:
    from xnat_tui.workflow.templates import TemplateError, template_fields

    if args.jobs is not None and not 1 <= args.jobs <= 32:
        return "--jobs must be between 1 and 32"
    if args.map is not None and (args.subject_label or args.session_label):
        return "--map gives the labels: leave out --subject-label/--session-label"
    if args.map is not None and not Path(args.map).is_file():
        return f"{args.map}: no such file"
    for flag in ("subject_label", "session_label"):
        value = getattr(args, flag)
        if value is not None:
            try:
                template_fields(value)
            except TemplateError as exc:
                return f"--{flag.replace('_', '-')}: {exc}"
    if args.source == args.dest:
        return "--from and --to name the same project"
    if args.move and not args.yes and not args.dry_run:
        return "a move deletes the source sessions: add --yes to confirm (or --dry-run)"
    return ""


async def _main(args: argparse.Namespace) -> int:
    from xnat_tui.commands._connect import open_client
    from xnat_tui.commands._console import (
        Reporter,
        confirm,
        keep_running_on_hangup,
        plan_lines,
        reporter_mode,
        run_until_done,
        summary,
        summary_line,
    )
    from xnat_tui.config import ConfigError, load
    from xnat_tui.transfer.journal import Journal
    from xnat_tui.transfer.types import Destination
    from xnat_tui.workflow import copy as copying
    from xnat_tui.workflow.login import connection_for

    keep_running_on_hangup()
    try:
        config = load()
    except ConfigError as exc:
        print(f"error: {safe(exc)}", file=sys.stderr)
        return EXIT_USAGE
    quiet = bool(args.json)
    settings = copying.settings_for(
        config,
        destination=Destination(args.where) if args.where else None,
        anonymization=args.anon,
        concurrency=args.jobs,
        via_disk=Path(args.via_disk) if args.via_disk else None,
    )

    def say(line: str) -> None:
        if not quiet:
            print(line, file=sys.stderr)

    async with open_client(args, config) as client:
        session = copying.CopySession(
            connection_for(client, url=client.server, owned=False),
            Journal(Path(args.journal) if args.journal else None),
            settings=settings,
        )
        move = bool(args.move or args.change_primary)
        refusal = await session.check_permissions(
            args.source, args.dest, move=move, create_subjects=not args.share
        )
        if refusal:
            print(f"error: {safe(refusal)}; nothing was copied", file=sys.stderr)
            return EXIT_FAILED
        try:
            sources = await session.sources(
                args.source,
                sessions=args.session or (),
                subjects=args.subject or (),
                everything=args.all,
            )
            mapping = copying.read_map(Path(args.map)) if args.map else None
        except copying.CopyError as exc:
            print(f"error: {safe(exc)}", file=sys.stderr)
            return EXIT_USAGE
        if not sources:
            print(f"error: no session selected in {safe(args.source)}", file=sys.stderr)
            return EXIT_FAILED
        if args.move:
            refusal = await session.shared_refusal(
                args.source, [(s.experiment.id, s.label) for s in sources]
            )
            if refusal:
                print(f"error: {safe(refusal)}; nothing was moved", file=sys.stderr)
                return EXIT_FAILED
        targets = session.targets(
            sources,
            subject_template=args.subject_label or config.copy.subject_pattern,
            session_template=args.session_label or config.copy.session_pattern,
            mapping=mapping,
        )
        if args.share or args.change_primary:
            return await _native(args, client, sources, targets, say)
        requests = session.requests(
            sources,
            targets,
            args.dest,
            move=bool(args.move),
            rewritten_on_arrival=await session.rewritten_on_arrival(args.dest),
        )
        plan = await session.plan(requests)
        notes = await session.differences(args.source, args.dest)
        for line in plan_lines(plan):
            say(line)
        for note in notes:
            say(f"note: {safe(note)}")
        if args.dry_run:
            if args.json:
                out = {"dry_run": True, "plan": plan.to_dict(), "differences": notes}
                print(json.dumps(out, indent=2))
            return EXIT_OK if plan.ok else EXIT_FAILED
        if not plan.sendable:
            if args.json:
                print(json.dumps({"plan": plan.to_dict(), "ok": False, "jobs": []}, indent=2))
            print("error: nothing to copy", file=sys.stderr)
            return EXIT_FAILED
        if not args.yes and not confirm(f"Copy {len(plan.sendable)} session(s)?"):
            print("not confirmed: nothing copied (use --yes)", file=sys.stderr)
            return EXIT_FAILED
        resumed = await session.start()
        try:
            ids = await session.submit(plan)
        except copying.CopyError as exc:
            await session.close()
            print(f"error: {safe(exc)}", file=sys.stderr)
            return EXIT_FAILED
        engine = session.engine
        assert engine is not None
        reporter = Reporter(reporter_mode(quiet))
        stream = engine.subscribe()
        try:
            states, interrupted = await run_until_done(engine, ids + resumed, reporter, stream)
        finally:
            await session.close()
        result = summary(session.journal, ids + resumed)
        result["refused"] = [j.to_dict() for j in plan.jobs if not j.ok]
        result["differences"] = notes
        result["interrupted"] = interrupted
        result["ok"] = result["ok"] and not result["refused"] and not interrupted
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            for job in result["jobs"]:
                print(summary_line(job, reporter), file=sys.stderr)
        if interrupted:
            print(
                "interrupted: the journal is consistent; continue with 'xnat-tui transfers resume'",
                file=sys.stderr,
            )
            return 130
        return EXIT_OK if result["ok"] else EXIT_FAILED


async def _native(
    args: argparse.Namespace, client: Any, sources: Any, targets: Any, say: Any
) -> int:
    from xnat_tui.commands._console import confirm
    from xnat_tui.workflow import copy as copying

    bad = [t for t in targets if isinstance(t, str)]
    if bad:
        print(f"error: {safe(bad[0])}", file=sys.stderr)
        return EXIT_USAGE
    experiments = [s.experiment for s in sources]
    what = "share" if args.share else "change the primary project of"
    for s, t in zip(sources, targets, strict=True):
        where = f"{safe(args.dest)}/{safe(t.subject)}/{safe(t.label)}"
        say(f"{safe(s.subject)}/{safe(s.label)} -> {where}")
    if args.dry_run:
        if args.json:
            print(json.dumps({"dry_run": True, "sessions": len(experiments)}))
        return EXIT_OK
    if not args.yes and not confirm(f"{what} {len(experiments)} session(s)?"):
        print("not confirmed: nothing changed (use --yes)", file=sys.stderr)
        return EXIT_FAILED
    try:
        if args.share:
            lines = await copying.share(client, experiments, args.dest, targets)
        else:
            lines = await copying.change_primary(client, experiments, args.dest, targets)
    except copying.CopyError as exc:
        print(f"error: {safe(exc)}", file=sys.stderr)
        return EXIT_FAILED
    ok = not any("not shared" in line for line in lines)
    if args.json:
        print(json.dumps({"ok": ok, "lines": lines}, indent=2))
    else:
        for line in lines:
            print(safe(line), file=sys.stderr)
    return EXIT_OK if ok else EXIT_FAILED
