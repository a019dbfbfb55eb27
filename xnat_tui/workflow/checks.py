"""Debounced target checks: rows touched since the last check are classified together.

Typing a label, a scan batch or a pattern change marks rows; one check runs after a
short quiet period and writes each row's state back. A check superseded by a newer one
(cancelled mid-way) leaves its rows pending for the next.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

from xnat_tui.workflow.upload import UploadSession
from xnat_tui.workflow.workbench import RowState, SessionItem, Workbench

Sleep = Callable[[float], Awaitable[None]]


class TargetChecks:
    def __init__(self, workbench: Workbench, *, delay: float, sleep: Sleep = asyncio.sleep):
        self.workbench = workbench
        self.delay = delay
        self._sleep = sleep
        self.pending: set[str] = set()

    def mark(self, uids: Iterable[str]) -> list[SessionItem]:
        """Rows to check at the next run; they show "checking" until then."""
        marked: list[SessionItem] = []
        for uid in uids:
            item = self.workbench.get(uid)
            if item is None or item.state.in_transfer:
                continue
            self.pending.add(uid)
            item.state = RowState.CHECKING
            marked.append(item)
        return marked

    async def run(self, uploads: UploadSession) -> list[SessionItem]:
        """Wait for quiet, classify the pending rows, write states back; the rows checked."""
        await self._sleep(self.delay)
        wb = self.workbench
        uids = [u for u in self.pending if u in wb.items]
        items = [wb.items[u] for u in uids if not wb.items[u].state.in_transfer]
        if not items or wb.project is None:
            self.pending.difference_update(uids)
            return []
        results = await uploads.classify(wb, items)
        self.pending.difference_update(uids)
        for item in items:
            # A row queued while the check ran belongs to the engine now.
            if item.uid in results and not item.state.in_transfer:
                item.state, item.detail = results[item.uid]
        return items
