from __future__ import annotations

import pytest

from xnat_tui.transfer import SourceSession
from xnat_tui.workflow.labels import clean_label
from xnat_tui.workflow.templates import TemplateError, render_label, template_fields


def session(**attrs: str) -> SourceSession:
    base = {
        "PatientID": "P 01",
        "PatientName": "Doe^Jane",
        "Modality": "MR",
        "StudyDate": "20240115",
    }
    base.update(attrs)
    return SourceSession("1.2.3", [], attributes=base, routing={"subject": "S-9", "session": ""})


def test_keywords_are_cleaned_to_label_characters() -> None:
    assert render_label("{PatientName}_{StudyDate}", session()) == "Doe_Jane_20240115"
    assert render_label("{PatientID}", session()) == "P_01"
    assert clean_label(" a/b\\c:d ") == "a_b_c_d"


def test_counter_takes_the_first_free_value() -> None:
    s = session()
    taken = {"SUBJ_MR_1", "SUBJ_MR_2"}
    assert render_label("{subject}_{Modality}_{n}", s, subject="SUBJ", taken=taken) == "SUBJ_MR_3"
    assert render_label("{subject}_{n:02d}", s, subject="SUBJ") == "SUBJ_01"


def test_routing_fields() -> None:
    assert render_label("{routing.subject}", session()) == "S-9"
    with pytest.raises(TemplateError, match=r"\{routing.session\} is no routing proposal"):
        render_label("{routing.session}", session())


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{Nope}", "unknown field"),
        ("{AccessionNumber}", "AccessionNumber. is empty for this session"),
        ("{routing.__init__.__globals__}", "unknown field"),
        ("{routing.subject.upper}", "unknown field"),
        ("{PatientID[0]}", "unknown field"),
        ("{PatientID!r}", "conversions are not allowed"),
        ("{PatientID:>40}", "only the counter takes a format"),
        ("{n:{PatientID}}", "only the counter takes a format"),
        ("{PatientID", "malformed"),
        ("{}", "positional"),
        ("", "empty template"),
        ("///", "empty label"),
    ],
)
def test_errors_name_the_problem(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        render_label(template, session())


def test_unknown_field_names_the_known_ones() -> None:
    with pytest.raises(TemplateError) as refused:
        template_fields("{Nope}")
    assert "{PatientID}" in str(refused.value) and "{routing.subject}" in str(refused.value)


def test_empty_value_is_an_error_not_a_blank_label() -> None:
    with pytest.raises(TemplateError, match="empty for this session"):
        render_label("{PatientID}", session(PatientID=""))
