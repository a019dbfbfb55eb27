"""``xnat-tui move --from P --to Q --yes``: copy, verify against the source, then delete it.

The same options as ``copy`` (see ``commands/copy.py``). The source session is deleted
(``removeFiles=true``) only after every scan of the copy matched it; never before, and
never when that comparison failed. ``--change-primary`` uses XNAT's own move instead.
"""

from __future__ import annotations

from typing import Any

from xnat_tui.commands.copy import add_parser


def register(subparsers: Any) -> None:
    add_parser(subparsers, move=True)
