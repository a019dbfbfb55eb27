"""Retry timing, the optional bandwidth cap, and the clock the engine paces itself by."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    """Where the engine reads the time and waits: the monotonic clock in the app, a
    controllable one in tests (``tests.unit.transfer.clock.ManualClock``)."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...

    async def wait(self, event: asyncio.Event, seconds: float) -> None:
        """Until ``event`` is set or ``seconds`` have passed, whichever comes first."""
        ...


class MonotonicClock:
    """``time.monotonic`` and the event loop's own sleeping."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def wait(self, event: asyncio.Event, seconds: float) -> None:
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
        # races with the event being set, which would hang close().
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await event.wait()


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

    def __init__(
        self, bytes_per_second: float, burst: float | None = None, *, clock: Clock | None = None
    ) -> None:
        self.rate = bytes_per_second
        self.capacity = burst if burst is not None else max(bytes_per_second / 4, 1 << 20)
        self.clock: Clock = clock or MonotonicClock()
        self._tokens = self.capacity
        self._stamp = self.clock.now()
        self._lock = asyncio.Lock()

    async def take(self, amount: int) -> None:
        if self.rate <= 0:
            return
        async with self._lock:
            while True:
                now = self.clock.now()
                self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens >= amount or self._tokens >= self.capacity:
                    self._tokens -= amount
                    return
                await self.clock.sleep(min(0.25, (amount - self._tokens) / self.rate))
