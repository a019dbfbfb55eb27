"""Keeps recent log records in memory so the log screen can show them.

Domain modules log through the standard ``logging`` module; this handler
collects their records (and the UI's own) without knowing about Textual.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class LogLine:
    when: float
    level: str
    source: str
    message: str

    def render(self) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(self.when))
        return f"{stamp} {self.level:<7} {self.source}: {self.message}"


class LogBuffer(logging.Handler):
    def __init__(self, capacity: int = 2000) -> None:
        super().__init__(level=logging.INFO)
        self.lines: deque[LogLine] = deque(maxlen=capacity)
        # Total ever added: lets a viewer poll for "what is new since N" from the
        # UI thread while worker threads keep appending.
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not kill the UI
            message = str(record.msg)
        if record.exc_info and record.exc_info[1] is not None:
            message = f"{message} ({record.exc_info[1]!r})"
        self.add(record.levelname, record.name.removeprefix("xnat_tui."), message, record.created)

    def add(self, level: str, source: str, message: str, when: float | None = None) -> LogLine:
        line = LogLine(when if when is not None else time.time(), level, source, message)
        self.lines.append(line)
        self.count += 1
        return line

    def since(self, seen: int) -> list[LogLine]:
        """Lines added after the caller had seen ``seen`` of them (bounded by capacity)."""
        new = self.count - seen
        if new <= 0:
            return []
        snapshot = list(self.lines)
        return snapshot[-min(new, len(snapshot)) :]
