"""Upload throughput, memory and temp disk: ``xnat-tui upload`` vs curl vs xnatpy.

Everything runs against one sandbox server (a separate process) on loopback, in the
same run, with the same generated session:

* **ours**: ``xnat-tui upload`` end to end (scan, plan, per-series streamed zips, commit,
  verify), in its own process; peak RSS its own (``peak_rss.py``); a private, empty ``TMPDIR``
  sampled during the run (temp disk used).
* **curl**: ``curl -T`` of a *prebuilt* zip of the same files (zipping not timed) to the
  same import endpoint — the baseline for raw transfer speed (goal: ours >= 0.8x).
* **xnatpy**: ``session.services.import_dir`` of the same folder, its zipping included
  (goal: ours >= 1.5x faster end to end).

Usage: ``python benchmarks/upload.py [--size-mb 2048] [--file-kb 512] [--skip-xnatpy]``.
Needs ~4x the size in free disk (source, prebuilt zip, the sandbox's copies).
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from peak_rss import PeakRss  # noqa: E402 - a sibling of this script
from sandbox_process import SandboxProcess, bench_env  # noqa: E402 - a sibling of this script


def dir_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.stat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


class TempWatcher:
    """Peak temp disk of a child: files in its TMPDIR, plus files it holds open there.

    The second part matters: ``tempfile.TemporaryFile`` (xnatpy's spooled zip) uses
    O_TMPFILE/unlinked files that never appear in a directory listing, but do appear
    under ``/proc/PID/fd``. Sampled every 50 ms.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pid = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _open_temp_bytes(self) -> int:
        total = 0
        prefix = str(self.path.resolve())
        try:
            fds = os.listdir(f"/proc/{self.pid}/fd")
        except OSError:
            return 0
        for fd in fds:
            link = f"/proc/{self.pid}/fd/{fd}"
            try:
                target = os.readlink(link)
                if target.startswith(prefix) and target.endswith("(deleted)"):
                    total += os.stat(link).st_size
            except OSError:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            used = dir_size(self.path) + (self._open_temp_bytes() if self.pid else 0)
            self.peak = max(self.peak, used)
            self._stop.wait(0.05)

    def __enter__(self) -> TempWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, dir_size(self.path))


CPU: dict[str, float] = {}


def run_measured(
    cmd: list[str], env: dict[str, str], tmpdir: Path
) -> tuple[float, int, int, str, str]:
    """(seconds, peak RSS bytes, peak temp bytes, stdout, stderr) of one child process.

    Its CPU seconds (user + system) are kept in ``CPU`` under the TMPDIR name.
    """
    tmpdir.mkdir(parents=True, exist_ok=True)
    env = dict(env, TMPDIR=str(tmpdir))
    out_path, err_path = tmpdir.parent / f"{tmpdir.name}.out", tmpdir.parent / f"{tmpdir.name}.err"
    with (
        open(out_path, "w") as out,
        open(err_path, "w") as err,
        TempWatcher(tmpdir) as watch,
        PeakRss() as peak,
    ):
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        watch.pid = proc.pid
        peak.watch(proc.pid)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        CPU[tmpdir.name] = usage.ru_utime + usage.ru_stime
    if proc.returncode != 0:
        raise SystemExit(
            f"{cmd[:4]} failed ({proc.returncode}):\n{err_path.read_text()[-3000:]}"
            f"\n{out_path.read_text()[-3000:]}"
        )
    return seconds, peak.bytes(usage), watch.peak, out_path.read_text(), err_path.read_text()


def generate(dest: Path, size_mb: int, file_kb: int) -> tuple[int, int]:
    from xnat_tui.dicom.synthetic import write_bulk_tree

    side = int(math.sqrt(file_kb * 1024 / 2))
    n_files = max(4, int(size_mb * 1e6 // (side * side * 2)))
    write_bulk_tree(
        dest,
        n_files,
        files_per_series=math.ceil(n_files / 4),
        series_per_study=4,
        rows=side,
        columns=side,
        seed="bench-upload",
    )
    files = [p for p in dest.rglob("*") if p.is_file()]
    # The generator's gradient pixels deflate to almost nothing, which would flatter
    # any client that compresses. Real CT/MR deflate to ~0.4-0.5 (docs dicom.md §4.1):
    # overwrite the pixel data (the end of each file) with 8-bit noise in 16-bit words.
    rng = random.Random(7)
    pixel_bytes = side * side * 2
    low = bytes(range(128)) * 2
    high = bytes([0, 1]) * 128
    for p in files:
        noise = bytearray(rng.randbytes(pixel_bytes))
        noise[0::2] = noise[0::2].translate(low)
        noise[1::2] = noise[1::2].translate(high)
        with open(p, "r+b") as fh:
            fh.seek(-pixel_bytes, os.SEEK_END)
            fh.write(noise)
    return len(files), sum(p.stat().st_size for p in files)


def start_sandbox(data_dir: Path, env: dict[str, str]) -> SandboxProcess:
    sandbox = SandboxProcess(data_dir, env)
    url = sandbox.url
    # One project per method, so no method meets another's copy of the study.
    auth = "Basic " + base64.b64encode(b"admin:admin").decode()
    for project in ("BENCH_OURS", "BENCH_CURL", "BENCH_XNATPY"):
        req = urllib.request.Request(
            f"{url}/data/projects/{project}", method="PUT", headers={"Authorization": auth}
        )
        urllib.request.urlopen(req, timeout=30).close()
    return sandbox


def sending_window(state_home: Path, job_ids: list[str]) -> float:
    """Seconds from the first series send to the last acknowledgement, from the journal."""
    import sqlite3

    db = sqlite3.connect(state_home / "xnat-tui" / "journal.sqlite3")
    marks = ",".join("?" * len(job_ids))
    first, last = db.execute(
        f"SELECT MIN(ts), MAX(ts) FROM steps WHERE step = 'send' AND job_id IN ({marks})",
        job_ids,
    ).fetchone()
    db.close()
    return float(last - first)


XNATPY_SCRIPT = """
import sys, xnat
url, src = sys.argv[1], sys.argv[2]
with xnat.connect(url, user="admin", password="admin", no_parse_model=True, loglevel="ERROR") as s:
    s.services.import_dir(src, project="BENCH_XNATPY", subject="S", experiment="BENCH_XNATPY")
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mb", type=int, default=2048, help="session size (default 2048)")
    ap.add_argument("--file-kb", type=int, default=512, help="approximate file size")
    ap.add_argument("--jobs", type=int, default=4, help="concurrent series for ours")
    ap.add_argument("--repeat", type=int, default=2, help="rounds of ours/curl (best kept)")
    ap.add_argument("--skip-xnatpy", action="store_true")
    ap.add_argument("--workdir", type=Path, help="where to put the data (default: a temp dir)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-upload-", dir=args.workdir))
    try:
        env = bench_env(work)
        src = work / "src"
        t0 = time.perf_counter()
        n_files, total = generate(src, args.size_mb, args.file_kb)
        print(
            f"session: {n_files} files, {total / 1e6:.0f} MB in 4 series "
            f"(generated in {time.perf_counter() - t0:.0f} s)"
        )
        sandbox = start_sandbox(work / "sandbox", env)
        url = sandbox.url
        results: dict[str, tuple[float, int, int]] = {}

        def keep(name: str, value: tuple[float, int, int]) -> None:
            best = results.get(name)
            results[name] = value if best is None or value[0] < best[0] else best

        zpath = work / "prebuilt.zip"
        with zipfile.ZipFile(zpath, "w", zipfile.ZIP_STORED) as zf:
            for p in sorted(src.rglob("*")):
                if p.is_file():
                    zf.write(p, p.relative_to(src).as_posix())
        query = (
            "import-handler=DICOM-zip&PROJECT_ID=BENCH_CURL&SUBJECT_ID=BENCH_CURL"
            "&EXPT_LABEL=BENCH_CURL&prevent_auto_commit=true&SOURCE=uploader&rename=true"
        )
        try:
            for round_ in range(args.repeat):
                # ours, end to end; later rounds merge into the same session (same work)
                cmd = [
                    sys.executable,
                    "-m",
                    "xnat_tui",
                    "upload",
                    str(src),
                    "--server",
                    url,
                    "--user",
                    "admin",
                    "--project",
                    "BENCH_OURS",
                    "--dest",
                    "prearchive",
                    "--jobs",
                    str(args.jobs),
                    "--yes",
                    "--json",
                ]
                if round_:
                    cmd += ["--overwrite", "append"]
                secs, rss, tmp, out, _ = run_measured(cmd, env, work / "tmp-ours")
                summary = json.loads(out)
                assert summary["ok"], summary
                keep("xnat-tui upload (end to end)", (secs, rss, tmp))
                window = sending_window(work / "state", [j["id"] for j in summary["jobs"]])
                keep("xnat-tui sending phase", (window, rss, tmp))

                # curl with the prebuilt zip (zipping not timed)
                secs, rss, tmp, out, _ = run_measured(
                    [
                        "curl",
                        "-sS",
                        "--fail",
                        "-u",
                        "admin:admin",
                        "-X",
                        "POST",
                        "-H",
                        "Expect:",
                        "-H",
                        "Content-Type: application/zip",
                        "-T",
                        str(zpath),
                        f"{url}/data/services/import?{query}",
                    ],
                    env,
                    work / "tmp-curl",
                )
                keep("curl -T prebuilt zip", (secs, rss, tmp))
            zpath.unlink()

            if not args.skip_xnatpy:
                secs, rss, tmp, _, _ = run_measured(
                    [sys.executable, "-c", XNATPY_SCRIPT, url, str(src)], env, work / "tmp-xnatpy"
                )
                results["xnatpy import_dir (zip + upload)"] = (secs, rss, tmp)
        finally:
            sandbox.stop()

        print(f"\n{'method':<36} {'seconds':>8} {'MB/s':>8} {'peak RSS':>9} {'temp disk':>10}")
        for name, (secs, rss, tmp) in results.items():
            print(
                f"{name:<36} {secs:8.1f} {total / 1e6 / secs:8.1f} "
                f"{rss / 1e6:7.0f}MB {tmp / 1e6:8.0f}MB"
            )
        ours = results["xnat-tui upload (end to end)"][0]
        send = results["xnat-tui sending phase"][0]
        curl = results["curl -T prebuilt zip"][0]
        print(f"\nours vs curl (end to end): {curl / ours:.2f}x curl's throughput (goal >= 0.8)")
        print(f"ours vs curl (sending phase): {curl / send:.2f}x")
        if "xnatpy import_dir (zip + upload)" in results:
            xp = results["xnatpy import_dir (zip + upload)"][0]
            print(f"ours vs xnatpy: {xp / ours:.2f}x faster end to end (goal >= 1.5)")
        print("client CPU seconds: " + ", ".join(f"{k[4:]} {v:.1f}" for k, v in CPU.items()))
        print(
            f"our peak RSS: {results['xnat-tui upload (end to end)'][1] / 1e6:.0f} MB "
            f"(goal <= 150); our temp disk: {results['xnat-tui upload (end to end)'][2]} bytes"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
