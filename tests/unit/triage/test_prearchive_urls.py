"""URL forms: XNAT lists ``/prearchive/...``, answers ``/data/...`` and full URLs."""

from __future__ import annotations

import pytest

from xnat_tui.xnat.errors import ProtocolError
from xnat_tui.xnat.prearchive_ops import data_uri, listing_url, project_of, table_rows


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


def test_tables_are_strings_and_bad_payloads_say_where() -> None:
    rows = table_rows({"ResultSet": {"Result": [{"a": 1, "b": None}]}}, "x")
    assert rows == [{"a": "1", "b": ""}]
    with pytest.raises(ProtocolError, match="from /data/prearchive"):
        table_rows({"nope": 1}, "/data/prearchive")
