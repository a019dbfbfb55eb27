"""Ask for the variables an anonymization script needs beyond project/subject/session.

XNAT's uploader prompts for them the same way (a script's ``describe`` line gives the
label). Every field is checked as the user types; the dialog only closes with a value
for each, or with None when cancelled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.validation import ValidationResult, Validator
from textual.widgets import Button, Input, Label, Static

from xnat_tui.ui.anon_service import variable_problem
from xnat_tui.ui.screens.dialog import Dialog
from xnat_tui.ui.widgets.format import plain


class VariableValue(Validator):
    def validate(self, value: str) -> ValidationResult:
        problem = variable_problem(value)
        return self.failure(problem, value) if problem else self.success()


class AnonVariablesScreen(Dialog[dict[str, str] | None]):
    HELP_GROUP = "Script variables"

    DEFAULT_CSS = """
    AnonVariablesScreen { align: center middle; }
    AnonVariablesScreen > #anon-vars-box {
        width: 70; max-width: 100%; height: auto; max-height: 90%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    AnonVariablesScreen #anon-vars-intro { color: $text-muted; margin-bottom: 1; }
    AnonVariablesScreen #anon-vars-fields { height: auto; max-height: 20; }
    AnonVariablesScreen .anon-var-label { color: $text; text-style: bold; }
    AnonVariablesScreen .anon-var-error { color: $text-error; height: auto; }
    AnonVariablesScreen Input { width: 1fr; }
    AnonVariablesScreen #anon-vars-buttons { height: auto; align-horizontal: right; }
    """

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="anon.variables.cancel"),
        Binding("ctrl+s", "submit", "Use values", id="anon.variables.submit"),
    ]

    def __init__(
        self,
        names: Sequence[str],
        initial: Mapping[str, str] | None = None,
        *,
        descriptions: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.names = list(dict.fromkeys(names))
        self.initial = dict(initial or {})
        self.descriptions = dict(descriptions or {})

    def compose(self) -> ComposeResult:
        with Vertical(id="anon-vars-box") as box:
            box.border_title = "Script variables"
            yield Static(
                "The anonymization script needs these values for this upload.",
                id="anon-vars-intro",
            )
            with VerticalScroll(id="anon-vars-fields"):
                for i, name in enumerate(self.names):
                    described = self.descriptions.get(name, "")
                    text = f"{name} — {described}" if described else name
                    yield Label(plain(text), classes="anon-var-label")
                    yield Input(
                        self.initial.get(name, ""),
                        placeholder=name,
                        validators=[VariableValue()],
                        id=f"anon-var-{i}",
                    )
                    yield Static("", classes="anon-var-error", id=f"anon-var-error-{i}")
            with Horizontal(id="anon-vars-buttons"):
                yield Button("Use (ctrl+s)", id="anon-vars-ok", variant="primary")
                yield Button("Cancel (esc)", id="anon-vars-cancel")

    def on_mount(self) -> None:
        if self.names:
            self.query_one("#anon-var-0", Input).focus()

    def _inputs(self) -> list[Input]:
        return [self.query_one(f"#anon-var-{i}", Input) for i in range(len(self.names))]

    def _show_problem(self, index: int, value: str) -> str | None:
        problem = variable_problem(value)
        self.query_one(f"#anon-var-error-{index}", Static).update(plain(problem or "", lines=True))
        return problem

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        index = self._index(event.input)
        if index is not None:
            self._show_problem(index, event.value)

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        index = self._index(event.input)
        if index is not None and index + 1 < len(self.names):
            self.query_one(f"#anon-var-{index + 1}", Input).focus()
        else:
            self.action_submit()

    def _index(self, widget: Input) -> int | None:
        wid = widget.id or ""
        if not wid.startswith("anon-var-"):
            return None
        try:
            return int(wid.removeprefix("anon-var-"))
        except ValueError:
            return None

    def action_submit(self) -> None:
        values: dict[str, str] = {}
        first_bad: Input | None = None
        for i, (name, field) in enumerate(zip(self.names, self._inputs(), strict=True)):
            if self._show_problem(i, field.value) is not None:
                field.add_class("-invalid")
                first_bad = first_bad or field
                continue
            values[name] = field.value.strip()
        if first_bad is not None:
            first_bad.focus()
            self.notify("Give every variable a valid value.", severity="error")
            return
        self.dismiss(values)

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#anon-vars-ok")
    def _ok(self) -> None:
        self.action_submit()

    @on(Button.Pressed, "#anon-vars-cancel")
    def _cancel(self) -> None:
        self.dismiss(None)
