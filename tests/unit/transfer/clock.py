"""A clock the test moves by hand, for the engine's pacing (``TransferEngine(clock=...)``)."""

from __future__ import annotations

import asyncio
import heapq
import itertools


async def settle(rounds: int = 50) -> None:
    """Let every task that can run without waiting on time run (event-loop turns only)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


class ManualClock:
    """Time stands still until :meth:`advance`; sleepers wake in order of their deadline."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), fut))
        await fut

    async def wait(self, event: asyncio.Event, seconds: float) -> None:
        if event.is_set():
            return
        waiter = asyncio.ensure_future(event.wait())
        sleeper = asyncio.ensure_future(self.sleep(seconds))
        try:
            await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            sleeper.cancel()

    @property
    def sleepers(self) -> int:
        return sum(1 for *_, f in self._sleepers if not f.done())

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking each sleeper at its deadline and letting it run."""
        target = self._now + seconds
        await settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            due, _, fut = heapq.heappop(self._sleepers)
            self._now = max(self._now, due)
            if not fut.done():
                fut.set_result(None)
                await settle()
        self._now = target
        await settle()
