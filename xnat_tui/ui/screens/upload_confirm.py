"""Before anything is queued: what will happen, session by session."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Static

from xnat_tui.transfer.plan import Plan, Verdict
from xnat_tui.ui.screens.dialog import Dialog
from xnat_tui.ui.widgets.format import plain
from xnat_tui.units import human_bytes
from xnat_tui.workflow.workbench import ProjectSummary


def summary(plan: Plan, project: ProjectSummary) -> str:
    send = plan.sendable
    blocked = [j for j in plan.jobs if not j.ok]
    new_subjects = sorted({j.request.subject for j in send if j.new_subject})
    merges = [j for j in send if j.verdict is Verdict.MERGE]
    dropped = sum(len(j.dropped) for j in send)
    excluded = sum(len(j.request.session.series) - len(j.series) - len(j.dropped) for j in send)
    destinations = sorted({str(j.request.destination) for j in send}) or ["project"]
    overwrites = sorted({str(j.request.overwrite) for j in send}) or ["none"]
    projects = sorted({j.request.project for j in send}) or [project.id]
    if projects == [project.id]:
        head = f"Project {project.id} → " + (
            f"{project.destination} (the project's setting)"
            if destinations == ["project"]
            else ", ".join(destinations)
            + f" (your setting; the project says {project.destination})"
        )
    else:
        # Sessions that follow their DICOM routing go to other projects, each with its
        # own prearchive setting: never name only the chosen one.
        others = [p for p in projects if p != project.id]
        head = f"Projects {', '.join(projects)} ({', '.join(others)} as routed) → " + (
            "each project's own setting"
            if destinations == ["project"]
            else ", ".join(destinations) + " (your setting)"
        )
    lines = [
        f"{head}; overwrite: {', '.join(overwrites)}",
        f"{len(send)} session(s), {sum(j.files_total for j in send)} files, "
        f"{human_bytes(sum(j.bytes_total for j in send))}",
        f"New subjects: {', '.join(new_subjects) if new_subjects else 'none'}",
        f"Merges into existing sessions: {len(merges)}",
        f"Series excluded by you: {excluded}; dropped by the import filter: {dropped}",
    ]
    profiles = sorted({j.request.anonymization for j in send})
    anon = ", ".join(profiles) if profiles else "none"
    lines.append(
        f"Anonymization before sending: {anon}"
        + (" (your files are not modified)" if anon != "none" else "")
    )
    if "basic" in profiles:
        kept = sorted(
            {
                name.removeprefix("retain_")
                for j in send
                if j.request.anonymization == "basic"
                for name, on in j.request.anon_options.to_dict().items()
                if on
            }
        )
        lines.append(
            f"Basic Profile keeps: {', '.join(kept) if kept else 'nothing (all options off)'}"
        )
    variables = sorted({(k, v) for j in send for k, v in j.request.variables.items()})
    if variables:
        lines.append("Script variables: " + ", ".join(f"{k}={v}" for k, v in variables))
    if blocked:
        lines.append(f"Not queued (fix first): {len(blocked)}")
    return "\n".join(lines)


class UploadConfirmScreen(Dialog[bool]):
    HELP_GROUP = "Confirm upload"
    BINDINGS = [
        Binding(
            "y",
            "answer(True)",
            "Queue",
            tooltip="Queue the sendable sessions",
            id="confirm_upload.yes",
        ),
        Binding(
            "n,escape",
            "answer(False)",
            "Back",
            tooltip="Go back without queueing",
            id="confirm_upload.no",
        ),
    ]

    def __init__(self, plan: Plan, project: ProjectSummary) -> None:
        super().__init__()
        self.plan = plan
        self.project = project

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="upload-confirm") as box:
            box.border_title = "Queue upload?"
            # Labels, subjects and script variables are data: plain text.
            yield Static(plain(summary(self.plan, self.project), lines=True), id="plan-summary")
            yield DataTable(id="plan-table", cursor_type="row")
            with Horizontal(classes="buttons"):
                yield Button(
                    f"Queue {len(self.plan.sendable)} (y)",
                    id="yes",
                    variant="primary",
                    disabled=not self.plan.sendable,
                )
                yield Button("Back (n)", id="no")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("Target", "Verdict", "Series", "Files", "Size", "Notes")
        palette = self.app.theme_variables
        for job in self.plan.jobs:
            colour = palette.get("success" if job.ok else "error", "")
            notes = "; ".join(i.message for i in job.issues) or (
                "new subject" if job.new_subject else ""
            )
            table.add_row(
                plain(job.target, limit=96),
                Text(str(job.verdict) if job.ok else f"{job.verdict} ✗", style=colour),
                f"{len(job.series)}" + (f" (-{len(job.dropped)})" if job.dropped else ""),
                str(job.files_total),
                human_bytes(job.bytes_total),
                plain(notes, limit=120),
            )
        self.query_one("#yes" if self.plan.sendable else "#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes" and bool(self.plan.sendable))

    def action_answer(self, value: bool) -> None:
        self.dismiss(value and bool(self.plan.sendable))
