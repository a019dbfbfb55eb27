"""Shards for job arrays: each of N nodes takes the sessions whose study hashes to it.

``--shard I/N`` on ``scan`` and ``upload`` keeps only the sessions whose
StudyInstanceUID hashes to shard I (0 ≤ I < N). The hash is SHA-256 of the UID, so every
node, Python version and run agrees, and the N shards cover every session exactly once:
a Slurm array ``--array=0-15`` with ``--shard $SLURM_ARRAY_TASK_ID/16`` uploads one tree
from 16 nodes with no session sent twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"I/N"`` → Shard (ValueError saying what is wrong)."""
        index, sep, count = text.partition("/")
        try:
            i, n = int(index), int(count)
        except ValueError:
            raise ValueError(f"--shard {text!r}: expected I/N, e.g. 0/16") from None
        if not sep or n < 1 or not 0 <= i < n:
            raise ValueError(f"--shard {text!r}: I/N needs N >= 1 and 0 <= I < N")
        return cls(i, n)

    def holds(self, study_uid: str) -> bool:
        return shard_of(study_uid, self.count) == self.index

    def select(self, items: Iterable[T], uid: Callable[[T], str]) -> list[T]:
        return [item for item in items if self.holds(uid(item))]

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(study_uid: str, count: int) -> int:
    digest = hashlib.sha256(study_uid.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count
