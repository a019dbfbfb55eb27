"""UI test settings: no debounce wait, so tests do not idle; same code path otherwise."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_debounce(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("xnat_tui.ui.app.CHECK_DEBOUNCE", 0.0)
