"""Anonymization throughput: files/s with XNAT's default script and the Basic Profile,
against plain reading + encoding of the same files (the baseline), in the same run.

Each measured unit is what the packer does per file: read the file, (anonymize), encode
the result to bytes. Files are small synthetic MR images (64x64, 16-bit) with a vendor
private block and a ReferencedImageSequence, in the page cache (warm). Pools are started
before timing, so the figures are steady-state throughput.

    .venv/bin/python benchmarks/anonymize.py [--files 2000] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from xnat_tui.dicom.dicomedit import Anonymizer, Script, basic_profile_script, encode
from xnat_tui.dicom.synthetic import SeriesSpec, build_dataset, study_attributes, synthetic_uid

DEFAULT_SCRIPT = """// Default XNAT anonymization script (verbatim statements)
version "6.1"
project != "Unassigned" ? (0008,1030) := project
(0010,0010) := subject
(0010,0020) := session
"""
VARIABLES = {"project": "BENCH", "subject": "SUBJ01", "session": "SUBJ01_MR1"}
MODES = ("plain", "default", "basic")

_ANON: dict[str, Anonymizer] = {}


def _anonymizer(mode: str) -> Anonymizer:
    if mode not in _ANON:
        script = (
            Script.parse(DEFAULT_SCRIPT, "default") if mode == "default" else basic_profile_script()
        )
        _ANON[mode] = Anonymizer([script], VARIABLES)
    return _ANON[mode]


def work(mode: str, paths: list[str]) -> int:
    """Process files like the packer does; returns the bytes produced."""
    total = 0
    for p in paths:
        if mode == "plain":
            total += len(encode(dcmread(p, force=True)))
        else:
            total += len(_anonymizer(mode).anonymize_file(p))
    return total


def write_files(dest: Path, n: int) -> list[str]:
    study = study_attributes(patient_id="BENCH001", study_description="BRAIN^ROUTINE")
    paths = []
    per_series = 100
    for s in range(0, n, per_series):
        spec = SeriesSpec(
            modality="MR", series_number=s // per_series + 1, series_description="t1_mpr",
            rows=64, columns=64, n_files=min(per_series, n - s),
        )  # fmt: skip
        series_uid = synthetic_uid("bench", s)
        for i in range(spec.n_files):
            ds = build_dataset(
                study=study, spec=spec, series_uid=series_uid, index=i + 1, instance_number=i + 1
            )
            ds.add_new(0x00290010, "LO", "SIEMENS CSA HEADER")
            ds.add_new(0x00291010, "OB", os.urandom(2048))
            ds.add_new(0x00291020, "OB", os.urandom(1024))
            ref = Dataset()
            ref.ReferencedSOPClassUID = ds.SOPClassUID
            ref.ReferencedSOPInstanceUID = synthetic_uid("ref", s, i)
            ds.ReferencedImageSequence = Sequence([ref])
            path = dest / f"s{s // per_series:03d}" / f"IM{i:04d}.dcm"
            path.parent.mkdir(parents=True, exist_ok=True)
            ds.save_as(path, enforce_file_format=True)
            paths.append(str(path))
    return paths


def measure(pool: ProcessPoolExecutor | None, mode: str, paths: list[str], chunk: int) -> float:
    chunks = [paths[i : i + chunk] for i in range(0, len(paths), chunk)]
    start = time.perf_counter()
    if pool is None:
        for c in chunks:
            work(mode, c)
    else:
        list(pool.map(work, [mode] * len(chunks), chunks))
    return len(paths) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (best is kept)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="anon-bench-") as tmp:
        paths = write_files(Path(tmp), args.files)
        size = sum(os.path.getsize(p) for p in paths) / len(paths)
        print(f"{len(paths)} synthetic MR files, {size / 1024:.1f} KiB each, warm cache")
        for p in paths:  # warm the page cache
            Path(p).read_bytes()
        results: dict[tuple[str, int], list[float]] = {}
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            for mode in MODES:  # start workers and parse scripts before timing
                list(pool.map(work, [mode] * args.workers, [paths[:2]] * args.workers))
            work("default", paths[:2])
            work("basic", paths[:2])
            for _ in range(args.repeat):
                for mode in MODES:
                    results.setdefault((mode, 1), []).append(measure(None, mode, paths, 100))
                    results.setdefault((mode, args.workers), []).append(
                        measure(pool, mode, paths, max(25, len(paths) // (args.workers * 8)))
                    )
        print(f"{'mode':<34}{'1 process':>12}{f'{args.workers} processes':>14}")
        labels = {
            "plain": "plain read + encode (baseline)",
            "default": "XNAT default script",
            "basic": "basic profile (PS3.15 E.1-1)",
        }
        base = max(results[("plain", args.workers)])
        for mode in MODES:
            one = max(results[(mode, 1)])
            many = max(results[(mode, args.workers)])
            spread = statistics.pstdev(results[(mode, args.workers)])
            ratio = f"  ({many / base:.0%} of baseline)" if mode != "plain" else ""
            print(f"{labels[mode]:<34}{one:>10,.0f}/s{many:>12,.0f}/s  ±{spread:,.0f}{ratio}")
        goal = max(results[("default", args.workers)])
        verdict = "met" if goal >= 500 else "NOT met"
        print(f"goal >= 500 files/s on {args.workers} processes with the default script: {verdict}")


if __name__ == "__main__":
    main()
