"""UI test settings: short debounce so tests do not idle; same code path otherwise."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _fast_debounce(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("xnat_tui.ui.screens.main.CHECK_DEBOUNCE", 0.05)
    monkeypatch.setattr("xnat_tui.ui.screens.bulk.DEBOUNCE", 0.05)
