"""``xnat-tui upload PATH... --project P | --routed``: scan, plan, send, commit and verify.

The same engine as the TUI, sharing its journal: an upload interrupted by Ctrl-C, a
lost SSH connection or ``kill -9`` continues with ``xnat-tui transfers resume``.
Exit codes: 0 every session verified, 1 some session refused, failed or interrupted,
2 usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xnat_tui.commands._args import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    UPLOAD_VARIABLES,
    add_connection_arguments,
    bandwidth_argument,
    parse_variables,
    path_argument,
    shard_argument,
)
from xnat_tui.text import safe

if TYPE_CHECKING:
    from xnat_tui.commands._console import Reporter
    from xnat_tui.dicom.routing import PatternLike


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "upload",
        help="upload DICOM sessions found under PATHs to a project (resumable)",
        description=(
            "Scan PATHs for DICOM sessions, check each against the project (labels, "
            "permissions, existing sessions, import filters), then send each series as one "
            "streamed zip, commit and verify. Every step is journalled; see 'xnat-tui "
            "transfers'. Labels are templates over DICOM keywords: {PatientID}, "
            "{PatientName}, {StudyDate}, {AccessionNumber}, {Modality}, ..., routing "
            "proposals {routing.subject}, the chosen {subject}, and a counter {n}."
        ),
        epilog="Exit codes: 0 all sessions verified, 1 some refused/failed/interrupted, 2 usage.",
    )
    parser.add_argument("paths", nargs="+", type=path_argument, metavar="PATH")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--project", metavar="P", help="target project ID")
    target.add_argument(
        "--routed",
        action="store_true",
        help="send each session to the project its DICOM routing names (XNAT's "
        "'Project:' assignment or a site routing pattern); sessions without routing are "
        "refused, by name",
    )
    parser.add_argument(
        "--subject", metavar="TEMPLATE", help="subject label template (default from config)"
    )
    parser.add_argument(
        "--session", metavar="TEMPLATE", help="session label template (default from config)"
    )
    parser.add_argument(
        "--dest",
        choices=("project", "prearchive", "archive"),
        help="where sessions end up (project: the project's prearchive setting)",
    )
    parser.add_argument(
        "--overwrite",
        choices=("none", "append", "delete"),
        help="existing session with the same label: refuse (none), merge (append), replace",
    )
    parser.add_argument(
        "--anon",
        choices=("none", "xnat", "basic"),
        help="anonymize before sending: none, the server's scripts (xnat), DICOM Basic Profile",
    )
    for name, what in (
        ("dates", "dates and times"),
        ("uids", "UIDs"),
        ("device", "device identity (serial numbers, station names)"),
    ):
        parser.add_argument(
            f"--retain-{name}",
            action="store_true",
            help=f"basic profile: keep {what} instead of removing or replacing them",
        )
    parser.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a value for a variable the anonymization script asks for (repeatable)",
    )
    parser.add_argument(
        "--include-burned-in",
        action="store_true",
        help="basic profile: also send series that may carry text burned into the pixels",
    )
    parser.add_argument("--jobs", type=int, metavar="N", help="series sent at once (default 4)")
    parser.add_argument(
        "--bandwidth",
        type=bandwidth_argument,
        metavar="MBPS",
        help="cap the upload rate, in megabit/s (0: unlimited, else at least 0.1)",
    )
    parser.add_argument(
        "--deflate",
        action="store_true",
        help="compress entries (zip deflate level 1): helps on links slower than ~500 Mbit/s",
    )
    parser.add_argument(
        "--shard",
        type=shard_argument,
        metavar="I/N",
        help="only the sessions whose StudyInstanceUID hashes to shard I of N (0 <= I < N): "
        "N nodes of a job array upload one tree, no session twice",
    )
    parser.add_argument(
        "--journal",
        type=path_argument,
        metavar="PATH",
        help="the transfer journal to use (default: the state folder's; with --shard, "
        "journal-shard-I-of-N.sqlite3 there, so each node of a job array has its own)",
    )
    parser.add_argument(
        "--as-is",
        action="store_true",
        help="send each archive PATH (.zip, .tar, .tar.gz/.tgz, one whole session each) as "
        "it is to XNAT's import service, as the Compressed Uploader does (DICOM-zip, "
        "Ignore-Unparsable); archives XNAT would not read are refused with the reason",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan, send nothing")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    add_connection_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from xnat_tui.commands._connect import report_error

    problem = _usage_problem(args)
    if problem:
        print(f"error: {safe(problem)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return asyncio.run(_main(args))
    except Exception as exc:  # typed XNAT errors get their hint printed
        return report_error(exc)


def _usage_problem(args: argparse.Namespace) -> str:
    from xnat_tui.workflow.templates import TemplateError, template_fields

    if args.jobs is not None and not 1 <= args.jobs <= 32:
        return "--jobs must be between 1 and 32"
    try:
        args.variables = parse_variables(args.var, reserved=UPLOAD_VARIABLES)
    except ValueError as exc:
        return str(exc)
    for p in args.paths:
        if not p.exists():
            return f"{p}: no such file or folder"
    for flag in ("subject", "session"):
        value = getattr(args, flag)
        if value is not None:
            try:
                template_fields(value)
            except TemplateError as exc:
                return f"--{flag}: {exc}"
    return ""


def journal_path(args: argparse.Namespace) -> Path | None:
    """``--journal``, else (with ``--shard``) one journal per shard, else the default."""
    from xnat_tui.config import state_dir

    if args.journal is not None:
        return Path(args.journal)
    if args.shard is not None:
        return state_dir() / f"journal-shard-{args.shard.index}-of-{args.shard.count}.sqlite3"
    return None


async def _scan(
    paths: list[Path], quiet: bool, routing_patterns: Sequence[PatternLike]
) -> list[Any]:
    from xnat_tui.dicom.scan import scan_all

    summary = await asyncio.to_thread(scan_all, paths, routing_patterns=routing_patterns)
    if not quiet:
        problems = len(summary.all_problems)
        print(
            f"scanned: {len(summary.sessions)} session(s), "
            f"{sum(s.file_count for s in summary.sessions)} DICOM files"
            + (f", {problems} problem(s) (see 'xnat-tui scan')" if problems else ""),
            file=sys.stderr,
        )
    return list(summary.sessions)


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
    )
    from xnat_tui.config import ConfigError, load
    from xnat_tui.transfer import as_is
    from xnat_tui.transfer.journal import Journal
    from xnat_tui.transfer.source import from_dicom
    from xnat_tui.transfer.types import AnonOptions, Compression, Destination, Overwrite
    from xnat_tui.workflow.login import connection_for
    from xnat_tui.workflow.targets import LabelRules, routed_project
    from xnat_tui.workflow.upload import (
        Anonymization,
        UploadSession,
        UploadSettings,
        label_rules_for,
    )

    keep_running_on_hangup()
    try:
        config = load()
    except ConfigError as exc:
        print(f"error: {safe(exc)}", file=sys.stderr)
        return EXIT_USAGE
    d = config.defaults

    def rules(project: str) -> LabelRules:
        """The project's templates (for --routed, each target project's own)."""
        return label_rules_for(config, project, subject=args.subject, session=args.session)

    settings = UploadSettings(
        destination=Destination(args.dest or d.destination),
        overwrite=Overwrite(args.overwrite or d.overwrite),
        concurrency=args.jobs or d.concurrency,
        bandwidth_limit_mbps=args.bandwidth
        if args.bandwidth is not None
        else d.bandwidth_limit_mbps,
        compression=Compression.DEFLATE if args.deflate else Compression.STORED,
        include_burned_in=True if args.include_burned_in else None,
    )
    options = AnonOptions(
        retain_dates=args.retain_dates,
        retain_uids=args.retain_uids,
        retain_device=args.retain_device,
    )
    server_profile = config.profile(getattr(args, "profile", None))

    def anonymization(project: str) -> Anonymization:
        profile = args.anon or config.anonymization_for(server_profile, project)
        return Anonymization(profile, options, dict(args.variables))

    if options.key() and args.anon != "basic":
        print(
            "error: --retain-dates/--retain-uids/--retain-device need --anon basic",
            file=sys.stderr,
        )
        return EXIT_USAGE
    quiet = bool(args.json)
    if args.as_is:
        if args.anon == "basic":
            print(
                "error: --as-is sends the archive unchanged: it cannot be anonymized here "
                "(--anon basic); upload it without --as-is (streamed, anonymized)",
                file=sys.stderr,
            )
            return EXIT_USAGE
        # Names XNAT would refuse are refused before anything is read.
        problems = as_is.name_problems([str(p) for p in args.paths])
        if problems:
            return _refuse_as_is(problems)

    sessions = await _scan(list(args.paths), quiet, d.routing_patterns)
    if not sessions:
        print("error: no DICOM sessions found under the given paths", file=sys.stderr)
        return EXIT_FAILED
    if args.shard is not None:
        found = len(sessions)
        sessions = args.shard.select(sessions, lambda s: s.study_instance_uid)
        if not quiet:
            print(f"shard {args.shard}: {len(sessions)} of {found} session(s)", file=sys.stderr)
        if not sessions:
            if args.json:
                print(json.dumps({"shard": str(args.shard), "ok": True, "jobs": []}))
            return EXIT_OK
    sources = [from_dicom(s) for s in sessions]
    archive_of: dict[int, str] = {}
    if args.as_is:
        pairs, problems = as_is.pair_sessions([str(p) for p in args.paths], sources)
        if problems:
            return _refuse_as_is(problems)
        sources = list(pairs.values())
        archive_of = {id(s): a for a, s in pairs.items()}
    projects = {args.project} if args.project else {routed_project(s) for s in sources} - {""}

    async with open_client(args, config) as client:
        uploads = UploadSession(
            connection_for(client, url=client.server, owned=False),
            Journal(journal_path(args)),
            settings=settings,
            anon_default=anonymization,
        )
        # Scripts are fetched and checked before planning: a script that cannot run
        # here refuses the upload (the plan says why), nothing is ever sent.
        refused = await uploads.prepare_anonymization(projects)
        for project in sorted(projects):
            missing = uploads.script_variables_missing(project)
            if missing:
                for r in missing:
                    # Names and descriptions come from the server's script: data.
                    hint = f"   ({safe(r.description)})" if r.description else ""
                    print(f"error: --var {safe(r.name)}=... is required{hint}", file=sys.stderr)
                print(
                    f"error: the anonymization script of project {safe(project)} needs "
                    f"{safe(', '.join(r.name for r in missing))}; nothing was sent",
                    file=sys.stderr,
                )
                return EXIT_USAGE
        requests = await uploads.requests_for(sources, rules, project=args.project)
        for req in requests:
            if id(req.session) in archive_of and req.anonymization == "basic":
                return _refuse_as_is(
                    [
                        f"project {req.project} is anonymized with the Basic Profile here "
                        "(config); --as-is sends the archive unchanged: upload it without "
                        "--as-is (streamed, anonymized)"
                    ]
                )
            if id(req.session) in archive_of:
                req.params = {**req.params, as_is.PARAM: archive_of[id(req.session)]}
                # The server runs its own scripts on what it imports (prevent_anon is not
                # sent); nothing is anonymized here.
                req.anonymization = "none"
        plan = await uploads.plan(requests)
        if not quiet:
            for line in plan_lines(plan):
                print(line, file=sys.stderr)
        if args.dry_run:
            if args.json:
                print(json.dumps({"dry_run": True, "plan": plan.to_dict()}, indent=2))
            return EXIT_OK if plan.ok else EXIT_FAILED
        if refused:
            print(f"error: {safe(refused)}", file=sys.stderr)
        if not plan.sendable or refused:
            if args.json:
                print(json.dumps({"plan": plan.to_dict(), "ok": False, "jobs": []}, indent=2))
            print("error: nothing to send", file=sys.stderr)
            return EXIT_FAILED
        if not args.yes and not confirm(f"Upload {len(plan.sendable)} session(s)?"):
            print(
                "not confirmed: nothing sent (use --yes to upload without asking)",
                file=sys.stderr,
            )
            return EXIT_FAILED
        resumed = await uploads.start()
        if resumed and not quiet:
            print(f"also resuming unfinished transfer(s): {' '.join(resumed)}", file=sys.stderr)
        ids = list((await uploads.submit(plan)).values())
        reporter = Reporter(reporter_mode(quiet))
        engine = uploads.engine
        assert engine is not None  # started above
        try:
            states, interrupted = await run_until_done(
                engine, ids + resumed, reporter, uploads.stream
            )
        finally:
            await asyncio.to_thread(uploads.anonymizers.close)
        result = summary(uploads.journal, ids + resumed)
        result["refused"] = [j.to_dict() for j in plan.jobs if not j.ok]
        result["interrupted"] = interrupted
        result["ok"] = result["ok"] and not result["refused"] and not interrupted
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            _print_summary(result, reporter)
        if interrupted:
            print(
                "interrupted: the journal is consistent; continue with 'xnat-tui transfers resume'",
                file=sys.stderr,
            )
            return 130
        return EXIT_OK if result["ok"] else EXIT_FAILED


def _refuse_as_is(problems: list[str]) -> int:
    for problem in problems:
        print(f"error: {safe(problem)}", file=sys.stderr)
    print("error: --as-is refused; nothing was sent", file=sys.stderr)
    return EXIT_FAILED


def _print_summary(result: dict[str, Any], reporter: Reporter) -> None:
    from xnat_tui.commands._console import summary_line

    for job in result["jobs"]:
        print(summary_line(job, reporter), file=sys.stderr)
    refused = len(result["refused"])
    print(
        f"{result['verified']} verified, {result['failed']} failed"
        + (f", {refused} refused by the plan" if refused else ""),
        file=sys.stderr,
    )
