"""Folders pane: a directory-only tree; mark folders and start a background scan."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DirectoryTree, ProgressBar, Static
from textual.widgets._directory_tree import DirEntry
from textual.widgets._tree import TreeNode
from textual.worker import Worker

from xnat_tui.dicom.archives import SEP, archive_kind, children, is_member
from xnat_tui.ui.widgets.format import plain


class FolderTree(DirectoryTree):
    """Directories only: files are counted by the scan worker, never stat'ed here."""

    def __init__(self, path: Path, **kwargs: object) -> None:
        super().__init__(path, **kwargs)  # type: ignore[arg-type]
        self.marked: set[Path] = set()

    def process_label(self, label: str | Text) -> Text:
        """Folder names are data (``[b]x``, ``T1 [/MPRAGE]``, an ESC, bytes that are not
        UTF-8): shown as they are, never parsed as markup."""
        return plain(label) if isinstance(label, str) else label

    @staticmethod
    def _safe_is_dir(path: Path) -> bool:
        """Archives open like folders (expanding one lists what it holds)."""
        if archive_kind(path.name) is not None or is_member(str(path)):
            return True
        return DirectoryTree._safe_is_dir(path)

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        # Runs in DirectoryTree's loader thread, so the is_dir() calls stay off the loop.
        # Archives (.zip, .tgz, ... any case) are folders here: they expand and are marked
        # and scanned like folders; their content is listed without extracting anything.
        return [p for p in paths if not p.name.startswith(".") and self._safe_is_dir(p)]

    def _directory_content(self, location: Path, worker: Worker[object]) -> Iterator[Path]:
        text = str(location)
        if is_member(text) or (archive_kind(location.name) is not None and location.is_file()):
            try:
                found = children(text)
            except Exception:  # noqa: BLE001 - a damaged archive: nothing to expand
                return
            for child in found:
                if worker.is_cancelled:
                    return
                yield Path(child)
            return
        yield from super()._directory_content(location, worker)

    def _populate_node(self, node: TreeNode[DirEntry], content: Iterable[Path]) -> None:
        # Everything left after filter_paths is a directory or an archive: don't stat
        # again on the loop.
        node.remove_children()
        for path in content:
            label = path.name.rsplit(SEP, 1)[-1]
            if archive_kind(label) is not None:
                label = f"{label} (archive)"
            node.add(label, data=DirEntry(path), allow_expand=True)
        node.expand()

    def render_label(self, node: TreeNode[DirEntry], base_style, style):  # type: ignore[no-untyped-def]
        label = super().render_label(node, base_style, style)
        if node.data is not None and node.data.path in self.marked:
            return Text.assemble(("● ", "bold"), label)
        return label

    @property
    def highlighted_path(self) -> Path | None:
        node = self.cursor_node
        return node.data.path if node is not None and node.data is not None else None


class FoldersPane(Vertical):
    HELP_GROUP = "Folders"
    BINDINGS = [
        Binding(
            "m", "mark", "Mark", tooltip="Mark/unmark the folder for scanning", id="folders.mark"
        ),
        Binding(
            "s",
            "scan",
            "Scan",
            tooltip="Scan the marked folders (or the highlighted one)",
            id="folders.scan",
        ),
        Binding(
            "x", "cancel_scan", "Stop scan", tooltip="Stop the running scan", id="folders.cancel"
        ),
        Binding(
            "backspace",
            "up",
            "Parent",
            tooltip="Show the parent folder as the root",
            id="folders.up",
        ),
    ]

    @dataclass
    class ScanRequested(Message):
        paths: list[Path]

    class CancelRequested(Message):
        pass

    def __init__(self, root: Path, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.root = root
        self.border_title = "Folders"
        self.scanning = False

    def compose(self) -> ComposeResult:
        yield FolderTree(self.root, id="folder-tree")
        yield Static("Mark folders with m, scan with s", id="scan-status")
        yield ProgressBar(id="scan-progress", show_eta=False, show_percentage=True)

    @property
    def folder_tree(self) -> FolderTree:
        return self.query_one(FolderTree)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel_scan":
            return self.scanning
        if action == "scan":
            return None if self.scanning else True
        return True

    def action_mark(self) -> None:
        tree = self.folder_tree
        path = tree.highlighted_path
        if path is None:
            return
        if path in tree.marked:
            tree.marked.discard(path)
        else:
            tree.marked.add(path)
        tree.refresh()

    def action_scan(self) -> None:
        tree = self.folder_tree
        paths = sorted(tree.marked) or (
            [tree.highlighted_path] if tree.highlighted_path is not None else []
        )
        if paths:
            self.post_message(self.ScanRequested(paths))

    def action_cancel_scan(self) -> None:
        self.post_message(self.CancelRequested())

    def action_up(self) -> None:
        parent = Path(self.folder_tree.path).resolve().parent
        self.folder_tree.path = parent

    def set_scanning(self, on: bool) -> None:
        self.scanning = on
        self.set_class(on, "-scanning")
        self.refresh_bindings()

    def show_progress(self, text: str, fraction: float | None) -> None:
        self.query_one("#scan-status", Static).update(plain(text, lines=True))
        bar = self.query_one(ProgressBar)
        if fraction is None:
            bar.update(total=None)
        else:
            bar.update(total=100, progress=round(fraction * 100, 1))
