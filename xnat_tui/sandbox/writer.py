"""One worker thread for every change to the prearchive and the archive.

Placing a large upload's files, building session documents, archiving (file moves,
the project anon script, one SQLite row per file) and deleting sessions take
seconds for big sessions; on the event loop they would freeze every other request
(listings, logins, the next series streaming in). They run here instead, one at a
time: a single thread keeps the old guarantee that two uploads of one study cannot
both create a prearchive row, and that an archive never interleaves with a move or a
delete of the same session (prearchive or archived). Quick single-row edits (PUT of a
subject or experiment, config) stay on the loop.

``app[WRITER].run(fn, *args)`` awaits ``fn(*args)`` on that thread; exceptions
(including aiohttp's HTTP errors) propagate to the caller. ``setup(app)`` creates the
writer and shuts it down after the server stops, before the store is closed.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from aiohttp import web

T = TypeVar("T")


class Writer:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandbox-writer")

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    def shutdown(self) -> None:
        """Wait for the running job (a request cancelled at shutdown still finishes)."""
        self._pool.shutdown(wait=True)


WRITER = web.AppKey("writer", Writer)


async def _shutdown(app: web.Application) -> None:
    await asyncio.to_thread(app[WRITER].shutdown)


def setup(app: web.Application) -> None:
    app[WRITER] = Writer()
    app.on_cleanup.append(_shutdown)
