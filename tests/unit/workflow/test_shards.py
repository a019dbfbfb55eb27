"""Shards: N nodes of a job array split the sessions, none twice, none left out."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xnat_tui.workflow.shards import Shard, shard_of

UIDS = st.lists(st.from_regex(r"1\.2\.[0-9]{1,6}(\.[0-9]{1,8}){1,6}", fullmatch=True), max_size=60)


@settings(max_examples=50, deadline=None)
@given(uids=UIDS, count=st.integers(min_value=1, max_value=40))
def test_shards_cover_every_session_exactly_once(uids: list[str], count: int) -> None:
    taken = [uid for i in range(count) for uid in Shard(i, count).select(uids, str)]
    assert sorted(taken) == sorted(uids)


def test_the_split_is_stable_and_spreads() -> None:
    uids = [f"1.2.840.99.{n}" for n in range(1600)]
    counts = [len(Shard(i, 16).select(uids, str)) for i in range(16)]
    assert sum(counts) == 1600 and min(counts) > 60  # ~100 each, none starved
    # Fixed forever: a shard must not move when Python or the machine changes.
    assert shard_of("1.2.840.99.7", 16) == 12


@pytest.mark.parametrize(
    ("text", "message"),
    [("3", "expected I/N"), ("a/4", "expected I/N"), ("4/4", "0 <= I < N"), ("0/0", "N >= 1")],
)
def test_bad_shards_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Shard.parse(text)
