"""What can be done with the server browser's selection: one list, one entry each.

The browser (``ui/screens/browser.py``) knows nothing of downloads or copies: it
binds each entry's key, lists it in the footer and the command palette, and calls
``run(app, selection)`` with the typed :class:`~xnat_tui.workflow.browse.Selection`.
A workflow adds its entry here (issue 18 adds "Copy to project…" / "Move to
project…"); "Download…" comes first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from xnat_tui.workflow.browse import Selection

if TYPE_CHECKING:
    from xnat_tui.ui.app import XnatTuiApp

ActionRun = Callable[["XnatTuiApp", Selection], Awaitable[None]]

# The app's worker group an action runs in (the quit guard counts the running ones).
ACTION_GROUP = "browser-action"


@dataclass(frozen=True)
class BrowserAction:
    key: str  # a Textual key name, e.g. "d"
    label: str  # footer and palette text
    description: str  # tooltip and palette help
    run: ActionRun
    id: str  # the binding id users remap in config ("browser.download")


async def _download(app: XnatTuiApp, selection: Selection) -> None:
    # Imported when used: the dialog and the download workflow are not needed to browse.
    from xnat_tui.ui.widgets.browser_download import start_download

    await start_download(app, selection)


async def _copy(app: XnatTuiApp, selection: Selection) -> None:
    from xnat_tui.ui.screens.copy import start_copy

    await start_copy(app, selection, move=False)


async def _move(app: XnatTuiApp, selection: Selection) -> None:
    from xnat_tui.ui.screens.copy import start_copy

    await start_copy(app, selection, move=True)


ACTIONS: list[BrowserAction] = [
    BrowserAction(
        "d",
        "Download…",
        "Download the selected sessions/scans to a local folder (parallel, resumable, "
        "verified by MD5)",
        _download,
        "browser.download",
    ),
    BrowserAction(
        "c",
        "Copy to project…",
        "Copy the selected sessions/scans into another project (streamed server to "
        "server, labels checked in the destination, verified against the source)",
        _copy,
        "browser.copy",
    ),
    BrowserAction(
        "m",
        "Move to project…",
        "Move the selected sessions into another project: copy, verify against the "
        "source, then delete the source (asks for the source project ID)",
        _move,
        "browser.move",
    ),
]
