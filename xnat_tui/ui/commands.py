"""Command palette: only the commands that make sense on the current screen, right now."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

from xnat_tui.transfer.types import JobState

if TYPE_CHECKING:
    from xnat_tui.ui.app import XnatTuiApp


class WorkbenchCommands(Provider):
    def _commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        from xnat_tui.ui.screens.main import MainScreen

        app = cast("XnatTuiApp", self.app)
        screen = self.screen
        out: list[tuple[str, str, Callable[[], object]]] = [
            ("Show keys", "List every key binding", app.action_help),
            ("Show log", "Open the application log", app.action_show_log),
        ]
        if isinstance(screen, MainScreen):

            def enabled(action: str) -> bool:
                return screen.check_action(action, ()) is True

            out.append(
                (
                    "Scan highlighted folder",
                    "Scan the folder under the cursor (or the marked ones)",
                    screen.folders.action_scan,
                )
            )
            if screen.folders.scanning:
                out.append(
                    ("Stop scan", "Cancel the running scan", screen.folders.action_cancel_scan)
                )
            if enabled("upload"):
                out.append(
                    (
                        "Upload selected sessions",
                        "Review the plan and queue the uploads",
                        screen.action_upload,
                    )
                )
            if enabled("bulk"):
                out.append(
                    (
                        "Bulk label sessions",
                        "Apply subject/session patterns to many sessions",
                        screen.action_bulk,
                    )
                )
            if enabled("refresh_project"):
                out.append(
                    (
                        "Refresh project",
                        "Reload subjects and sessions from the server",
                        screen.action_refresh_project,
                    )
                )
            out.append(
                (
                    "Browse server",
                    "Projects, subjects, sessions and scans on the server; select and download",
                    screen.action_browse,
                )
            )
            if enabled("prearchive"):
                out.append(
                    ("Prearchive triage", "Open the prearchive screen", screen.action_prearchive)
                )
            out.append(
                (
                    "Toggle transfers panel",
                    "Expand the transfers panel to full screen or dock it",
                    screen.action_toggle_transfers,
                )
            )
            for label, project_id in self._projects(app):
                out.append(
                    (
                        f"Use project {label}",
                        "Upload the sessions to this project",
                        partial(screen.choose_project, project_id),
                    )
                )
        if app.transfers.unfinished:
            out.append(
                (
                    "Pause all transfers",
                    "Pause every unfinished job",
                    partial(app.job_action, "pause_all", None),
                )
            )
            out.append(
                (
                    "Resume all transfers",
                    "Resume paused jobs",
                    partial(app.job_action, "resume_all", None),
                )
            )
        if any(r.state is JobState.FAILED for r in app.transfers.jobs.values()):
            out.append(
                (
                    "Retry failed transfers",
                    "Queue every failed job again",
                    partial(app.job_action, "retry", None),
                )
            )
        return out

    @staticmethod
    def _projects(app: XnatTuiApp) -> list[tuple[str, str]]:
        projects = app.uploads.known_projects if app.uploads is not None else []
        return [
            (p.id + (f" ({p.secondary_id})" if p.secondary_id not in ("", p.id) else ""), p.id)
            for p in projects
        ]

    async def discover(self) -> Hits:
        for name, help_text, callback in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
