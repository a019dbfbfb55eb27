"""Labels pane: project picker, project settings, subject/session with live validation.

Pure rules run as validators on every keystroke; the merge/conflict check against
the server is requested through a message and answered by a debounced worker on
the screen, so typing never waits for the network.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label, Select, Static

from xnat_tui.ui.validators import LabelRule
from xnat_tui.ui.widgets.format import VisibleControls, plain
from xnat_tui.workflow.workbench import ProjectSummary, RowState, SessionItem


def settings_text(project: ProjectSummary | None) -> Text:
    """Short lines: they must fit the narrow pane at 80x24 (about 28 columns).

    Plain text: the filter comes from the server (a regex such as ``[Ll]ocalizer``)."""
    if project is None:
        return plain("Choose a project to see its upload settings.")
    yes_no = {True: "yes", False: "no"}
    text = "\n".join(
        [
            f"→ {project.destination} · bulk {yes_no[project.allow_bulk_upload]}",
            f"new subjects {yes_no[project.allow_create_subject]} · {len(project.subjects)} exist",
            f"anon script {yes_no[project.anon_script]}",
            f"filter: {project.filter_summary}",
        ]
    )
    return plain(text, lines=True)


class LabelsPane(VerticalScroll):
    HELP_GROUP = "Labels"
    BINDINGS = [
        Binding(
            "escape",
            "leave",
            "Back",
            tooltip="Leave the label fields (back to the Sessions table)",
            id="labels.leave",
        ),
        Binding(
            "ctrl+r",
            "regenerate",
            "Relabel",
            tooltip="Regenerate subject/session labels from the patterns",
            id="labels.regenerate",
        ),
        Binding(
            "ctrl+t",
            "send",
            "Send…",
            tooltip="Send the selected sessions by REST or to a DICOM destination",
            id="labels.send",
        ),
    ]

    @dataclass
    class ProjectChosen(Message):
        project: str

    @dataclass
    class Edited(Message):
        uid: str
        subject: str
        label: str

    @dataclass
    class Regenerate(Message):
        uid: str

    class SendRequested(Message):
        """Send the selected (else the highlighted) sessions: the screen asks where."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.border_title = "Labels"
        self.uid: str | None = None
        self._suggester = SuggestFromList([], case_sensitive=False)
        self._status_shown: tuple[str, str] | None = None

    def compose(self) -> ComposeResult:
        yield Label("Project")
        yield Select[str]([], prompt="choose a project", id="project", compact=True)
        yield Static(settings_text(None), id="project-settings", classes="settings")
        yield Label("Subject")
        yield Input(
            placeholder="subject label",
            highlighter=VisibleControls(),
            id="subject",
            compact=True,
            suggester=self._suggester,
            validators=[LabelRule("subject label")],
            validate_on=["changed", "submitted"],
        )
        yield Label("Session")
        yield Input(
            placeholder="session label",
            highlighter=VisibleControls(),
            id="session",
            compact=True,
            validators=[LabelRule("session label")],
            validate_on=["changed", "submitted"],
        )
        yield Static("", id="label-status", classes="status")

    # ------------------------------------------------------------ filling in

    def set_projects(self, projects: list[tuple[str, str]], current: str | None) -> None:
        select = self.query_one("#project", Select)
        # Project ids and names come from the server: plain text, never markup.
        options = [
            (plain(f"{pid} — {name}" if name and name != pid else pid), pid)
            for pid, name in projects
        ]
        with select.prevent(Select.Changed):
            select.set_options(options)
            if current and any(pid == current for pid, _ in projects):
                select.value = current

    def set_project(self, project: ProjectSummary | None) -> None:
        select = self.query_one("#project", Select)
        if project is not None and select.value != project.id:
            # Chosen elsewhere (command palette, single project): show it here too.
            with select.prevent(Select.Changed):
                try:
                    select.value = project.id
                except Exception:  # not among the options (list not loaded yet)
                    pass
        self.query_one("#project-settings", Static).update(settings_text(project))
        self._suggester = SuggestFromList(project.subjects if project else [], case_sensitive=False)
        self.query_one("#subject", Input).suggester = self._suggester

    def show(self, item: SessionItem | None) -> None:
        """Show the labels of the highlighted session without firing edit messages."""
        same = item is not None and item.uid == self.uid
        self.uid = item.uid if item else None
        subject = self.query_one("#subject", Input)
        session = self.query_one("#session", Input)
        locked = item is None or item.state.in_transfer
        typing = same and (subject.has_focus or session.has_focus)
        # Never rewrite a field under the user's fingers (the model already has it).
        if not typing:
            with subject.prevent(Input.Changed), session.prevent(Input.Changed):
                subject.value = item.subject if item else ""
                session.value = item.label if item else ""
        subject.disabled = session.disabled = locked
        if item is not None:
            subject.validate(subject.value)
            session.validate(session.value)
        self.show_status(item)

    def show_status(self, item: SessionItem | None) -> None:
        status = self.query_one("#label-status", Static)
        if item is None:
            self._status_shown = None
            status.update("Highlight a session to label it.")
            status.set_classes("status")
            return
        local = [
            r.failure_descriptions[0]
            for r in (
                LabelRule("subject label").validate(item.subject),
                LabelRule("session label").validate(item.label),
            )
            if not r.is_valid and r.failure_descriptions
        ]
        text = (
            "\n".join(local)
            if local
            else (f"{item.state}: {item.detail}" if item.detail else item.state)
        )
        if item.state is RowState.ROUTED:
            text += " — press o to follow the routing, o again to keep the chosen project"
        problems = list(item.session.problems) + [
            p for scan in item.session.scans.values() for p in scan.problems
        ]
        if problems:
            kinds = sorted({p.kind for p in problems})
            text += f"\n⚠ {len(problems)} problem(s): {', '.join(kinds)} (details: ctrl+l)"
        kind = (
            "error"
            if local or item.state.blocking or item.state is RowState.FAILED
            else ("warning" if item.state is RowState.MERGE else "ok")
        )
        # Called after every remote check and scan batch, mostly with the same outcome:
        # an update re-lays out the screen, so only a change is drawn.
        if (text, kind) != self._status_shown:
            self._status_shown = (text, kind)
            status.update(plain(text, lines=True))
            status.set_classes(f"status -{kind}")

    # ------------------------------------------------------------ events

    @on(Select.Changed, "#project")
    def _project_changed(self, event: Select.Changed) -> None:
        event.stop()
        if isinstance(event.value, str):
            self.post_message(self.ProjectChosen(event.value))

    @on(Input.Changed, "#subject, #session")
    def _label_changed(self, event: Input.Changed) -> None:
        event.stop()
        if self.uid is None:
            return
        self.post_message(
            self.Edited(
                self.uid,
                self.query_one("#subject", Input).value,
                self.query_one("#session", Input).value,
            )
        )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "regenerate":
            return True if self.uid else None
        return True

    def action_leave(self) -> None:
        # Digits and letters type into the fields; escape gets the pane keys back.
        self.screen.query_one("#sessions-table").focus()

    def action_send(self) -> None:
        self.post_message(self.SendRequested())

    def action_regenerate(self) -> None:
        if self.uid:
            self.post_message(self.Regenerate(self.uid))
