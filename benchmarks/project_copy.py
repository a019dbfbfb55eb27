"""Copy throughput, memory and temp disk: ``xnat-tui copy`` vs curl download + curl upload.

One sandbox server (a separate process, loopback), one generated session (archived in
project BENCH_SRC by ``xnat-tui upload`` first, not timed), then in the same run:

* **ours**: ``xnat-tui copy --from BENCH_SRC --to BENCH_OURS_n --all --dest archive`` end
  to end in its own process (list, plan, every file fetched and checked against its MD5,
  streamed per-scan zips to the import service, commit, verification of the destination
  and the comparison with the source); peak RSS its own (``peak_rss.py``); a private, empty
  ``TMPDIR`` sampled during the run (temp disk used: the goal is 0).
* **curl**: what a user does by hand: ``curl -o`` the session's files as one zip
  (``.../scans/ALL/files?format=zip``) into a temp folder, then ``curl -T`` that zip to the
  destination's import service (into the prearchive, no commit: less work than ours).
  Its time is the sum of both; its temp disk is the zip (goal: ours >= 1.0x).

Usage: ``python benchmarks/project_copy.py [--size-mb 1024] [--file-kb 512] [--repeat 1]``.
Needs ~5x the size in free disk (source files, the sandbox's copies, curl's zip).
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox_process import SandboxProcess, bench_env  # noqa: E402 - a sibling script
from upload import CPU, generate, run_measured  # noqa: E402 - the upload benchmark's tools

AUTH = "Basic " + base64.b64encode(b"admin:admin").decode()


def request(url: str, method: str = "GET") -> bytes:
    """An idempotent set-up request (PUT a project, GET a listing), tried three times: a
    sandbox just started on a busy machine may drop the first connection."""
    req = urllib.request.Request(url, method=method, headers={"Authorization": AUTH})
    for attempt in range(3):
        try:
            with urllib.request.urlopen(req, timeout=60) as reply:
                return bytes(reply.read())
        except (ConnectionError, TimeoutError):
            if attempt == 2:
                raise
            time.sleep(1.0)
    raise AssertionError("unreachable")


def xnat_tui(*args: str) -> list[str]:
    return [sys.executable, "-m", "xnat_tui", *args]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mb", type=int, default=1024, help="session size (default 1024)")
    ap.add_argument("--file-kb", type=int, default=512, help="approximate file size")
    ap.add_argument("--jobs", type=int, default=4, help="scans copied at once by ours")
    ap.add_argument("--repeat", type=int, default=1, help="rounds of ours/curl (best kept)")
    ap.add_argument("--workdir", type=Path, help="where to put the data (default: a temp dir)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-copy-", dir=args.workdir))
    try:
        env = bench_env(work)
        src = work / "src"
        t0 = time.perf_counter()
        n_files, total = generate(src, args.size_mb, args.file_kb)
        print(
            f"session: {n_files} files, {total / 1e6:.0f} MB in 4 scans "
            f"(generated in {time.perf_counter() - t0:.0f} s)"
        )
        sandbox = SandboxProcess(work / "sandbox", env)
        url = sandbox.url
        results: dict[str, tuple[float, int, int]] = {}

        def keep(name: str, value: tuple[float, int, int]) -> None:
            best = results.get(name)
            results[name] = value if best is None or value[0] < best[0] else best

        try:
            projects = ["BENCH_SRC", "BENCH_CURL"]
            projects += [f"BENCH_OURS_{n}" for n in range(args.repeat)]
            for project in projects:
                request(f"{url}/data/projects/{project}", "PUT")
            t0 = time.perf_counter()
            _, _, _, out, _ = run_measured(
                xnat_tui(
                    "upload", str(src), "--server", url, "--user", "admin",
                    "--project", "BENCH_SRC", "--dest", "archive", "--yes", "--json",
                ),  # fmt: skip
                env,
                work / "tmp-setup",
            )
            assert json.loads(out)["ok"], out
            listed = json.loads(request(f"{url}/data/projects/BENCH_SRC/experiments?format=json"))
            (session,) = listed["ResultSet"]["Result"]
            files_url = f"{url}/data/experiments/{session['ID']}/scans/ALL/files?format=json"
            listing = json.loads(request(files_url))["ResultSet"]["Result"]
            print(
                f"source: BENCH_SRC/{session['label']} ({session['ID']}), archived in "
                f"{time.perf_counter() - t0:.0f} s (not timed below)"
            )
            query = (
                "import-handler=DICOM-zip&PROJECT_ID=BENCH_CURL&SUBJECT_ID=BENCH_CURL"
                "&EXPT_LABEL=BENCH_CURL&prevent_auto_commit=true&SOURCE=uploader&rename=true"
            )
            for round_ in range(args.repeat):
                secs, rss, tmp, out, _ = run_measured(
                    xnat_tui(
                        "copy", "--server", url, "--user", "admin", "--from", "BENCH_SRC",
                        "--to", f"BENCH_OURS_{round_}", "--all", "--dest", "archive",
                        "--jobs", str(args.jobs), "--yes", "--json",
                    ),  # fmt: skip
                    env,
                    work / "tmp-ours",
                )
                summary = json.loads(out)
                assert summary["ok"], summary
                message = summary["jobs"][0]["message"]
                assert "match the source by md5" in message, message
                keep("xnat-tui copy (end to end)", (secs, rss, tmp))

                # curl, by hand: every file downloaded (4 at once, one connection each),
                # zipped (stored, as ours sends), the zip uploaded. XNAT's own session zip
                # (?format=zip) cannot be sent back as it is: its streamed STORED entries
                # carry data descriptors, which the import's ZipInputStream refuses.
                temp = work / "tmp-curl"
                shutil.rmtree(temp, ignore_errors=True)
                temp.mkdir()
                config = work / "curl-files.cfg"
                config.write_text(
                    "".join(
                        f'url = "{url}{f["URI"]}"\noutput = "{temp}/files/{n}-{f["Name"]}"\n'
                        for n, f in enumerate(listing)
                    )
                )
                down = run_measured(
                    [
                        "curl", "-sS", "--fail", "-u", "admin:admin", "--create-dirs",
                        "--parallel", "--parallel-max", str(args.jobs), "-K", str(config),
                    ],  # fmt: skip
                    env,
                    temp,
                )
                zpath = temp / "session.zip"
                pack = run_measured(
                    ["zip", "-0", "-q", "-j", "-r", str(zpath), str(temp / "files")], env, temp
                )
                up = run_measured(
                    [
                        "curl", "-sS", "--fail", "-u", "admin:admin", "-X", "POST",
                        "-H", "Expect:", "-H", "Content-Type: application/zip",
                        "-T", str(zpath), f"{url}/data/services/import?{query}",
                    ],  # fmt: skip
                    env,
                    temp,
                )
                steps = {"curl download (4 at once)": down, "zip -0": pack, "curl -T zip": up}
                for name, (secs, rss, tmp, _, _) in steps.items():
                    keep(name, (secs, rss, tmp))
                keep(
                    "curl download+zip+upload",
                    (
                        sum(r[0] for r in steps.values()),
                        max(r[1] for r in steps.values()),
                        max(r[2] for r in steps.values()),
                    ),
                )
                shutil.rmtree(temp, ignore_errors=True)
        finally:
            sandbox.stop()

        print(f"\n{'method':<28} {'seconds':>8} {'MB/s':>8} {'peak RSS':>9} {'temp disk':>10}")
        for name, (secs, rss, tmp) in results.items():
            print(
                f"{name:<28} {secs:8.1f} {total / 1e6 / secs:8.1f} "
                f"{rss / 1e6:7.0f}MB {tmp / 1e6:8.0f}MB"
            )
        ours, ours_rss, ours_tmp = results["xnat-tui copy (end to end)"]
        curl = results["curl download+zip+upload"][0]
        print(f"\nours vs curl download + zip + upload: {curl / ours:.2f}x (goal >= 1.0)")
        print("client CPU seconds: " + ", ".join(f"{k[4:]} {v:.1f}" for k, v in CPU.items()))
        print(f"our peak RSS: {ours_rss / 1e6:.0f} MB; our temp disk: {ours_tmp} bytes (goal 0)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
