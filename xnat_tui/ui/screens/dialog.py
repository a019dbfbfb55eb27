"""What every dialog shares: the key list on ``?``/``f1``, as everywhere else."""

from __future__ import annotations

from typing import TypeVar

from textual.binding import Binding
from textual.screen import ModalScreen

ResultT = TypeVar("ResultT")


class Dialog(ModalScreen[ResultT]):
    """A modal screen (nothing under it takes keys) that still opens the key list: the
    app's ``?``/``f1`` are left out of a modal screen's keys, so it is bound here too,
    under the same id (a remap applies to both). A system binding: listed once, as the
    app's."""

    BINDINGS = [
        Binding("question_mark,f1", "app.help", "Help", id="app.help", system=True),
    ]
