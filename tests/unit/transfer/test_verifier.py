"""The verifier compares what was sent with the server's listing (xnat.models.RemoteFile)."""

from __future__ import annotations

from xnat_tui.transfer.journal import ManifestEntry, SeriesRecord
from xnat_tui.transfer.types import SeriesState
from xnat_tui.transfer.verifier import _compare
from xnat_tui.xnat.models import RemoteFile


def _series(*files: tuple[int, str]) -> SeriesRecord:
    manifest = [
        ManifestEntry(f"f{i}", f"/d/f{i}", size, 0, md5) for i, (size, md5) in enumerate(files)
    ]
    return SeriesRecord(
        "J", "1.1", 0, 1, "T1", "MR", len(files), 0, SeriesState.SENT, 0, "", "", manifest
    )


def test_digests_and_sizes_are_compared_when_given() -> None:
    sent = _series((10, "AA"), (20, "bb"))
    same = [RemoteFile("a", 10, digest="aa"), RemoteFile("b", 20, digest="bb")]
    assert _compare(sent, same, True, True) == ("md5", True, "")
    other = [RemoteFile("a", 10, digest="aa"), RemoteFile("b", 21, digest="bb")]
    assert _compare(sent, other, True, True)[:2] == ("md5", False)


def test_unknown_sizes_fall_back_to_counts() -> None:
    sent = _series((10, "aa"), (20, "bb"))
    unknown = [RemoteFile("a", None), RemoteFile("b", None)]
    method, ok, _ = _compare(sent, unknown, True, True)
    assert (method, ok) == ("count", True)
    sizes_only = [RemoteFile("a", 20), RemoteFile("b", 10)]
    assert _compare(sent, sizes_only, True, True)[:2] == ("size", True)
