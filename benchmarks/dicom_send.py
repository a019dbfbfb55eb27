"""DICOM C-STORE throughput: our sender vs dcmtk's ``storescu``, in the same run.

Both send the same generated files to one dcmtk ``storescp`` on loopback (``--fork``
for several associations, ``--ignore`` so the receiver's disk is not what is timed):

* **storescu**: one association, every file (the baseline);
* **ours, 1 association** (goal >= 0.7x storescu) and **ours, N associations** (goal
  > 1.0x): the send engine as ``xnat-tui send --routing none`` runs it (journal included,
  acknowledgements journalled in groups), each in its own process, each with an empty
  scan cache (its own ``XDG_CACHE_HOME``): like storescu, it sees the files for the first
  time, so neither of our runs profits from the other's scan;
* **ours, N associations, folder scanned before**: the same with the scan cache the
  previous run left (as after ``xnat-tui scan``, or in the TUI, where the session was
  scanned before it is sent).

Peak RSS of each sender: its own (``peak_rss.py``). Two sets: many small instances and a few large.
Each sender runs once per round, rounds interleaved, and the median is reported
(``--repeat``, default 3). Usage: ``python benchmarks/dicom_send.py [--small 10000]
[--large 200] [--large-kb 2048] [--associations 4] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from peak_rss import PeakRss  # noqa: E402 - a sibling of this script


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_files(dest: Path, count: int, side: int) -> int:
    """``count`` MR instances of ``side`` x ``side`` 16-bit pixels; returns total bytes."""
    from xnat_tui.dicom.synthetic import SeriesSpec, write_study

    per_series = 500
    series = [
        SeriesSpec("MR", i + 1, f"S{i + 1}", min(per_series, count - i * per_series), side, side)
        for i in range((count + per_series - 1) // per_series)
    ]
    write_study(dest, patient_id="BENCH", series=series)
    return sum(p.stat().st_size for p in dest.rglob("*.dcm"))


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int, int]:
    """(seconds, exit code, peak RSS in KiB) of one process."""
    with PeakRss() as peak:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        peak.watch(proc.pid)
        _pid, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0 and proc.stderr is not None:
        sys.stderr.write(proc.stderr.read().decode(errors="replace")[-2000:])
    return elapsed, code, peak.bytes(usage) // 1024


def run_set(
    name: str, src: Path, total: int, files: int, port: int, n: int, tmp: Path, repeat: int
) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), XDG_STATE_HOME=str(tmp / "state"))
    env["XNAT_TUI_CONFIG"] = str(tmp / "none.toml")
    # TCP_NODELAY=1: dcmtk otherwise waits out delayed ACKs (~90 ms per instance).
    storescu = ["storescu", "-aet", "BENCH", "-aec", "XNAT", "+sd", "+r", "127.0.0.1"]
    senders: list[tuple[str, int, bool]] = [("storescu (1 association)", 0, False)]
    senders += [
        (f"ours ({a} association{'s' if a > 1 else ''}){', scanned before' if w else ''}", a, w)
        for a, w in ((1, False), (n, False), (n, True))
    ]
    # Rounds, each sender once per round in the same order: a load that comes and goes
    # on a shared machine hits every sender alike; each row is the median of its rounds.
    times: dict[str, list[float]] = {label: [] for label, _a, _w in senders}
    rss: dict[str, int] = dict.fromkeys(times, 0)
    for r in range(repeat):
        for label, assoc, warm in senders:
            if assoc == 0:
                cmd, run_env = [*storescu, str(port), str(src)], dict(os.environ, TCP_NODELAY="1")
            else:
                # Cold: a cache no run has used, so like storescu our sender sees the files
                # for the first time. Warm: the cache the cold run with N just filled.
                env["XDG_CACHE_HOME"] = str(tmp / f"cache-{name}-{assoc}")
                if not warm:
                    shutil.rmtree(env["XDG_CACHE_HOME"], ignore_errors=True)
                journal = tmp / f"journal-{name}-{assoc}-{warm}-{r}.sqlite3"
                cmd = [sys.executable, "-m", "xnat_tui", "send", str(src), "--to",
                       f"XNAT@127.0.0.1:{port}", "--routing", "none", "--associations",
                       str(assoc), "--yes", "--json", "--journal", str(journal)]  # fmt: skip
                run_env = env
            secs, code, peak = timed(cmd, run_env)
            assert code == 0, f"{label} failed"
            times[label].append(secs)
            rss[label] = max(rss[label], peak)
    base = statistics.median(times[senders[0][0]])
    mb = total / 1e6
    print(f"\n{name}: {files} instances, {mb:.0f} MB (median of {repeat} rounds)")
    head = f"{'seconds':>8} {'inst/s':>8} {'MB/s':>7} {'vs storescu':>11} {'RSS MB':>7}"
    print(f"  {'sender':<42} {head}")
    for label, secs_all in times.items():
        secs = statistics.median(secs_all)
        print(
            f"  {label:<42} {secs:8.2f} {files / secs:8.0f} {mb / secs:7.1f} "
            f"{base / secs:10.2f}x {rss[label] / 1024:7.0f}"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=10000, help="small instances (default 10000)")
    ap.add_argument("--large", type=int, default=200, help="large instances (default 200)")
    ap.add_argument("--large-kb", type=int, default=2048, help="size of a large one (2048)")
    ap.add_argument("--associations", type=int, default=4, help="ours with N (default 4)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds, median reported (3)")
    args = ap.parse_args()
    for tool in ("storescu", "storescp"):
        if shutil.which(tool) is None:
            print(f"{tool} (dcmtk) is needed", file=sys.stderr)
            return 2
    port = free_port()
    rx = subprocess.Popen(
        ["storescp", "--fork", "--ignore", "-aet", "XNAT", "+xa", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, TCP_NODELAY="1"),
    )
    try:
        with tempfile.TemporaryDirectory(prefix="dicom-send-bench-") as t:
            tmp = Path(t)
            side = int((args.large_kb * 1024 / 2) ** 0.5)
            for name, count, px in (("small", args.small, 8), ("large", args.large, side)):
                if count <= 0:
                    continue
                src = tmp / name
                total = write_files(src, count, px)
                run_set(name, src, total, count, port, args.associations, tmp, max(1, args.repeat))
    finally:
        rx.terminate()
        rx.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
