"""Detail of the highlighted prearchive entry: scans, last log message, archive preview."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.markup import escape
from textual.widgets import DataTable, Static

from xnat_tui.workflow.prearchive import Outcome, PrearchiveRow, SessionDetail, human_size

_OUTCOME_STYLE = {
    Outcome.NEW: ("$success", "NEW"),
    Outcome.MERGE: ("$warning", "MERGE"),
    Outcome.CONFLICT: ("$error", "CONFLICT"),
    Outcome.BLOCKED: ("$text-muted", "NOT NOW"),
    Outcome.UNKNOWN: ("$text-muted", "UNCHECKED"),
}


def header_text(row: PrearchiveRow) -> str:
    lines = [
        f"[b]{escape(row.project)} / {escape(row.subject or '-')} / {escape(row.label)}[/b]"
        f"  [{escape(row.status)}]",
        f"StudyInstanceUID {escape(row.study_uid or '-')}",
        f"uploaded {escape(row.get('uploaded') or '-')}   scan {escape(row.get('scan_date'))} "
        f"{escape(row.get('scan_time'))}   {escape(row.get('autoarchive'))}",
        f"url {escape(row.url)}",
    ]
    return "\n".join(lines)


def preview_text(detail: SessionDetail) -> str:
    if detail.preview_error:
        return f"[$error]Archive preview unavailable:[/] {escape(detail.preview_error)}"
    if detail.preview is None:
        return ""
    style, word = _OUTCOME_STYLE[detail.preview.outcome]
    return f"Archive now → [{style} b]{word}[/]: {escape(detail.preview.reason)}"


def log_text(detail: SessionDetail) -> str:
    if detail.log_error:
        return f"[$text-muted]Log unavailable: {escape(detail.log_error)}[/]"
    text = detail.log.strip()
    if not text:
        return "[$text-muted]No log entries.[/]"
    style = "$error" if detail.row.status in ("ERROR", "CONFLICT") else "$text"
    return f"Last log: [{style}]{escape(text)}[/]"


class PrearchiveDetail(VerticalScroll):
    DEFAULT_CSS = """
    PrearchiveDetail { height: auto; max-height: 50%; border-top: solid $primary; padding: 0 1; }
    PrearchiveDetail > #detail-scans { height: auto; max-height: 10; }
    PrearchiveDetail > Static { height: auto; }
    """

    def compose(self) -> ComposeResult:
        yield Static("No entry highlighted.", id="detail-header")
        yield Static("", id="detail-preview")
        scans: DataTable[str] = DataTable(id="detail-scans", cursor_type="none")
        scans.add_columns("Scan", "Description", "Files", "Size")
        yield scans
        yield Static("", id="detail-log")

    def clear_detail(self, message: str = "No entry highlighted.") -> None:
        self.query_one("#detail-header", Static).update(message)
        self.query_one("#detail-preview", Static).update("")
        self.query_one("#detail-log", Static).update("")
        self.query_one("#detail-scans", DataTable).clear()

    def show_loading(self, row: PrearchiveRow) -> None:
        self.query_one("#detail-header", Static).update(header_text(row))
        self.query_one("#detail-preview", Static).update("[$text-muted]Loading…[/]")

    def show_detail(self, detail: SessionDetail) -> None:
        self.query_one("#detail-header", Static).update(header_text(detail.row))
        self.query_one("#detail-preview", Static).update(preview_text(detail))
        table = self.query_one("#detail-scans", DataTable)
        table.clear()
        for scan in detail.scans:
            files = "?" if scan.files is None else str(scan.files)
            table.add_row(scan.id, scan.description, files, human_size(scan.size))
        log = log_text(detail)
        if detail.scans_error:
            log = f"[$error]Scans unavailable: {escape(detail.scans_error)}[/]\n{log}"
        elif detail.scans:
            log = (
                f"{len(detail.scans)} scans, {detail.total_files} files, "
                f"{human_size(detail.total_size)}\n{log}"
            )
        self.query_one("#detail-log", Static).update(log)
