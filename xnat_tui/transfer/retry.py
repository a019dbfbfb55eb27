"""Retry timing and the optional bandwidth cap."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and jitter (5xx, timeouts, drops)."""

    attempts: int = 5  # sends of one series (or commits) before giving up
    base: float = 1.0
    cap: float = 30.0
    jitter: float = 0.3

    def delay(self, attempt: int) -> float:
        raw = min(self.cap, self.base * 2.0 ** max(0, attempt - 1))
        return float(max(0.0, raw * (1 + random.uniform(-self.jitter, self.jitter))))


class TokenBucket:
    """A shared byte budget: every series' body awaits it, so the cap is global."""

    def __init__(self, bytes_per_second: float, burst: float | None = None) -> None:
        self.rate = bytes_per_second
        self.capacity = burst if burst is not None else max(bytes_per_second / 4, 1 << 20)
        self._tokens = self.capacity
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    async def take(self, amount: int) -> None:
        if self.rate <= 0:
            return
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens >= amount or self._tokens >= self.capacity:
                    self._tokens -= amount
                    return
                await asyncio.sleep(min(0.25, (amount - self._tokens) / self.rate))
