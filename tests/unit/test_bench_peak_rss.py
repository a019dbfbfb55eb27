"""The benchmarks' peak RSS is the child's own, not the benchmark script's.

``wait4`` alone reported a small child started from a large parent as large as the
parent (exec keeps the old memory map's high-water mark): every baseline's memory figure
was the benchmark script's own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.benchmarks import load_benchmark_module

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")


PeakRss = load_benchmark_module("peak_rss").PeakRss

# A child that holds ``MiB`` of touched memory for a moment, then exits.
HOLD = (
    "import sys, time; b = bytearray(int(sys.argv[1]) << 20); "
    "b[::4096] = b'x' * len(b[::4096]); time.sleep(0.3)"
)


def _measure(mib: int) -> int:
    with PeakRss() as peak:
        proc = subprocess.Popen([sys.executable, "-c", HOLD, str(mib)])
        peak.watch(proc.pid)
        _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return int(peak.bytes(usage))


def test_a_small_child_of_a_large_parent_is_measured_small() -> None:
    ballast = bytearray(300 << 20)
    ballast[::4096] = b"x" * len(ballast[::4096])  # this process now holds 300 MiB
    measured = _measure(20)
    assert 20 << 20 <= measured < 120 << 20, measured / 2**20
    del ballast


def test_a_child_larger_than_its_parent_is_measured_whole() -> None:
    measured = _measure(400)
    assert measured >= 400 << 20, measured / 2**20


def test_every_benchmark_takes_its_peaks_through_peak_rss() -> None:
    for path in (ROOT / "benchmarks").glob("*.py"):
        if path.name != "peak_rss.py":
            assert "ru_maxrss" not in path.read_text(), f"{path.name} reads wait4's peak itself"
