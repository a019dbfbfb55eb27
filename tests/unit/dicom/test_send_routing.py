"""One routing parser: what the sender writes, the scanner proposes and the receiver
files by are read by the same code (``xnat_tui.dicom.routing``)."""

from __future__ import annotations

import pytest

from xnat_tui.config import Defaults
from xnat_tui.dicom.routing import DEFAULT_SITE_TEMPLATE as SITE
from xnat_tui.dicom.routing import (
    PATIENT_COMMENTS,
    PATIENT_ID,
    PATIENT_NAME,
    STUDY_DESCRIPTION,
    RoutingRuleError,
    RuleSet,
    identify,
    parse_rule,
    pattern_expressions,
    propose,
    routing_values,
    template_pattern,
)

TAGS = {"PatientComments": PATIENT_COMMENTS, "StudyDescription": STUDY_DESCRIPTION}


def _read_back(written: dict[str, str], rules: RuleSet, projects: set[str]) -> tuple[str, ...]:
    values = {TAGS[k]: v for k, v in written.items()}
    values.update({PATIENT_NAME: "Doe^Jane", PATIENT_ID: "PID 7"})
    ids = identify(values.get, rules, projects.__contains__)
    return ids.project, ids.subject, ids.session


def test_xnat_form_written_is_what_the_receiver_reads() -> None:
    written = routing_values("xnat", "P1", "S-01", "S-01_MR")
    assert written == {"PatientComments": "Project: P1 Subject: S-01 Session: S-01_MR"}
    assert _read_back(written, RuleSet(), {"P1"}) == ("P1", "S-01", "S-01_MR")


def test_site_template_round_trip_through_scanner_and_receiver() -> None:
    written = routing_values("site", "P1", "S1", "E1")
    assert written == {"StudyDescription": "xnat://P1/S1/E1"}
    pattern = template_pattern(SITE)
    # The scanner's default pattern and the receiver's rules agree with the template.
    assert propose(written, Defaults().routing_patterns)[0].project == "P1"
    assert _read_back(written, RuleSet.from_pattern(pattern), {"P1"}) == ("P1", "S1", "E1")


def test_unknown_project_is_unassigned_and_labels_fall_back() -> None:
    written = routing_values("site", "NOPE", "S1", "E1")
    project, subject, session = _read_back(
        written, RuleSet.from_pattern(template_pattern(SITE)), set()
    )
    # The rule still names subject and session; the project chain finds nothing.
    assert (project, subject, session) == ("", "S1", "E1")
    assert _read_back({}, RuleSet(), {"P1"}) == ("", "Doe_Jane", "PID_7")


def test_pattern_expressions_are_xnat_syntax() -> None:
    exprs = pattern_expressions(Defaults().routing_patterns[0])
    assert exprs["project"].startswith("(0008,1030):xnat://(")
    assert "?P<" not in exprs["subject"] and exprs["session"].endswith(":3")
    assert parse_rule(exprs["session"]).group == 3


@pytest.mark.parametrize("bad", ["0008,1030:x", "(0008,1030):(unclosed:1", "(zz,1030):a"])
def test_bad_rule_has_xnats_message(bad: str) -> None:
    with pytest.raises(RoutingRuleError, match="Failed to parse routing expression"):
        parse_rule(bad)


@pytest.mark.parametrize("label", ["P.1", "S 1", "", "Ümlaut"])
def test_labels_xnat_cannot_read_back_are_refused(label: str) -> None:
    with pytest.raises(ValueError, match="cannot be routed"):
        routing_values("xnat", "P1", label, "E1")
    assert routing_values("none", "", label, "") == {}
