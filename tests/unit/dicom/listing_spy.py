"""Which folders the walk hands to the C lister (``walk._c_list_dir``)."""

from __future__ import annotations

import pytest

from xnat_tui.dicom import walk as walk_mod


def spy_on_c_lister(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every folder the C lister is asked for; the real one still answers."""
    calls: list[str] = []
    real = walk_mod._c_list_dir
    assert real is not None, "the C lister was not compiled"

    def spy(path: str) -> tuple[list[tuple[str, int, int]], list[str]]:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(walk_mod, "_c_list_dir", spy)
    return calls
