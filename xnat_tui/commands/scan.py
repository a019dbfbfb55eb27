"""``xnat-tui scan PATH... [--json]``: what DICOM is in these folders, and what is wrong.

Exit codes: 0 the scan ran (problems are reported, not fatal); 1 nothing readable
(no usable DICOM file found); 2 usage error (no such path, bad option).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import sys
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from xnat_tui.commands._args import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    path_argument,
    shard_argument,
)
from xnat_tui.text import pad, safe
from xnat_tui.units import human_bytes

if TYPE_CHECKING:
    from xnat_tui.dicom.model import Problem, ScanProgress, ScanSummary, Session
    from xnat_tui.dicom.routing import PatternLike

PROBLEMS_PER_KIND = 10


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "scan",
        help="scan folders for DICOM sessions and report problems",
        description=(
            "Scan files and folders for DICOM: sessions (studies), their scans (series) and "
            "every problem found (not DICOM, unreadable, truncated, duplicates, several "
            "patients in one study, missing instances, likely burned-in PHI). Only headers "
            "are read; unchanged files are answered from a cache on rescans."
        ),
        epilog="Exit codes: 0 scanned (even with problems), 1 no usable DICOM found, "
        "2 usage error (e.g. a path that does not exist).",
    )
    parser.add_argument(
        "paths", nargs="+", type=path_argument, metavar="PATH", help="files or folders"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument(
        "--files",
        action="store_true",
        help="with --json: list every file of every scan (path, SOPInstanceUID, size)",
    )
    parser.add_argument(
        "--no-cache", action="store_true", help="read every header again (ignore the rescan cache)"
    )
    parser.add_argument(
        "--workers", type=int, metavar="N", help="header-reading processes (default: CPUs)"
    )
    parser.add_argument(
        "--shard",
        type=shard_argument,
        metavar="I/N",
        help="only the sessions whose StudyInstanceUID hashes to shard I of N (0 <= I < N), "
        "as 'upload --shard' takes them",
    )
    parser.add_argument(
        "--all-problems",
        action="store_true",
        help=f"list every problem (default: the first {PROBLEMS_PER_KIND} of each kind)",
    )
    parser.set_defaults(func=run)


def _date(d: str) -> str:
    return f"{d[:4]}-{d[4:6]}-{d[6:8]}" if len(d) == 8 and d.isdigit() else d


def _progress_line(p: ScanProgress) -> str:
    total = f"/{p.files_seen}" if p.walk_done else f" of {p.files_seen}+"
    return (
        f"\rscanning: {p.files_parsed}{total} files, {p.files_dicom} DICOM, "
        f"{p.problems} problems, {p.rate:,.0f} files/s "
    )


def _session_text(s: Session, out: list[str]) -> None:
    # Every DICOM value and path goes through text.safe: shown, never obeyed, and the
    # columns are padded in terminal cells.
    description = f"  {safe(s.study_description)}" if s.study_description else ""
    out.append("")
    out.append(
        f"{safe(s.patient_id) or '(no PatientID)'}  {safe(s.patient_name)}  "
        f"{safe(_date(s.study_date))}  {safe('/'.join(s.modalities)) or '?'}{description}"
        + (f"  accession {safe(s.accession_number)}" if s.accession_number else "")
        + f"  ({s.file_count} files, {human_bytes(s.size)})"
    )
    out.append(f"  study  {safe(s.study_instance_uid)}")
    out.append(f"  root   {safe(s.root)}")
    for r in s.routing:
        out.append(
            f"  routing  project={safe(r.project) or '-'} subject={safe(r.subject) or '-'} "
            f"session={safe(r.session) or '-'}  (from {safe(r.source)})"
        )
    out.append(f"  {'#':>5}  {'Series description':<32} {'Mod':<4} {'Files':>6} {'Size':>10}")
    for sc in s.sorted_scans():
        desc = pad(safe(sc.series_description), 32)
        size = human_bytes(sc.size)
        out.append(
            f"  {pad(safe(sc.label), 5, right=True)}  {desc} {pad(safe(sc.modality), 4)} "
            f"{sc.file_count:>6} {size:>10}"
        )
    for p in s.problems + [p for sc in s.sorted_scans() for p in sc.problems]:
        out.append(f"  ! {p.severity:<7} {p.kind}: {safe(p.detail)}")


def _problems_text(problems: list[Problem], all_problems: bool, out: list[str]) -> None:
    if not problems:
        return
    by_kind: dict[str, list[Problem]] = defaultdict(list)
    for p in problems:
        by_kind[p.kind].append(p)
    out.append("")
    out.append(f"Files not used ({len(problems)}):")
    for kind in sorted(by_kind):
        items = by_kind[kind]
        out.append(f"  {kind} ({len(items)}):")
        shown = items if all_problems else items[:PROBLEMS_PER_KIND]
        for p in shown:
            out.append(f"    {safe(p.path)}: {safe(p.detail)}")
        if len(shown) < len(items):
            out.append(f"    ... and {len(items) - len(shown)} more (--all-problems or --json)")


def render_text(summary: ScanSummary, all_problems: bool = False) -> str:
    p = summary.progress
    n_scans = sum(len(s.scans) for s in summary.sessions)
    cached = (
        "tree unchanged since the last scan" if summary.reused else f"{p.files_cached} from cache"
    )
    out = [
        f"Scanned {p.files_parsed} files in {p.elapsed:.2f} s ({p.rate:,.0f} files/s, "
        f"{cached}): {len(summary.sessions)} sessions, {n_scans} scans, "
        f"{p.files_dicom} DICOM files, {p.problems} problems"
        + (" [CANCELLED: incomplete]" if summary.cancelled else "")
    ]
    for s in summary.sessions:
        _session_text(s, out)
    _problems_text(summary.problems, all_problems, out)
    return "\n".join(out)


def to_json(summary: ScanSummary, files: bool = False) -> dict[str, Any]:
    data = summary.to_json()
    if files:
        for sj, s in zip(data["sessions"], summary.sessions, strict=True):
            for scj, sc in zip(sj["scans"], s.sorted_scans(), strict=True):
                scj["files"] = [
                    {
                        "path": str(f.path),
                        "sop_instance_uid": f.sop_instance_uid,
                        "instance_number": f.instance_number,
                        "size": f.size,
                        "transfer_syntax": f.transfer_syntax,
                    }
                    for f in sc.files
                ]
    return data


def _routing_patterns() -> list[PatternLike]:
    """The config's routing patterns; a config that cannot be read does not stop a
    scan (it is said why, and the default patterns are used)."""
    from xnat_tui import config

    try:
        return list(config.load().defaults.routing_patterns)
    except config.ConfigError as exc:
        print(
            f"xnat-tui scan: {safe(exc)} (scanning with the default routing patterns)",
            file=sys.stderr,
        )
        return list(config.Defaults().routing_patterns)


def run(args: argparse.Namespace) -> int:
    from xnat_tui.dicom.model import ScanSummary
    from xnat_tui.dicom.scan import scan

    missing = [p for p in args.paths if not os.path.lexists(p)]
    if missing:
        for p in missing:
            print(f"xnat-tui scan: {safe(p)}: no such file or directory", file=sys.stderr)
        return EXIT_USAGE
    if args.workers is not None and args.workers < 1:
        print("xnat-tui scan: --workers must be at least 1", file=sys.stderr)
        return EXIT_USAGE

    patterns = _routing_patterns()
    show_progress = sys.stderr.isatty() and not args.json
    summary: ScanSummary | None = None
    # A short-lived process building one object per file: the cyclic collector would
    # only re-walk a heap that keeps growing (about 6% of a cached rescan) and finds
    # nothing to free. Reference counting still frees everything else.
    gc.disable()
    try:
        events = scan(
            args.paths,
            workers=args.workers,
            use_cache=not args.no_cache,
            routing_patterns=patterns,
        )
        for event in events:
            if isinstance(event, ScanSummary):
                summary = event
            elif show_progress:
                print(_progress_line(event.progress), end="", file=sys.stderr, flush=True)
    finally:
        gc.enable()
    if show_progress:
        print("\r" + " " * 78 + "\r", end="", file=sys.stderr, flush=True)
    assert summary is not None
    if args.shard is not None:
        # File problems belong to no session: every shard reports them.
        summary = dataclasses.replace(
            summary, sessions=args.shard.select(summary.sessions, lambda s: s.study_instance_uid)
        )

    try:
        if args.json:
            data = to_json(summary, files=args.files)
            try:
                text = json.dumps(data, ensure_ascii=False)
                text.encode(sys.stdout.encoding or "utf-8")
            except UnicodeEncodeError:
                # File names that are not valid UTF-8 (or a non-UTF-8 terminal):
                # escape everything, the JSON stays valid.
                text = json.dumps(data, ensure_ascii=True)
            sys.stdout.write(text + "\n")
        else:
            # Values are made safe (text.safe: bytes that are not UTF-8 as \xNN); what
            # the terminal's encoding cannot write is replaced (safe_streams).
            print(render_text(summary, all_problems=args.all_problems))
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`| head`): not an error. Keep Python from
        # complaining again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    if summary.progress.files_dicom == 0:
        if not args.json:
            print("xnat-tui scan: no usable DICOM file found", file=sys.stderr)
        return EXIT_FAILED  # no usable DICOM found
    return EXIT_OK
