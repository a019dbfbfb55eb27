"""Byte counts as people read them, for the command-line output (decimal units)."""

from __future__ import annotations


def human_bytes(n: float) -> str:
    """1,500 -> "1.5 KB"; units of 1000, as in MB/s rates."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def human_rate(bytes_per_second: float) -> str:
    """1,500,000 -> "1.5 MB/s"."""
    return f"{human_bytes(bytes_per_second)}/s"
