"""Every key the user can press, gathered from the live bindings (keymap applied)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding, BindingsMap
from textual.containers import Vertical
from textual.dom import DOMNode
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Static

from xnat_tui.ui.widgets.format import plain


@dataclass(frozen=True)
class KeyRow:
    where: str
    keys: str
    description: str
    binding_id: str


def _where(node: DOMNode) -> str:
    title = getattr(node, "HELP_GROUP", None) or getattr(node, "border_title", None)
    if isinstance(title, str) and title:
        return title
    return type(node).__name__.removesuffix("Pane").removesuffix("Screen") or "App"


def collect_keys(screen: Screen[object]) -> list[KeyRow]:
    """Bindings of the app, the screen and every widget on it, after remapping."""
    app = screen.app
    nodes: list[DOMNode] = [app, screen, *screen.walk_children()]
    keymap = getattr(app, "_keymap", {})
    rows: list[KeyRow] = []
    seen: set[tuple[str, str]] = set()
    for node in nodes:
        bindings: BindingsMap = node._bindings.copy()
        if keymap:
            bindings.apply_keymap(keymap)
        by_id: dict[str, list[str]] = {}
        described: dict[str, Binding] = {}
        for key, key_bindings in bindings.key_to_bindings.items():
            for binding in key_bindings:
                if binding.system or not (binding.description or binding.tooltip):
                    continue
                ident = binding.id or binding.action
                by_id.setdefault(ident, []).append(app.get_key_display(binding.with_key(key)))
                described[ident] = binding
        where = "App" if node is app else _where(node)
        for ident, keys in by_id.items():
            marker = (where, ident)
            if marker in seen:
                continue
            seen.add(marker)
            binding = described[ident]
            rows.append(
                KeyRow(where, " ".join(keys), binding.tooltip or binding.description, ident)
            )
    return rows


class HelpScreen(ModalScreen[None]):
    """Opened with ``?``; lists the keys of the screen underneath it."""

    BINDINGS = [
        Binding("escape,q,question_mark", "dismiss", "Close", id="help.close"),
    ]

    def __init__(self, target: Screen[object]) -> None:
        super().__init__()
        self.rows = collect_keys(target)

    def compose(self) -> ComposeResult:
        with Vertical(id="help-dialog", classes="dialog") as box:
            box.border_title = "Keys"
            yield Static(
                "Keys can be remapped in the config file under \\[keymap] by their Id, "
                'e.g. [b]"main.scan" = "ctrl+s"[/b].',
                classes="hint",
            )
            yield DataTable(id="help-table", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        # The Id before the description: a long description pushed it out of sight.
        table.add_columns("Where", "Keys", "Id", "What it does")
        for row in self.rows:
            # Keys come from the user's keymap ("[" is a key): plain text.
            table.add_row(
                *(plain(v) for v in (row.where, row.keys, row.binding_id, row.description))
            )
        table.focus()
