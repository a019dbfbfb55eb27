"""ProjectInfo runs the server's own series import filters (xnat.filters) on a plan."""

from __future__ import annotations

from xnat_tui.transfer.server import ProjectInfo
from xnat_tui.transfer.types import SourceSeries
from xnat_tui.xnat.filters import SeriesImportFilter


def _flt(mode: str, patterns: str, scope: str = "project P") -> SeriesImportFilter:
    return SeriesImportFilter.parse({"mode": mode, "list": patterns}, scope)


def test_drop_reason_uses_the_real_filter_semantics() -> None:
    info = ProjectInfo("P", series_filters=[_flt("blacklist", "localizer")])
    # Case-insensitive find semantics, as XNAT's RegExBasedSeriesImportFilter.
    reason = info.drop_reason(SourceSeries("1.1", 1, "3-plane LOCALIZER"))
    assert reason is not None and "project P" in reason and "localizer" in reason
    assert info.drop_reason(SourceSeries("1.2", 2, "T1")) is None


def test_tag_sections_read_the_series_headers() -> None:
    info = ProjectInfo("P", series_filters=[_flt("blacklist", "[ImageType]\nDERIVED")])
    derived = SourceSeries("1.1", 1, "T1", headers={"ImageType": "DERIVED\\SECONDARY"})
    assert info.drop_reason(derived) is not None
    assert info.drop_reason(SourceSeries("1.2", 2, "T1", headers={"ImageType": "ORIGINAL"})) is None


def test_modality_map_and_disabled_filters_keep_everything_but_are_described() -> None:
    off = SeriesImportFilter.parse({"mode": "blacklist", "list": "T1", "enabled": "false"}, "site")
    info = ProjectInfo(
        "P", series_filters=[_flt("modalityMap", "x", "site"), off, _flt("whitelist", "T1")]
    )
    assert len(info.series_checks) == 1  # only the whitelist can be evaluated here
    assert info.drop_reason(SourceSeries("1.1", 1, "T1")) is None
    assert "whitelist" in (info.drop_reason(SourceSeries("1.2", 2, "T2")) or "")
    assert info.filter_descriptions == ["site modalityMap x", "project P whitelist T1"]
