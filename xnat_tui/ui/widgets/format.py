"""Small text formatters shared by the panes.

Byte counts use ``xnat_tui.units.human_bytes`` (decimal units), the same as the command line.
"""

from __future__ import annotations

from xnat_tui.units import human_rate


def rate(bps: float) -> str:
    """Bytes per second as "1.5 MB/s" (decimal units, as on the command line); "—" when idle."""
    return human_rate(bps) if bps > 0 else "—"


def eta(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "—"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def date(dicom_date: str) -> str:
    if len(dicom_date) == 8 and dicom_date.isdigit():
        return f"{dicom_date[:4]}-{dicom_date[4:6]}-{dicom_date[6:]}"
    return dicom_date


def check(on: bool) -> str:
    return "☑" if on else "☐"
