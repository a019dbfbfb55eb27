"""``xnat-tui transfers list|show|resume|pause|cancel|retry [ID]``: the transfer journal.

Every workflow's jobs are here: uploads, DICOM sends, downloads, copies and moves;
``resume`` and ``retry`` run each job with the engine of its kind.

The journal is shared with the TUI and with other ``xnat-tui upload`` processes.
``pause``/``cancel`` of a job another process is running are passed to that process
through the journal (it stops within a second). ``resume`` and ``retry`` need a
connection: the job's server and user are used unless flags say otherwise.
Failed jobs stay in ``list`` (with the ``retry`` to run) until retried or cancelled,
and ``resume`` names them (it does not retry them: that is the user's decision).
Exit codes: 0 done (every resumed job verified), 1 something failed (or failed jobs
wait for a retry), 2 usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xnat_tui.commands._args import EXIT_FAILED, EXIT_OK, EXIT_USAGE, add_connection_arguments
from xnat_tui.text import safe

if TYPE_CHECKING:
    from xnat_tui.transfer.anon import AnonymizerSet
    from xnat_tui.transfer.events import EventStream
    from xnat_tui.transfer.journal import JobRecord, Journal
    from xnat_tui.workflow.jobs import JobRouter


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "transfers",
        help="list, inspect, resume, pause, cancel or retry transfers (the journal)",
        description="Manage the jobs recorded in the transfer journal: uploads, DICOM "
        "sends, downloads, copies and moves.",
        epilog="Exit codes: 0 ok, 1 a job failed or was not found, 2 usage error.",
    )
    sub = parser.add_subparsers(dest="transfers_command", metavar="ACTION", required=True)
    helps = {
        "list": "list jobs (unfinished first)",
        "show": "show one job: series, steps, receipt",
        "resume": "continue unfinished and paused jobs (all, or ID)",
        "pause": "pause running jobs (all, or ID)",
        "cancel": "cancel jobs (all unfinished, or ID)",
        "retry": "send failed jobs again (all, or ID); acknowledged series are not re-sent",
    }
    for name, text in helps.items():
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument(
            "id", nargs="?" if name != "show" else None, metavar="ID", help="job id (or prefix)"
        )
        if name == "list":
            p.add_argument("--all", action="store_true", help="include finished jobs")
        if name in ("cancel", "retry", "resume"):
            p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        p.add_argument("--json", action="store_true", help="JSON output on stdout")
        p.add_argument(
            "--journal",
            action="append",
            type=Path,
            metavar="PATH",
            help="the journal to read (default: the state folder's); 'list' takes several, "
            "e.g. the per-shard journals of a job array",
        )
        if name == "retry":
            p.add_argument(
                "--skip-missing",
                action="store_true",
                help="send the sessions without source files that have vanished since the scan",
            )
        if name in ("resume", "retry"):
            p.add_argument("--jobs", type=int, metavar="N", help="series sent at once")
            add_connection_arguments(p)
        p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from xnat_tui.commands._connect import report_error
    from xnat_tui.transfer.journal import Journal, JournalError

    paths: list[Path] = args.journal or []
    if len(paths) > 1 and args.transfers_command != "list":
        print(
            f"error: 'transfers {args.transfers_command}' works on one journal; "
            "give --journal once",
            file=sys.stderr,
        )
        return EXIT_USAGE
    missing = [p for p in paths if not p.is_file()]
    if missing:
        print(f"error: {safe(str(missing[0]))}: no such journal", file=sys.stderr)
        return EXIT_USAGE
    if len(paths) > 1:
        return _list_journals(paths, args)
    journal = Journal(paths[0] if paths else None)
    try:
        command = args.transfers_command
        if command == "list":
            return _list(journal, args)
        if command == "show":
            return _show(journal, args)
        if command in ("pause", "cancel"):
            return _control(journal, args)
        return asyncio.run(_run_engine(journal, args))
    except JournalError as exc:
        print(f"error: {safe(str(exc))}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:  # typed XNAT errors get their hint printed
        return report_error(exc)
    finally:
        journal.close()


def _list(journal: Journal, args: argparse.Namespace) -> int:
    from xnat_tui.commands._console import job_dict, job_line
    from xnat_tui.transfer.types import JobState

    jobs = journal.jobs()
    if not args.all:
        # Failed jobs stay in view until retried or cancelled: they wait for the user.
        jobs = [j for j in jobs if _needs_attention(j)]
    jobs.sort(key=lambda j: (j.state.finished, j.created))
    if args.json:
        print(json.dumps([job_dict(j, journal.series(j.id)) for j in jobs], indent=2))
        return EXIT_OK
    if not jobs:
        print("no transfers" + ("" if args.all else " in progress (--all shows finished ones)"))
        return EXIT_OK
    for j in jobs:
        print(job_line(j, journal.series(j.id)))
    failed = [j for j in jobs if j.state is JobState.FAILED]
    if failed:
        print(_failed_hint(failed))
    return EXIT_OK


def _list_journals(paths: list[Path], args: argparse.Namespace) -> int:
    """``list`` over several journals (a job array's shards): one section each."""
    from xnat_tui.commands._console import job_dict, job_line
    from xnat_tui.transfer.journal import Journal
    from xnat_tui.transfer.types import JobState

    out: list[dict[str, Any]] = []
    failed: list[JobRecord] = []
    for path in paths:
        journal = Journal(path)
        try:
            jobs = journal.jobs()
            if not args.all:
                jobs = [j for j in jobs if _needs_attention(j)]
            jobs.sort(key=lambda j: (j.state.finished, j.created))
            failed += [j for j in jobs if j.state is JobState.FAILED]
            if args.json:
                out += [{**job_dict(j, journal.series(j.id)), "journal": str(path)} for j in jobs]
            else:
                print(f"{safe(str(path))}: {len(jobs)} job(s)")
                for j in jobs:
                    print("  " + job_line(j, journal.series(j.id)))
        finally:
            journal.close()
    if args.json:
        print(json.dumps(out, indent=2))
    elif failed:
        print(_failed_hint(failed) + " (add --journal PATH of its node)")
    return EXIT_OK


def _needs_attention(job: JobRecord) -> bool:
    """Unfinished, or failed (a failed job is finished for the engine, not for the user)."""
    from xnat_tui.transfer.types import JobState

    return not job.state.finished or job.state is JobState.FAILED


def _failed_hint(failed: list[JobRecord]) -> str:
    """'N failed: run xnat-tui transfers retry ID' (all of them: no ID)."""
    if len(failed) == 1:
        jid = failed[0].id
        return (
            f"1 failed: run xnat-tui transfers retry {jid} "
            f"('xnat-tui transfers show {jid}' says why)"
        )
    ids = ", ".join(j.id for j in failed[:5]) + (", ..." if len(failed) > 5 else "")
    return (
        f"{len(failed)} failed ({ids}): run xnat-tui transfers retry ID, or "
        "xnat-tui transfers retry for all of them ('xnat-tui transfers show ID' says why)"
    )


def _show(journal: Journal, args: argparse.Namespace) -> int:
    from xnat_tui.commands._console import job_dict
    from xnat_tui.transfer.kinds import JobKind
    from xnat_tui.units import human_bytes

    job = journal.resolve(args.id)
    series = journal.series(job.id)
    data = job_dict(job, series)
    holder = journal.holder(job.id)
    data["running_in"] = holder
    if args.json:
        data["steps"] = [
            {
                "ts": s.ts,
                "series": s.series_uid,
                "step": s.step,
                "phase": s.phase,
                "detail": s.detail,
            }
            for s in journal.steps(job.id)
        ]
        print(json.dumps(data, indent=2))
        return EXIT_OK
    word = job.kind.word  # a download's states are its own ('receiving', 'received')
    running = f", running in {holder}" if holder else ""
    print(f"job        {job.id}  ({word(job.state.value)}{running})")
    if job.kind is JobKind.DOWNLOAD:
        print(f"source     {safe(job.server)} {safe(job.display)}  as {safe(job.username)}")
        print(f"into       {safe(str(job.params.get('out', '')))}")
    else:
        print(f"target     {safe(job.server)} {safe(job.display)}  as {safe(job.username)}")
        print(f"study      {safe(job.study_uid)}")
        print(f"source     {safe(job.source_root)}")
        anon = job.anonymization
        opts = job.anon_options.for_profile(anon).key()
        if opts:
            anon += f" (retain {opts})"
        if job.anon_variables:
            pairs = sorted(job.anon_variables.items())
            anon += " vars " + " ".join(f"{k}={v}" for k, v in pairs)
        print(f"options    dest={job.destination} overwrite={job.overwrite} anon={anon}")
        if job.prearchive_uri:
            print(f"prearchive {safe(job.prearchive_uri)}")
        if job.result_uri:
            where = "archived" if job.archived else "prearchive"
            print(f"result     {safe(job.result_uri)} ({where})")
    if job.message:
        print(f"message    {safe(job.message)}")
    if job.receipt:
        print(f"receipt    {safe(job.receipt)}")
    for s in series:
        num = s.number if s.number is not None else "?"
        msg = f"  {safe(s.message)}" if s.message else ""
        print(  # the description is the series' (or the server's scan type): data
            f"  series {num!s:>4} {word(s.state.value):<8} {s.file_count:>5} files "
            f"{human_bytes(s.bytes):>9}  attempts {s.attempts}  {safe(s.description)}{msg}"
        )
    return EXIT_OK


def _targets(journal: Journal, ident: str | None, states: set[str]) -> list[JobRecord]:
    if ident:
        return [journal.resolve(ident)]
    return [j for j in journal.jobs() if j.state.value in states]


def _control(journal: Journal, args: argparse.Namespace) -> int:
    from xnat_tui.transfer.types import JobState

    action = args.transfers_command
    wanted = {"queued", "sending", "committing", "verifying"}
    if action == "cancel":
        wanted.add("paused")
        wanted.add("failed")
    jobs = _targets(journal, args.id, wanted)
    if not jobs:
        print(f"nothing to {action}", file=sys.stderr)
        return EXIT_OK
    if action == "cancel" and not getattr(args, "yes", False):
        names = ", ".join(f"{j.id} {j.display}" for j in jobs)
        if not sys.stdin.isatty():
            print("error: cancel needs --yes when not on a terminal", file=sys.stderr)
            return EXIT_USAGE
        answer = input(f"Cancel {names}? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            return EXIT_FAILED
    done: list[dict[str, str]] = []
    for job in jobs:
        if job.state.finished and not (action == "cancel" and job.state is JobState.FAILED):
            done.append({"id": job.id, "result": f"already {job.state.value}"})
            continue
        if journal.holder(job.id):
            journal.request(job.id, action)
            done.append({"id": job.id, "result": f"{action} requested from the running process"})
        else:
            state = JobState.PAUSED if action == "pause" else JobState.CANCELLED
            journal.set_state(
                job.id, state, "paused" if action == "pause" else "cancelled by the user"
            )
            done.append({"id": job.id, "result": state.value})
    if args.json:
        print(json.dumps(done, indent=2))
    else:
        for d in done:
            print(f"{d['id']}  {d['result']}")
    return EXIT_OK


async def _run_engine(journal: Journal, args: argparse.Namespace) -> int:
    from xnat_tui.commands._connect import open_client
    from xnat_tui.commands._console import (
        keep_running_on_hangup,
    )
    from xnat_tui.config import load
    from xnat_tui.transfer import TransferEngine
    from xnat_tui.transfer.anon import AnonymizerSet
    from xnat_tui.transfer.kinds import JobKind
    from xnat_tui.transfer.types import JobState
    from xnat_tui.transfer.xnat_port import XnatPort
    from xnat_tui.workflow.jobs import JobRouter
    from xnat_tui.workflow.login import connection_for
    from xnat_tui.workflow.send import is_offline_send, offline_engine

    keep_running_on_hangup()
    action = args.transfers_command
    if action == "resume":
        wanted = {"queued", "sending", "committing", "verifying", "paused"}
    else:
        wanted = {"failed"}
    jobs = _targets(journal, args.id, wanted)
    if args.id and jobs and jobs[0].state.value not in wanted:
        job = jobs[0]
        hint = (
            f": run xnat-tui transfers retry {job.id}"
            if action == "resume" and job.state is JobState.FAILED
            else ""
        )
        print(f"job {job.id} is {job.state.value}; nothing to {action}{hint}", file=sys.stderr)
        return EXIT_OK if job.state is JobState.VERIFIED else EXIT_FAILED
    # A failed job is not resumed (it needs a retry, the user's decision): say so, or
    # 'nothing to resume' would hide it.
    failed = journal.jobs(states=[JobState.FAILED]) if action == "resume" and not args.id else []
    if failed and jobs and not args.json:
        print(_failed_hint(failed), file=sys.stderr)
    if not jobs:
        if args.json:
            print(
                json.dumps(
                    {
                        "ok": not failed,
                        "jobs": [],
                        "failed": [j.id for j in failed],
                        "next": [f"xnat-tui transfers retry {j.id}" for j in failed],
                    }
                )
            )
        else:
            hint = f"; {_failed_hint(failed)}" if failed else ""
            print(f"nothing to {action}{hint}", file=sys.stderr)
        return EXIT_FAILED if failed else EXIT_OK
    config = load()
    if all(is_offline_send(j) for j in jobs):
        # Sends to a bare DICOM receiver (no REST server named): nothing to log in to.
        engine = JobRouter(journal)
        stream = engine.subscribe()
        engine.attach([JobKind.SEND], offline_engine(journal, config))
        return await _drive(journal, args, jobs, failed, engine, stream, AnonymizerSet())
    jobs = [j for j in jobs if not is_offline_send(j)]
    servers = {(j.server, j.username) for j in jobs}
    if len(servers) > 1 and not getattr(args, "server", None):
        print(
            "error: these jobs go to several servers; give an ID or --server",
            file=sys.stderr,
        )
        return EXIT_USAGE
    server, user = next(iter(servers))
    if not getattr(args, "server", None):
        args.server = server
        if not getattr(args, "user", None):
            args.user = user
    async with open_client(args, config) as client:
        port = XnatPort(client)
        jobs = [j for j in jobs if j.server == port.server_url]
        anons = AnonymizerSet()
        for j in jobs:
            if j.kind is not JobKind.UPLOAD:
                continue
            try:
                await anons.prepare_job(client, j)
            except Exception as exc:  # AnonymizationRefused, or the scripts could not be fetched
                # The job's series then fail before sending (transform_for refuses too).
                print(f"error: {j.id}: {safe(exc)}", file=sys.stderr)
        uploads = TransferEngine(
            port,
            journal,
            concurrency=args.jobs or config.defaults.concurrency,
            bandwidth_limit_mbps=config.defaults.bandwidth_limit_mbps,
            transform_for=anons.transform_for,
        )
        # Every kind's engine behind one router: the reporter and the waits see one engine.
        engine = JobRouter(journal)
        stream = engine.subscribe()
        engine.attach([JobKind.UPLOAD], uploads)
        connection = connection_for(client, url=port.server_url, owned=False)
        for kind in dict.fromkeys(j.kind for j in jobs if j.kind is not JobKind.UPLOAD):
            # Started without resuming: the code below adopts the jobs it was asked for.
            await engine.ensure(kind, connection, config, resume=False)
        return await _drive(journal, args, jobs, failed, engine, stream, anons)


async def _drive(
    journal: Journal,
    args: argparse.Namespace,
    jobs: list[JobRecord],
    failed: list[JobRecord],
    engine: JobRouter,
    stream: EventStream,
    anons: AnonymizerSet,
) -> int:
    """Resume or retry ``jobs`` on the router's engines and report until they end."""
    from xnat_tui.commands._console import (
        Reporter,
        reporter_mode,
        run_until_done,
        summary,
        summary_line,
    )
    from xnat_tui.transfer.opener import exists
    from xnat_tui.transfer.types import JobState

    action = args.transfers_command
    quiet = bool(args.json)
    if action == "resume":
        ids = await engine.start(resume=args.id is None)
        if args.id:
            job = jobs[0]
            if job.state is JobState.PAUSED:
                ids += engine.resume(job.id)
            elif job.id not in ids and engine.adopt(job.id):
                ids.append(job.id)
        else:
            ids += [i for i in engine.resume(None) if i not in ids]
    else:
        if args.skip_missing:
            for j in jobs:
                for path in journal.drop_missing_files(j.id, exists):
                    if not quiet:
                        print(f"{j.id}: skipping vanished file {safe(path)}", file=sys.stderr)
        await engine.start(resume=False)
        ids = await engine.retry(args.id and jobs[0].id)
    busy = [j.id for j in jobs if j.id not in ids and journal.holder(j.id)]
    for jid in busy:
        if not quiet:
            held = journal.job(jid)
            left = max(0, int(held.lease_until - time.time()))
            print(
                f"{jid} is being run by {held.owner} (host:pid); left alone. If that "
                f"process is gone on another host, its lease expires in {left} s.",
                file=sys.stderr,
            )
    if not ids:
        await engine.close()
        if not quiet:
            print(f"nothing to {action}", file=sys.stderr)
        return EXIT_OK if not busy and not failed else EXIT_FAILED
    if not quiet:
        print(f"{action}: {' '.join(ids)}", file=sys.stderr)
    reporter = Reporter(reporter_mode(quiet))
    try:
        states, interrupted = await run_until_done(engine, ids, reporter, stream)
    finally:
        await asyncio.to_thread(anons.close)
    result = summary(journal, ids)
    result["interrupted"] = interrupted
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for j in result["jobs"]:
            print(summary_line(j, reporter), file=sys.stderr)
    if interrupted:
        return 130
    return EXIT_OK if all(s is JobState.VERIFIED for s in states.values()) else EXIT_FAILED
