"""What a journalled job does. Every workflow shares one journal, so each job says
which engine runs it and which way its bytes go."""

from __future__ import annotations

from enum import StrEnum


class JobKind(StrEnum):
    UPLOAD = "upload"  # local files -> import service (REST)
    SEND = "send"  # local files -> a DICOM receiver (C-STORE)
    DOWNLOAD = "download"  # server files -> local disk
    COPY = "copy"  # server project -> server project, source kept
    MOVE = "move"  # copy, verify, then delete the source

    @property
    def creates_sessions(self) -> bool:
        """The job makes a session on a server: other jobs for the same study and
        project are duplicates to guard against. A download only reads."""
        return self is not JobKind.DOWNLOAD

    def word(self, term: str) -> str:
        """A word of the journal (its states and steps speak of uploads: sending, sent,
        send) as this kind of job says it, for people to read."""
        return _WORDS.get(self, {}).get(term, term)

    @property
    def arrow(self) -> str:
        """The direction, as the Transfers panel and ``transfers list`` show it."""
        return _ARROWS[self]


_ARROWS = {
    JobKind.UPLOAD: "↑ upload",
    JobKind.SEND: "→ dicom",
    JobKind.DOWNLOAD: "↓ download",
    JobKind.COPY: "⇄ copy",
    JobKind.MOVE: "⇄ move",
}

_WORDS = {
    JobKind.DOWNLOAD: {"sending": "receiving", "sent": "received", "send": "fetch"},
}
