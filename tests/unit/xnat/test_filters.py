from __future__ import annotations

import json

from xnat_tui.xnat.filters import SeriesImportFilter, evaluate_series, parse_tag, series_passes


def _filter(
    mode: str, lines: str, scope: str = "project P", enabled: str = "true"
) -> SeriesImportFilter:
    contents = json.dumps({"mode": mode, "enabled": enabled, "list": lines})
    return SeriesImportFilter.parse(contents, scope)


def test_blacklist_drops_matches_case_insensitively_with_find_semantics() -> None:
    flt = _filter("blacklist", "localizer\nscout")
    assert not series_passes([flt], "3-Plane LOCALIZER")
    assert not series_passes([flt], "AAScout")
    assert series_passes([flt], "T1_MPRAGE")
    decision = evaluate_series([flt], "Localizer")
    assert "project P" in decision.reason and "localizer" in decision.reason


def test_whitelist_keeps_only_matches() -> None:
    flt = _filter("whitelist", "^T1\n^T2")
    assert series_passes([flt], "t1_mprage")
    assert not series_passes([flt], "DWI")
    assert "no whitelist pattern" in evaluate_series([flt], "DWI").reason


def test_site_and_project_must_both_accept() -> None:
    site = _filter("blacklist", "phoenix", scope="site")
    project = _filter("whitelist", "T1|PhoenixZIP")
    assert series_passes([site, project], "T1w")
    assert not series_passes([site, project], "PhoenixZIPReport")
    assert not series_passes([site, project], "FLAIR")


def test_disabled_filter_keeps_everything() -> None:
    flt = _filter("blacklist", ".*", enabled="false")
    assert series_passes([flt], "anything")
    disabled_by_status = SeriesImportFilter.parse(
        json.dumps({"mode": "blacklist", "enabled": "true", "list": ".*"}),
        "site",
        status_enabled=False,
    )
    assert series_passes([disabled_by_status], "anything")


def test_sections_select_other_tags_and_exists_tests() -> None:
    flt = _filter("blacklist", "# comment\n\n[ImageType]\nDERIVED\n[(0018,1030)]\n!EXISTS")
    assert not series_passes([flt], "T1", {"ImageType": "DERIVED\\SECONDARY", "ProtocolName": "x"})
    # ProtocolName absent → !EXISTS matches → dropped
    assert not series_passes([flt], "T1", {"ImageType": "ORIGINAL"})
    assert series_passes([flt], "T1", {"ImageType": "ORIGINAL", "0018,1030": "T1"})


def test_escaped_newlines_as_stored_by_older_uis() -> None:
    flt = SeriesImportFilter.parse(
        '{"mode":"blacklist","enabled":"true","list":"localizer\\\\nscout"}', "site"
    )
    assert [r.pattern for r in flt.rules] == ["localizer", "scout"]


def test_invalid_patterns_are_reported_not_fatal() -> None:
    flt = _filter("blacklist", "([unclosed\nscout")
    assert flt.invalid_patterns == ("([unclosed",)
    assert not series_passes([flt], "scout")


def test_modality_map_is_not_evaluated_but_explained() -> None:
    flt = _filter("modalityMap", "")
    decision = evaluate_series([flt], "anything")
    assert decision.kept and "not evaluated" in decision.reason


def test_parse_tag_forms() -> None:
    assert parse_tag("SeriesDescription") == 0x0008103E
    assert parse_tag("(0008,103E)") == 0x0008103E
    assert parse_tag("0008103e") == 0x0008103E
    assert parse_tag("NotAKeyword") is None
