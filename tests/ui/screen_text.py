"""Plain-text picture of the current screen, for assertions a user would make by eye.

Read from the app's own screenshot (the SVG a user would save with the screenshot key),
one line per terminal row.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from textual.app import App
from textual.command import DiscoveryHit, Provider
from textual.message import Message
from textual.notifications import Notification

_TEXT = re.compile(r'<text class="[^"]*" x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>', re.S)


def screen_text(app: App[object]) -> str:
    rows: dict[float, list[tuple[float, str]]] = {}
    for x, y, text in _TEXT.findall(app.export_screenshot()):
        rows.setdefault(float(y), []).append((float(x), html.unescape(text)))
    return "\n".join(
        "".join(t for _, t in sorted(cells)).replace("\xa0", " ")
        for _, cells in sorted(rows.items())
    )


def notifications(messages: Sequence[Message]) -> list[Notification]:
    """The toasts among the messages seen by ``run_test(message_hook=...)``."""
    from textual.app import Notify

    return [m.notification for m in messages if isinstance(m, Notify)]


async def palette_entries(provider: Provider) -> dict[str, DiscoveryHit]:
    """What the command palette lists with an empty query, by title."""
    return {hit.text or str(hit.display): hit async for hit in provider.discover()}
