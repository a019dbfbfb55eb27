"""Messages the App sends to whichever screen is active."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message


@dataclass
class TargetsChecked(Message):
    """These workbench rows have their target state from a fresh check."""

    uids: tuple[str, ...]
