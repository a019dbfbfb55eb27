"""URL forms: XNAT lists ``/prearchive/...``, answers ``/data/...`` and full URLs."""

from __future__ import annotations

import pytest

from xnat_tui.xnat.prearchive_ops import data_uri, listing_url, project_of


@pytest.mark.parametrize(
    "given",
    [
        "/prearchive/projects/P2/20260101_000000000/S1",
        "/data/prearchive/projects/P2/20260101_000000000/S1\r\n",
        "/REST/prearchive/projects/P2/20260101_000000000/S1",
        "http://127.0.0.1:8080/data/prearchive/projects/P2/20260101_000000000/S1",
    ],
)
def test_every_form_maps_to_the_listing_url(given: str) -> None:
    assert listing_url(given) == "/prearchive/projects/P2/20260101_000000000/S1"
    assert data_uri(given) == "/data/prearchive/projects/P2/20260101_000000000/S1"
    assert project_of(given) == "P2"
