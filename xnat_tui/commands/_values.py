"""Argument value checks shared by the subcommands (argparse ``type=`` functions).

A value argparse refuses is a usage error (exit 2) whose message names what is allowed.
"""

from __future__ import annotations

import argparse


def bandwidth(text: str) -> float:
    """``--bandwidth MBPS``: 0 (unlimited) or a finite rate within the engine's range."""
    from xnat_tui.transfer.retry import BANDWIDTH_RANGE, check_bandwidth

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number: give {BANDWIDTH_RANGE}"
        ) from None
    try:
        return check_bandwidth(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is out of range: give {BANDWIDTH_RANGE}"
        ) from None


def config_bandwidth(value: float) -> str:
    """A problem with the config's ``bandwidth_limit_mbps`` ('' when it is usable)."""
    from xnat_tui.transfer.retry import BANDWIDTH_RANGE, check_bandwidth

    try:
        check_bandwidth(value)
    except ValueError:
        return f"config: bandwidth_limit_mbps = {value!r} is out of range: give {BANDWIDTH_RANGE}"
    return ""
