from __future__ import annotations

import json
from collections.abc import Mapping

from xnat_tui.transfer.server import ProjectInfo
from xnat_tui.transfer.types import SourceSeries
from xnat_tui.xnat.filters import SERIES_DESCRIPTION, SeriesImportFilter, parse_tag


def _filter(
    mode: str, lines: str, scope: str = "project P", enabled: str = "true"
) -> SeriesImportFilter:
    contents = json.dumps({"mode": mode, "enabled": enabled, "list": lines})
    return SeriesImportFilter.parse(contents, scope)


def _drop_reason(
    filters: list[SeriesImportFilter], description: str, headers: Mapping[str, str] | None = None
) -> str | None:
    """Why the planner expects the server to drop this series (None: kept), as it asks."""
    info = ProjectInfo("P", series_filters=[f for f in filters if f.enabled])
    return info.drop_reason(SourceSeries("1.2.3", 1, description, headers=headers or {}))


def _kept(
    filters: list[SeriesImportFilter], description: str, headers: Mapping[str, str] | None = None
) -> bool:
    return _drop_reason(filters, description, headers) is None


def test_blacklist_drops_matches_case_insensitively_with_find_semantics() -> None:
    flt = _filter("blacklist", "localizer\nscout")
    assert not _kept([flt], "3-Plane LOCALIZER")
    assert not _kept([flt], "AAScout")
    assert _kept([flt], "T1_MPRAGE")
    reason = _drop_reason([flt], "Localizer") or ""
    assert "project P" in reason and "localizer" in reason


def test_whitelist_keeps_only_matches() -> None:
    flt = _filter("whitelist", "^T1\n^T2")
    assert _kept([flt], "t1_mprage")
    assert not _kept([flt], "DWI")
    assert "no whitelist pattern" in (_drop_reason([flt], "DWI") or "")


def test_site_and_project_must_both_accept() -> None:
    site = _filter("blacklist", "phoenix", scope="site")
    project = _filter("whitelist", "T1|PhoenixZIP")
    assert _kept([site, project], "T1w")
    assert not _kept([site, project], "PhoenixZIPReport")
    assert not _kept([site, project], "FLAIR")


def test_disabled_filter_keeps_everything() -> None:
    flt = _filter("blacklist", ".*", enabled="false")
    assert not flt.enabled and flt.accepts({SERIES_DESCRIPTION: "anything"}) == (True, "")
    assert _kept([flt], "anything")
    disabled_by_status = SeriesImportFilter.parse(
        json.dumps({"mode": "blacklist", "enabled": "true", "list": ".*"}),
        "site",
        status_enabled=False,
    )
    assert not disabled_by_status.enabled
    assert _kept([disabled_by_status], "anything")


def test_sections_select_other_tags_and_exists_tests() -> None:
    flt = _filter("blacklist", "# comment\n\n[ImageType]\nDERIVED\n[(0018,1030)]\n!EXISTS")
    assert not _kept([flt], "T1", {"ImageType": "DERIVED\\SECONDARY", "ProtocolName": "x"})
    # ProtocolName absent → !EXISTS matches → dropped
    assert not _kept([flt], "T1", {"ImageType": "ORIGINAL"})
    assert _kept([flt], "T1", {"ImageType": "ORIGINAL", "0018,1030": "T1"})


def test_escaped_newlines_as_stored_by_older_uis() -> None:
    flt = SeriesImportFilter.parse(
        '{"mode":"blacklist","enabled":"true","list":"localizer\\\\nscout"}', "site"
    )
    assert [r.pattern for r in flt.rules] == ["localizer", "scout"]


def test_invalid_patterns_are_reported_not_fatal() -> None:
    flt = _filter("blacklist", "([unclosed\nscout")
    assert flt.invalid_patterns == ("([unclosed",)
    assert not _kept([flt], "scout")


def test_modality_map_is_not_evaluated_but_explained() -> None:
    flt = _filter("modalityMap", "")
    assert not flt.evaluable
    kept, why = flt.accepts({SERIES_DESCRIPTION: "anything"})
    assert kept and "not evaluated" in why
    assert _kept([flt], "anything")


def test_parse_tag_forms() -> None:
    assert parse_tag("SeriesDescription") == 0x0008103E
    assert parse_tag("(0008,103E)") == 0x0008103E
    assert parse_tag("0008103e") == 0x0008103E
    assert parse_tag("NotAKeyword") is None
