"""Send the selected sessions: by REST (the upload review) or to a DICOM destination.

Opened from the Labels pane (ctrl+t). The destinations are REST (today's upload into
the chosen project) and every ``[dicom.NAME]`` profile (with ``--sandbox``, the
sandbox's own receiver as ``sandbox``). The preview under the list shows, for the
highlighted destination, the exact routing values each copy gets and where it goes;
enter sends, escape cancels. A DICOM send is journalled and handed to the send engine
(``app.jobs.ensure(JobKind.SEND, ...)``); the Transfers panel shows it with instances
sent, failed and remaining, and ``T`` there opens prearchive triage on a session that
landed as Unassigned or split.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Label, OptionList, Static
from textual.widgets.option_list import Option

from xnat_tui.text import safe
from xnat_tui.transfer.kinds import JobKind
from xnat_tui.ui.screens.dialog import Dialog
from xnat_tui.ui.widgets.format import plain

if TYPE_CHECKING:
    from xnat_tui.ui.app import XnatTuiApp
    from xnat_tui.workflow.send import SendItem, SendSettings
    from xnat_tui.workflow.workbench import SessionItem

REST = "rest"


class SendScreen(Dialog[str | None]):
    """Choose where to send; the preview shows what is written. Returns the key."""

    HELP_GROUP = "Send"
    DEFAULT_CSS = """
    SendScreen { align: center middle; }
    SendScreen > Vertical {
        width: 90%; height: auto; max-height: 90%;
        border: round $accent; padding: 0 1; background: $surface;
    }
    SendScreen OptionList { height: auto; max-height: 8; }
    SendScreen #send-preview { height: auto; max-height: 16; margin-top: 1; }
    """
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", tooltip="Send nothing", id="send.cancel"),
    ]

    def __init__(
        self,
        title: str,
        destinations: Sequence[tuple[str, str]],
        preview: Callable[[str], list[str]],
    ) -> None:
        super().__init__()
        self.title_text = title
        self.destinations = list(destinations)
        self.preview = preview
        self.shown: list[str] = []  # the preview lines on screen (sanitised)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(plain(self.title_text))
            yield OptionList(
                *[Option(plain(label), id=key) for key, label in self.destinations],
                id="send-destinations",
            )
            yield Static("", id="send-preview")
            yield Static("enter: send to the highlighted destination · escape: cancel")

    def on_mount(self) -> None:
        options = self.query_one("#send-destinations", OptionList)
        options.highlighted = 0
        options.focus()
        self._show(self.destinations[0][0] if self.destinations else "")

    def _show(self, key: str) -> None:
        lines = [safe(line) for line in self.preview(key)] if key else []
        self.shown = lines
        self.query_one("#send-preview", Static).update(plain("\n".join(lines), lines=True))

    @on(OptionList.OptionHighlighted, "#send-destinations")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        self._show(event.option.id or "")

    @on(OptionList.OptionSelected, "#send-destinations")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)


def _plan(
    app: XnatTuiApp, key: str, items: Sequence[SessionItem]
) -> tuple[SendSettings, list[SendItem]]:
    from xnat_tui.transfer.source import from_dicom
    from xnat_tui.workflow.send import plan_labelled, settings_from_profile

    profile = app.config.dicom[key.removeprefix("dicom:")]
    settings = settings_from_profile(profile)
    project = app.workbench.project.id if app.workbench.project is not None else ""
    entries = [(from_dicom(i.session), project, i.subject, i.label) for i in items]
    return settings, plan_labelled(entries, settings)


async def send_selected(screen: Any, items: Sequence[SessionItem]) -> list[str]:
    """The Labels pane's send: choose, confirm, journal, queue (a worker of ``screen``,
    the main screen). Returns the send jobs queued."""
    from xnat_tui.workflow.send import journal_jobs, preview_lines
    from xnat_tui.workflow.workbench import RowState

    app: XnatTuiApp = screen.xapp
    if not items:
        app.notify("Nothing to send: highlight or select sessions first.", severity="warning")
        return []
    project = app.workbench.project.id if app.workbench.project is not None else ""
    destinations = [(REST, f"REST upload into {project or '(choose a project first)'}")]
    destinations += [
        (f"dicom:{name}", f"DICOM {p.ae}@{p.host}:{p.port} ({name})")
        for name, p in sorted(app.config.dicom.items())
    ]
    cache: dict[str, tuple[SendSettings, list[SendItem]]] = {}

    def planned(key: str) -> tuple[SendSettings, list[SendItem]]:
        if key not in cache:
            cache[key] = _plan(app, key, items)
        return cache[key]

    def preview(key: str) -> list[str]:
        if key == REST:
            return [
                f"{len(items)} session(s) through XNAT's import service into "
                f"{project or '(no project chosen)'}; the upload review follows."
            ]
        try:
            settings, plan = planned(key)
        except ValueError as exc:
            return [f"cannot send there: {exc}"]
        return preview_lines(plan, settings)

    title = f"Send {len(items)} session(s) to…"
    key = await app.push_screen_wait(SendScreen(title, destinations, preview))
    if key is None:
        return []
    if key == REST:
        screen.action_upload()
        return []
    uploads, jobs, client = app.uploads, app.jobs, app.client
    if uploads is None or jobs is None or client is None:
        app.notify("Log in to a server first: it verifies what arrives.", severity="warning")
        return []
    try:
        settings, plan = planned(key)
    except ValueError as exc:
        app.notify(safe(str(exc)), title="Send", severity="error")
        return []
    sendable = [p for p in plan if p.ok]
    if not sendable:
        why = plan[0].problem if plan else "nothing to send"
        app.notify(safe(f"Nothing sent: {why}"), title="Send", severity="error")
        return []
    ids = journal_jobs(
        uploads.journal, sendable, settings, server=client.server, username=client.username
    )
    engine = await jobs.ensure(JobKind.SEND, uploads.connection, app.config)
    queue = getattr(engine, "queue", None)
    if queue is not None:
        queue(ids)
    by_uid = {p.session.study_instance_uid: jid for p, jid in zip(sendable, ids, strict=True)}
    for item in items:
        jid = by_uid.get(item.uid)
        if jid:
            item.job_id = jid
            item.state = RowState.QUEUED
            item.selected = False
    refresh = getattr(screen, "sessions", None)
    if refresh is not None:
        refresh.refresh_rows(list(items))
    app.notify(safe(f"Sending {len(ids)} session(s) to {settings.destination}."), title="Transfers")
    return ids


def open_triage(screen: Any, job_id: str) -> bool:
    """Prearchive triage on the entries a verified send found Unassigned or split."""
    from xnat_tui.ui.screens.prearchive import PrearchiveScreen
    from xnat_tui.xnat.prearchive_ops import ClientTriageOps

    app: XnatTuiApp = screen.xapp
    engine = app.jobs.engine(JobKind.SEND) if app.jobs is not None else None
    triage = getattr(engine, "triage", None)
    uris: tuple[str, ...] = triage(job_id) if triage is not None else ()
    client = app.client
    if not uris or client is None:
        app.notify("This transfer left nothing to triage.", severity="warning")
        return False
    # /data/prearchive/projects/{project}/{timestamp}/{folder}
    parts = uris[0].split("/prearchive/projects/", 1)[-1].split("/")
    project = parts[0] if parts and parts[0] else None
    app.push_screen(
        PrearchiveScreen(
            ClientTriageOps(client), project=project, overwrite=app.config.defaults.overwrite
        )
    )
    return True
