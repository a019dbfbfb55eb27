"""``xnat-tui anonymize``: preview or write anonymized copies, offline, with the upload's engine.

Exit codes: 0 done; 1 a script was rejected (nothing written), a file failed, or the
server could not be reached; 2 usage error. The source files are only ever read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xnat_tui.commands._args import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    add_connection_arguments,
    parse_variables,
)
from xnat_tui.text import cells, pad, safe

if TYPE_CHECKING:
    from xnat_tui.dicom.dicomedit import Anonymizer, Script, TagChange

DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
_JUNK = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})
# Below this many files a process pool costs more than it saves.
_POOL_THRESHOLD = 64


class _Usage(Exception):
    pass


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "anonymize",
        help="preview or write anonymized copies of DICOM files",
        description=(
            "Apply XNAT anonymization scripts (the DicomEdit 6 subset), the project's scripts "
            "from the server, or the built-in PS3.15 Basic Profile to DICOM files. "
            "--preview prints the before/after tag differences (one file per series) and "
            "writes nothing; --out writes anonymized copies under DIR, mirroring the input "
            "layout. Source files are never modified."
        ),
        epilog="Exit codes: 0 done, 1 script rejected (nothing written) or a file failed, "
        "2 usage error.",
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files or folders")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--script",
        action="append",
        type=Path,
        metavar="FILE",
        help="DicomEdit 6 script; repeat to apply several in order (site first)",
    )
    source.add_argument(
        "--project",
        metavar="P",
        help="fetch project P's site and project scripts from the server and apply them",
    )
    source.add_argument(
        "--profile",
        dest="anon_profile",
        choices=("basic", "none"),
        help="built-in profile: basic = PS3.15 Annex E Basic Profile; none = no change",
    )
    parser.add_argument(
        "--retain-dates", action="store_true", help="basic profile: keep dates and times"
    )
    parser.add_argument("--retain-uids", action="store_true", help="basic profile: keep UIDs")
    parser.add_argument(
        "--retain-device",
        action="store_true",
        help="basic profile: keep device identity (serial numbers, station name...)",
    )
    parser.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="script variable (project, subject, session, or one the script asks for)",
    )
    parser.add_argument(
        "--lookup", type=Path, metavar="FILE", help="lookup table for lookup[] (key/value = new)"
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--preview", action="store_true", help="print the tag differences; write nothing"
    )
    mode.add_argument("--out", type=Path, metavar="DIR", help="write anonymized copies here")
    mode.add_argument(
        "--show-script", action="store_true", help="print the scripts that would run and exit"
    )
    parser.add_argument(
        "--all-files", action="store_true", help="with --preview: every file, not one per series"
    )
    parser.add_argument("--json", action="store_true", help="with --preview: print JSON")
    parser.add_argument(
        "--jobs", type=int, metavar="N", help="worker processes for --out (default: CPUs)"
    )
    # --profile is the anonymization profile here: the server profile is --server-profile.
    add_connection_arguments(
        parser, profile_flag="--server-profile", title="connection (for --project)"
    )
    parser.set_defaults(func=run)


# ---- inputs -----------------------------------------------------------------------


def _files(paths: Sequence[Path], unreadable: list[str]) -> Iterator[Path]:
    """The files under ``paths``, walked as the scanner walks them (depth first, names
    sorted, no symlink loops); folders that cannot be listed are said and noted."""
    from xnat_tui.dicom.model import Problem
    from xnat_tui.dicom.walk import walk

    for event in walk(paths):
        if isinstance(event, Problem):
            if event.severity != "info":
                print(
                    f"xnat-tui anonymize: {safe(event.path)}: {safe(event.detail)}", file=sys.stderr
                )
                unreadable.append(event.path)
            continue
        for name, _size, _mtime in event.files:
            if name in _JUNK or name.startswith("._"):
                continue
            yield Path(event.path) / name


def _dicom_kind(path: Path) -> str:
    """'dicom', 'dicomdir' or 'other', reading only the header."""
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    try:
        ds = dcmread(path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
    except (InvalidDicomError, OSError, ValueError, EOFError):
        return "other"
    except Exception:
        return "other"
    meta = getattr(ds, "file_meta", None)
    if meta is not None and meta.get("MediaStorageSOPClassUID") == DICOMDIR_CLASS:
        return "dicomdir"
    if "SOPInstanceUID" not in ds:
        return "other"
    return "dicom"


def _root_of(paths: Sequence[Path]) -> Path:
    dirs = [p.resolve() if p.is_dir() else p.resolve().parent for p in paths]
    return Path(os.path.commonpath([str(d) for d in dirs]))


# ---- scripts ----------------------------------------------------------------------


def _scripts(args: argparse.Namespace) -> list[Script]:
    from xnat_tui.dicom.dicomedit import Script, basic_profile_script

    if args.script:
        scripts = []
        for path in args.script:
            if not path.is_file():
                raise _Usage(f"--script {path}: no such file")
            scripts.append(Script.load(path))
        return scripts
    if args.anon_profile == "basic":
        return [
            basic_profile_script(
                retain_dates=args.retain_dates,
                retain_uids=args.retain_uids,
                retain_device=args.retain_device,
            )
        ]
    if args.anon_profile == "none":
        return []
    return _project_scripts(args)


def _project_scripts(args: argparse.Namespace) -> list[Script]:
    import asyncio

    from xnat_tui.commands._connect import open_client
    from xnat_tui.dicom.dicomedit import server_scripts

    async def fetch() -> list[tuple[str, str, bool]]:
        async with open_client(args) as client:
            settings = await client.project_settings(args.project)
        return [
            (a.scope, a.contents, a.enabled)
            for a in (settings.site_anon, settings.project_anon)
            if a is not None
        ]

    items = asyncio.run(fetch())
    scripts = server_scripts(items)
    if not scripts:
        print(
            f"xnat-tui anonymize: project {args.project} has no enabled anonymization script; "
            "files are copied unchanged",
            file=sys.stderr,
        )
    return scripts


def _check_variables(scripts: Sequence[Script], variables: dict[str, str]) -> None:
    from xnat_tui.dicom.dicomedit import required_variables

    missing = []
    for script in scripts:
        assigned = set().union(*(s.assigned_variables() for s in scripts))
        for name in script.referenced_variables():
            if name not in variables and name not in assigned and name not in missing:
                missing.append(name)
    if missing:
        described = {r.name: r.description for r in required_variables(scripts)}
        lines = [
            f"  --var {name}=..." + (f"   ({described[name]})" if described.get(name) else "")
            for name in missing
        ]
        raise _Usage("the scripts need these variables:\n" + "\n".join(lines))


# ---- preview ----------------------------------------------------------------------


def _series_key(path: Path) -> tuple[str, str]:
    from pydicom import dcmread

    try:
        ds = dcmread(
            path,
            stop_before_pixels=True,
            specific_tags=["SeriesInstanceUID", "SeriesNumber", "SeriesDescription"],
        )
    except Exception:
        return str(path), ""
    label = " ".join(str(ds.get(k, "") or "") for k in ("SeriesNumber", "SeriesDescription"))
    return str(ds.get("SeriesInstanceUID", "") or path), label.strip()


def _render(changes: Sequence[TagChange]) -> str:
    if not changes:
        return "  (no changes)"
    # DICOM values before and after: made safe (text.safe), never printed raw.
    width = min(max(cells(safe(c.keyword)) for c in changes), 36)
    rows = []
    for c in changes:
        kw = pad(safe(c.keyword), width)
        if c.kind == "changed":
            value = f"{safe(c.before)}  ->  {safe(c.after)}"
        elif c.kind == "removed":
            value = f"{safe(c.before)}"
        else:
            value = f"{safe(c.after)}"
        rows.append(f"  {c.kind:<8} {c.tag:<13} {kw}  {value}")
    return "\n".join(rows)


def _preview(
    anon: Anonymizer, files: Sequence[Path], variables: dict[str, str], args: argparse.Namespace
) -> int:
    from xnat_tui.dicom.dicomedit import AnonymizationError, preview_file

    samples: list[tuple[Path, str, int]] = []
    if args.all_files:
        samples = [(f, "", 1) for f in files]
    else:
        groups: dict[str, list[Path]] = {}
        labels: dict[str, str] = {}
        for f in files:
            key, label = _series_key(f)
            groups.setdefault(key, []).append(f)
            labels.setdefault(key, label)
        samples = [(paths[0], labels[k], len(paths)) for k, paths in groups.items()]
    failed = 0
    report: list[dict[str, Any]] = []
    for path, label, count in samples:
        try:
            changes = preview_file(anon, path, variables)
        except AnonymizationError as exc:
            failed += 1
            print(f"xnat-tui anonymize: {safe(path)}: {safe(exc)}", file=sys.stderr)
            report.append({"path": str(path), "error": str(exc)})
            continue
        if args.json:
            report.append(
                {
                    "path": str(path),
                    "series": label,
                    "files_in_series": count,
                    "changes": [c.to_json() for c in changes],
                }
            )
        else:
            what = f"series {label}, " if label else ""
            print(f"== {safe(path)}  ({what}{count} file{'s' if count != 1 else ''})")
            print(_render(changes))
    if args.json:
        json.dump(report, sys.stdout, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
    return EXIT_FAILED if failed else EXIT_OK


# ---- writing copies ---------------------------------------------------------------


def _anonymize_chunk(
    anon: Anonymizer, paths: list[str], variables: dict[str, str]
) -> list[tuple[str, bytes | None, str]]:
    """Worker: (path, bytes or None, error) per file."""
    from xnat_tui.dicom.dicomedit import AnonymizationError

    out: list[tuple[str, bytes | None, str]] = []
    for p in paths:
        try:
            out.append((p, anon.anonymize_file(p, variables), ""))
        except AnonymizationError as exc:
            out.append((p, None, str(exc)))
        except Exception as exc:
            out.append((p, None, f"{type(exc).__name__}: {exc}"))
    return out


def _results(
    anon: Anonymizer, files: Sequence[Path], variables: dict[str, str], jobs: int
) -> Iterator[tuple[str, bytes | None, str]]:
    paths = [str(f) for f in files]
    if jobs <= 1 or len(paths) < _POOL_THRESHOLD:
        yield from _anonymize_chunk(anon, paths, variables)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    size = max(8, min(250, len(paths) // (jobs * 4) or 1))
    chunks = [paths[i : i + size] for i in range(0, len(paths), size)]
    # spawn, not fork: forking a process that runs threads (a connection pool, a test
    # server) can deadlock the children.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        for chunk in pool.map(
            _anonymize_chunk, [anon] * len(chunks), chunks, [variables] * len(chunks)
        ):
            yield from chunk


def _write_atomic(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".anon-", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_copies(
    anon: Anonymizer,
    files: Sequence[Path],
    variables: dict[str, str],
    args: argparse.Namespace,
) -> int:
    out_dir: Path = args.out.resolve()
    root = _root_of(args.paths)
    for p in args.paths:
        if p.is_dir() and out_dir.is_relative_to(p.resolve()):
            raise _Usage(f"--out {args.out} is inside the input folder {p}; choose another place")
    sources = {f.resolve() for f in files}
    jobs = args.jobs or os.cpu_count() or 1
    written = failed = 0
    for path_text, data, error in _results(anon, files, variables, jobs):
        path = Path(path_text)
        if data is None:
            failed += 1
            print(f"xnat-tui anonymize: {safe(path)}: {safe(error)}", file=sys.stderr)
            continue
        dest = out_dir / path.resolve().relative_to(root)
        if dest.resolve() in sources:  # pragma: no cover - excluded by the check above
            raise _Usage(f"refusing to overwrite the source file {path}")
        _write_atomic(dest, data)
        written += 1
    print(
        f"xnat-tui anonymize: wrote {written} file{'s' if written != 1 else ''} to {args.out}"
        + (f", {failed} failed" if failed else ""),
        file=sys.stderr,
    )
    return EXIT_FAILED if failed else EXIT_OK


# ---- entry ------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    from xnat_tui.dicom.dicomedit import Anonymizer, ScriptError, parse_lookup_table

    try:
        missing = [p for p in args.paths if not os.path.lexists(p)]
        if missing:
            raise _Usage("; ".join(f"{p}: no such file or directory" for p in missing))
        retains = args.retain_dates or args.retain_uids or args.retain_device
        if retains and args.anon_profile != "basic":
            raise _Usage("--retain-dates/--retain-uids/--retain-device need --profile basic")
        if args.jobs is not None and args.jobs < 1:
            raise _Usage("--jobs must be at least 1")
        try:
            variables = parse_variables(args.var)
        except ValueError as exc:
            raise _Usage(str(exc)) from None
        if args.project:
            variables.setdefault("project", args.project)
        lookup = None
        if args.lookup is not None:
            try:
                lookup = parse_lookup_table(args.lookup.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise _Usage(f"--lookup {args.lookup}: {exc}") from None
        try:
            scripts = _scripts(args)
            anon = Anonymizer(scripts, lookup=lookup)
        except ScriptError as exc:
            print(f"xnat-tui anonymize: script rejected, nothing written: {exc}", file=sys.stderr)
            return EXIT_FAILED
        if args.show_script:
            for s in scripts:
                print(f"// ---- {s.name} (sha256 {s.sha256})")
                print(s.text)
            return EXIT_OK
        _check_variables(scripts, variables)
        files: list[Path] = []
        unreadable: list[str] = []
        for f in _files(args.paths, unreadable):
            kind = _dicom_kind(f)
            if kind == "dicom":
                files.append(f)
            elif kind == "dicomdir":
                print(
                    f"xnat-tui anonymize: {safe(f)}: DICOMDIR skipped (it lists PHI)",
                    file=sys.stderr,
                )
            else:
                print(f"xnat-tui anonymize: {safe(f)}: not DICOM, skipped", file=sys.stderr)
        if not files:
            print("xnat-tui anonymize: no DICOM files found", file=sys.stderr)
            return EXIT_FAILED
        if args.preview:
            code = _preview(anon, files, variables, args)
        else:
            code = _write_copies(anon, files, variables, args)
        if unreadable:
            print(
                f"xnat-tui anonymize: {len(unreadable)} folder(s) could not be read; "
                "their files were not anonymized",
                file=sys.stderr,
            )
            return EXIT_FAILED
        return code
    except _Usage as exc:
        print(f"xnat-tui anonymize: {safe(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        from xnat_tui.xnat.errors import XnatError

        if isinstance(exc, XnatError):
            from xnat_tui.commands._connect import report_error

            return report_error(exc)
        raise
