"""Detail of the highlighted prearchive entry: scans, last log message, archive preview.

Everything here but the words around it comes from the server: shown as plain text
(``format.plain`` / ``format.assemble``), never parsed as markup.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import DataTable, Static

from xnat_tui.ui.widgets.format import assemble, plain
from xnat_tui.workflow.prearchive import Outcome, PrearchiveRow, SessionDetail, human_size

_OUTCOME_STYLE = {
    Outcome.NEW: ("$success", "NEW"),
    Outcome.MERGE: ("$warning", "MERGE"),
    Outcome.CONFLICT: ("$error", "CONFLICT"),
    Outcome.BLOCKED: ("$text-muted", "NOT NOW"),
    Outcome.UNKNOWN: ("$text-muted", "UNCHECKED"),
}


def header_text(row: PrearchiveRow) -> Content:
    return assemble(
        (f"{row.project} / {row.subject or '-'} / {row.label}", "b"),
        f"  [{row.status}]\n",
        f"StudyInstanceUID {row.study_uid or '-'}\n",
        f"uploaded {row.get('uploaded') or '-'}   scan {row.get('scan_date')} "
        f"{row.get('scan_time')}   {row.get('autoarchive')}\n",
        f"url {row.url}",
    )


def preview_text(detail: SessionDetail) -> Content:
    if detail.preview_error:
        return assemble(("Archive preview unavailable:", "$error"), f" {detail.preview_error}")
    if detail.preview is None:
        return Content("")
    style, word = _OUTCOME_STYLE[detail.preview.outcome]
    return assemble("Archive now → ", (word, f"{style} b"), f": {detail.preview.reason}")


def log_text(detail: SessionDetail) -> Content:
    if detail.log_error:
        return assemble((f"Log unavailable: {detail.log_error}", "$text-muted"))
    text = detail.log.strip()
    if not text:
        return assemble(("No log entries.", "$text-muted"))
    style = "$error" if detail.row.status in ("ERROR", "CONFLICT") else "$text"
    return assemble("Last log: ", (text, style))


class PrearchiveDetail(VerticalScroll):
    DEFAULT_CSS = """
    PrearchiveDetail { height: auto; max-height: 50%; border-top: solid $primary; padding: 0 1; }
    PrearchiveDetail > #detail-scans { height: auto; max-height: 10; }
    PrearchiveDetail > Static { height: auto; }
    """

    def compose(self) -> ComposeResult:
        yield Static("No entry highlighted.", id="detail-header")
        yield Static("", id="detail-preview")
        scans: DataTable[object] = DataTable(id="detail-scans", cursor_type="none")
        scans.add_columns("Scan", "Description", "Files", "Size")
        yield scans
        yield Static("", id="detail-log")

    def clear_detail(self, message: str = "No entry highlighted.") -> None:
        self.query_one("#detail-header", Static).update(plain(message, lines=True))
        self.query_one("#detail-preview", Static).update("")
        self.query_one("#detail-log", Static).update("")
        self.query_one("#detail-scans", DataTable).clear()

    def show_loading(self, row: PrearchiveRow) -> None:
        self.query_one("#detail-header", Static).update(header_text(row))
        self.query_one("#detail-preview", Static).update(assemble(("Loading…", "$text-muted")))

    def show_detail(self, detail: SessionDetail) -> None:
        self.query_one("#detail-header", Static).update(header_text(detail.row))
        self.query_one("#detail-preview", Static).update(preview_text(detail))
        table = self.query_one("#detail-scans", DataTable)
        table.clear()
        for scan in detail.scans:
            files = "?" if scan.files is None else str(scan.files)
            table.add_row(
                plain(scan.id), plain(scan.description, limit=60), files, human_size(scan.size)
            )
        log = log_text(detail)
        if detail.scans_error:
            log = assemble((f"Scans unavailable: {detail.scans_error}", "$error"), "\n") + log
        elif detail.scans:
            log = (
                assemble(
                    f"{len(detail.scans)} scans, {detail.total_files} files, "
                    f"{human_size(detail.total_size)}\n"
                )
                + log
            )
        self.query_one("#detail-log", Static).update(log)
