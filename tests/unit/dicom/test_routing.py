"""Routing proposals: XNAT's Project:/Subject:/Session: form and configured patterns."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.dicom import DicomFactory
from xnat_tui.config import Defaults, RoutingPattern
from xnat_tui.dicom.model import RoutingProposal
from xnat_tui.dicom.routing import Pattern, invalid_patterns, propose, xnat_assignment
from xnat_tui.dicom.scan import scan_all
from xnat_tui.dicom.synthetic import SeriesSpec


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        # The cases checked against XNAT's Java regex (xnat-api.md §8.1).
        ("Project: P1 Subject: S1", "Project", "P1"),
        ("project:P1;subject:S", "Project", "P1"),
        ("project:P1;subject:S", "Subject", "S"),
        ("xProject:P1", "Project", ""),
        ("Project:P.1", "Project", ""),
        ("Project: P1 Subject: S01 Session: S01_MR1 AA: true", "Session", "S01_MR1"),
        ("Project: P1 Subject: S01 Session: S01_MR1 AA: true", "AA", "true"),
        ("notes, Project: STUDY-A, more", "Project", "STUDY-A"),
        ("no routing here", "Project", ""),
    ],
)
def test_xnat_assignment_regex(text: str, key: str, expected: str) -> None:
    assert xnat_assignment(text, key) == expected


def test_precedence_patterns_first_then_xnat_tags_in_xnat_order() -> None:
    fields = {
        "StudyDescription": "xnat://PILOT/SUBJ/SESS",
        "StudyComments": "Project: FROMSTUDY Subject: S2",
        "PatientComments": "Project: FROMPATIENT",
        "AdditionalPatientHistory": "Session: E9",
    }
    out = propose(fields, Defaults().routing_patterns)
    assert out == [
        RoutingProposal("PILOT", "SUBJ", "SESS", "pattern:StudyDescription"),
        RoutingProposal("FROMPATIENT", "", "", "PatientComments"),
        RoutingProposal("FROMSTUDY", "S2", "", "StudyComments"),
        RoutingProposal("", "", "E9", "AdditionalPatientHistory"),
    ]


def test_nothing_to_propose() -> None:
    assert propose({"StudyDescription": "MR Brain"}, Defaults().routing_patterns) == []


def test_bad_patterns_are_reported_not_raised() -> None:
    bad = [Pattern("StudyDescription", "("), Pattern("StudyDescription", "no groups")]
    assert len(invalid_patterns(bad)) == 2
    assert propose({"StudyDescription": "anything"}, bad) == []


def test_site_pattern_on_a_tag_the_scanner_does_not_read_by_default(
    tmp_path: Path, dicom_factory: DicomFactory
) -> None:
    dicom_factory(
        tmp_path / "in",
        series=[SeriesSpec("MR", 1, "T1", 1)],
        extra={"InstitutionalDepartmentName": "route=NEURO/N001/N001_01"},
    )
    pattern = RoutingPattern(
        tag="InstitutionalDepartmentName",
        regex=r"route=(?P<project>\w+)/(?P<subject>\w+)/(?P<session>\w+)",
    )
    summary = scan_all([tmp_path / "in"], use_cache=False, routing_patterns=[pattern])
    (session,) = summary.sessions
    assert session.routing == [
        RoutingProposal("NEURO", "N001", "N001_01", "pattern:InstitutionalDepartmentName")
    ]


ABC_CONFIG = (
    "[defaults]\n"
    'routing_patterns = [{tag = "StudyDescription", '
    'regex = "^(?P<project>[A-Z]+)-(?P<subject>\\\\d+)$"}]\n'
)
ABC = RoutingProposal("ABC", "042", "", "pattern:StudyDescription")


def test_the_scan_command_uses_the_config_files_patterns(
    tmp_path: Path,
    dicom_factory: DicomFactory,
    isolated_dirs: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    from xnat_tui.cli import main

    (isolated_dirs / "config.toml").write_text(ABC_CONFIG)
    dicom_factory(tmp_path / "in", study_description="ABC-042")
    assert main(["scan", "--json", str(tmp_path / "in")]) == 0
    (session,) = json.loads(capsys.readouterr().out)["sessions"]
    assert session["routing"] == ABC.to_json()


async def test_the_tuis_scan_uses_the_config_files_patterns(
    tmp_path: Path, dicom_factory: DicomFactory, isolated_dirs: Path
) -> None:
    from xnat_tui.dicom.model import ScanSummary
    from xnat_tui.ui.launch import scan_tree

    (isolated_dirs / "config.toml").write_text(ABC_CONFIG)
    dicom_factory(tmp_path / "in", study_description="ABC-042")
    summaries = [e async for e in scan_tree([tmp_path / "in"]) if isinstance(e, ScanSummary)]
    (session,) = summaries[0].sessions
    assert session.routing == [ABC]


def test_a_scan_uses_the_patterns_passed_in_and_never_reads_the_config(
    tmp_path: Path,
    dicom_factory: DicomFactory,
    isolated_dirs: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from xnat_tui import config

    (isolated_dirs / "config.toml").write_text("this is [not toml\n")

    def no_reading(*args: object, **kwargs: object) -> config.Config:
        raise AssertionError("the scan read the config file")

    monkeypatch.setattr(config, "load", no_reading)
    dicom_factory(tmp_path / "in", study_description="ABC-042")
    pattern = Pattern("StudyDescription", r"^(?P<project>[A-Z]+)-(?P<subject>\d+)$")
    for cache in (False, True):  # a fresh scan, then one the tree memo may answer
        summary = scan_all(
            [tmp_path / "in"],
            use_cache=cache,
            cache_path=tmp_path / "cache.sqlite3",
            routing_patterns=[pattern],
        )
        assert summary.problems == []
        (session,) = summary.sessions
        assert session.routing == [ABC]
    # No patterns passed, none used: the config's are not looked up behind the caller.
    (session,) = scan_all([tmp_path / "in"], use_cache=False).sessions
    assert session.routing == []


def test_the_scan_command_with_a_broken_config_says_so_and_scans_with_the_defaults(
    tmp_path: Path,
    dicom_factory: DicomFactory,
    isolated_dirs: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    from xnat_tui.cli import main

    (isolated_dirs / "config.toml").write_text("this is [not toml\n")
    dicom_factory(tmp_path / "in", study_description="xnat://PILOT/S1/E1")
    assert main(["scan", "--json", str(tmp_path / "in")]) == 0
    out, err = capsys.readouterr()
    assert "config.toml" in err and "default routing patterns" in err
    (session,) = json.loads(out)["sessions"]
    assert session["routing"]["project"] == "PILOT"


def test_an_unusable_configured_pattern_is_reported_and_skipped(
    tmp_path: Path, dicom_factory: DicomFactory
) -> None:
    dicom_factory(tmp_path / "in", study_description="xnat://PILOT/S1/E1")
    patterns = [
        Pattern("StudyDescription", "(unclosed"),
        Pattern("NoSuchKeyword", "(?P<project>.*)"),
        Pattern("ReferencedImageSequence", "(?P<project>.*)"),
        *Defaults().routing_patterns,
    ]
    summary = scan_all([tmp_path / "in"], use_cache=False, routing_patterns=patterns)
    assert [p.kind for p in summary.problems] == ["config"] * 3
    details = " ".join(p.detail for p in summary.problems)
    assert "(unclosed" in details
    assert "'NoSuchKeyword' is not a DICOM keyword" in details
    assert "ReferencedImageSequence is not a text attribute" in details
    (session,) = summary.sessions
    assert session.routing_proposal == RoutingProposal(
        "PILOT", "S1", "E1", "pattern:StudyDescription"
    )
