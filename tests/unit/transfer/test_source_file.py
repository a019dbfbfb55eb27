"""SourceFile: built from the scan's text paths without parsing them, still a value."""

from __future__ import annotations

from pathlib import Path

import pytest

from xnat_tui.transfer.types import SourceFile


def test_text_and_path_make_the_same_file() -> None:
    a = SourceFile("/data/s1/1.dcm", 10, 1.5, "1.2.3")
    b = SourceFile(Path("/data/s1/1.dcm"), 10, 1.5, "1.2.3")
    assert a == b and hash(a) == hash(b)
    assert a.path == Path("/data/s1/1.dcm") and a.path_str == "/data/s1/1.dcm"
    assert len({a, b, SourceFile("/data/s1/2.dcm", 10)}) == 2
    assert "1.dcm" in repr(a)


def test_it_is_immutable() -> None:
    f = SourceFile("/data/1.dcm", 1)
    with pytest.raises(AttributeError):
        f.size = 2  # type: ignore[misc]


def test_archive_member_paths_keep_their_text() -> None:
    f = SourceFile("/data/a.zip!s1/1.dcm", 1)
    assert f.path_str == str(f.path) == "/data/a.zip!s1/1.dcm"
