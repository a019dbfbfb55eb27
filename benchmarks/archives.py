"""Archives benchmark (issue 15): scanning and uploading from archives, read in place.

In one run, on the same generated files:

1. **scan** a 10,000-file ``.zip`` (deflated, as zip tools write) and the same files as
   a ``.tar.gz``: ``python -m xnat_tui scan --json --no-cache ARCHIVE`` against a
   one-process ``zipfile``/``tarfile`` + ``pydicom.dcmread(stop_before_pixels=True)``
   loop (goal: >= 5x for the zip; the tar.gz figure is what one pass can reach);
2. **upload** a 1 GB session from a stored ``.zip`` (as XNAT's own download writes it)
   against uploading the same files from a folder, both ``xnat-tui upload`` end to end
   against one sandbox process on loopback (goal: >= 0.9x the folder's speed).

Peak RSS: the child's own (``peak_rss.py``, goal <= 150 MB); temp disk is the peak of the files in
the child's private ``TMPDIR`` plus the files it holds open there (goal 0), and the
folder holding the archive is checked to hold nothing new afterwards.

    .venv/bin/python benchmarks/archives.py [--files 10000] [--size-mb 1024]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sandbox_process import bench_env  # noqa: E402 - a sibling
from upload import generate, run_measured, start_sandbox  # noqa: E402 - a sibling

BASELINE = r"""
import io, sys, tarfile, warnings, zipfile
import pydicom
warnings.simplefilter("ignore")
KW = ["StudyInstanceUID", "SeriesInstanceUID", "SeriesNumber", "SeriesDescription", "Modality",
      "PatientID", "PatientName", "StudyDate", "StudyDescription", "AccessionNumber",
      "SOPInstanceUID", "SOPClassUID", "InstanceNumber"]
n = bad = 0
series = set()
def one(f):
    global n, bad
    try:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        rec = {k: (None if (v := ds.get(k)) is None else str(v)) for k in KW}
        series.add(rec["SeriesInstanceUID"])
        n += 1
    except Exception:
        bad += 1
path = sys.argv[1]
if path.endswith(".zip"):
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            if not info.is_dir():
                with z.open(info) as f:
                    one(f)
else:
    with tarfile.open(path, "r|gz") as t:
        for m in t:
            if m.isfile():
                one(io.BytesIO(t.extractfile(m).read()))  # pydicom needs to seek
print(n, bad, len(series))
"""


def _listing(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def scan_part(work: Path, env: dict[str, str], n_files: int) -> None:
    from xnat_tui.dicom.synthetic import write_bulk_tree

    tree = work / "scan-src"
    t0 = time.perf_counter()
    n = write_bulk_tree(
        tree, n_files, files_per_series=100, series_per_study=4, rows=64, columns=64
    )
    files = sorted(p for p in tree.rglob("*") if p.is_file())
    size = sum(p.stat().st_size for p in files)
    holder = work / "archives"
    holder.mkdir()
    zpath, tpath = holder / "bundle.zip", holder / "bundle.tar.gz"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as z:
        for p in files:
            z.write(p, p.relative_to(tree).as_posix())
    with tarfile.open(tpath, "w:gz") as t:
        for p in files:
            t.add(p, p.relative_to(tree).as_posix())
    print(
        f"scan: {n} files ({size / 1e6:.0f} MB, {size // n} B each); zip "
        f"{zpath.stat().st_size / 1e6:.0f} MB deflated, tar.gz {tpath.stat().st_size / 1e6:.0f} MB "
        f"(generated in {time.perf_counter() - t0:.0f} s)"
    )
    before = _listing(holder)
    py = sys.executable
    head = f"{'method':<34} {'seconds':>8} {'files/s':>9} {'peak RSS':>9} {'temp':>7}"
    print(f"\n{'scan of':<14} {head}")
    for archive in (zpath, tpath):
        best: dict[str, tuple[float, int, int]] = {}
        for _ in range(2):
            secs, rss, tmp, out, _e = run_measured(
                [py, "-c", BASELINE, str(archive)], env, work / "tmp-base"
            )
            assert out.split()[0] == str(n), out
            if "base" not in best or secs < best["base"][0]:
                best["base"] = (secs, rss, tmp)
            secs, rss, tmp, out, _e = run_measured(
                [py, "-m", "xnat_tui", "scan", "--json", "--no-cache", str(archive)],
                env,
                work / "tmp-ours",
            )
            stats = json.loads(out)["stats"]
            assert stats["files_dicom"] == n, stats
            if "ours" not in best or secs < best["ours"][0]:
                best["ours"] = (secs, rss, tmp)
        for key, label in (("base", "zipfile/tarfile + pydicom loop"), ("ours", "xnat-tui scan")):
            secs, rss, tmp = best[key]
            print(
                f"{archive.name:<14} {label:<34} {secs:8.2f} {n / secs:9.0f} "
                f"{rss / 1e6:7.0f}MB {tmp:6d}B"
            )
        ratio = best["base"][0] / best["ours"][0]
        goal = " (goal >= 5)" if archive.suffix == ".zip" else ""
        print(f"{archive.name}: ours {ratio:.1f}x the pydicom loop{goal}")
    rescan_part(work, env, n, [tree, zpath, tpath])
    assert _listing(holder) == before, "something was written beside the archives"
    shutil.rmtree(holder)
    shutil.rmtree(tree)


def rescan_part(work: Path, env: dict[str, str], n: int, paths: list[Path]) -> None:
    """Rescans with the cache: an unchanged archive against the same files in a folder."""
    past = time.time() - 60  # the cache never trusts files younger than 2 s
    for p in paths:
        for q in [p, *(p.rglob("*") if p.is_dir() else [])]:
            os.utime(q, (past, past))
    head = f"{'first (s)':>10} {'rescan (s)':>11} {'files/s':>9} {'peak RSS':>9}"
    print(f"\n{'rescan of':<14} {head}")
    for path in paths:
        cmd = [sys.executable, "-m", "xnat_tui", "scan", "--json", str(path)]
        first, _r, _t, out, _e = run_measured(cmd, env, work / "tmp-rescan")
        assert json.loads(out)["stats"]["files_dicom"] == n, out
        again = min(run_measured(cmd, env, work / "tmp-rescan")[:2] for _ in range(3))
        name = path.name if path.is_file() else "the folder"
        rate = n / again[0]
        print(f"{name:<14} {first:10.2f} {again[0]:11.2f} {rate:9.0f} {again[1] / 1e6:7.0f}MB")


def upload_part(work: Path, env: dict[str, str], size_mb: int, file_kb: int, jobs: int) -> None:
    src = work / "up-src"
    t0 = time.perf_counter()
    n_files, total = generate(src, size_mb, file_kb)
    holder = work / "up-archive"
    holder.mkdir()
    zpath = holder / "session.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_STORED) as z:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                z.write(p, p.relative_to(src).as_posix())
    print(
        f"\nupload: {n_files} files, {total / 1e6:.0f} MB in 4 series, stored zip "
        f"{zpath.stat().st_size / 1e6:.0f} MB (generated in {time.perf_counter() - t0:.0f} s)"
    )
    before = _listing(holder)
    sandbox = start_sandbox(work / "sandbox", env)
    results: dict[str, tuple[float, int, int]] = {}
    try:
        for round_ in range(2):
            for name, path, project in (
                ("from the folder", src, "BENCH_OURS"),
                ("from the stored zip", zpath, "BENCH_CURL"),
            ):
                cmd = [
                    sys.executable,
                    "-m",
                    "xnat_tui",
                    "upload",
                    str(path),
                    "--server",
                    sandbox.url,
                ]
                cmd += ["--user", "admin", "--project", project, "--dest", "prearchive"]
                cmd += ["--jobs", str(jobs), "--yes", "--json"]
                if round_:
                    cmd += ["--overwrite", "append"]
                secs, rss, tmp, out, _ = run_measured(cmd, env, work / f"tmp-{project}")
                assert json.loads(out)["ok"], out
                best = results.get(name)
                if best is None or secs < best[0]:
                    results[name] = (secs, rss, tmp)
    finally:
        sandbox.stop()
    print(f"\n{'xnat-tui upload':<22} {'seconds':>8} {'MB/s':>8} {'peak RSS':>9} {'temp disk':>10}")
    for name, (secs, rss, tmp) in results.items():
        print(f"{name:<22} {secs:8.1f} {total / 1e6 / secs:8.1f} {rss / 1e6:7.0f}MB {tmp:9d}B")
    ratio = results["from the folder"][0] / results["from the stored zip"][0]
    print(f"from the zip: {ratio:.2f}x the folder's speed (goal >= 0.9)")
    assert _listing(holder) == before, "something was written beside the archive"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=10_000, help="files in the scanned archives")
    ap.add_argument("--size-mb", type=int, default=1024, help="uploaded session size")
    ap.add_argument("--file-kb", type=int, default=512, help="approximate uploaded file size")
    ap.add_argument("--jobs", type=int, default=4, help="concurrent series")
    ap.add_argument("--skip-upload", action="store_true")
    ap.add_argument("--workdir", type=Path, help="where to put the data (default: a temp dir)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-archives-", dir=args.workdir))
    try:
        env = bench_env(work)
        scan_part(work, env, args.files)
        if not args.skip_upload:
            upload_part(work, env, args.size_mb, args.file_kb, args.jobs)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
