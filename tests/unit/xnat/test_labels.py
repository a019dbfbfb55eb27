from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from xnat_tui.xnat.labels import (
    MAX_LABEL_LENGTH,
    ExistingSession,
    SubjectStatus,
    TargetAssessment,
    TargetKind,
    classify_target,
    clean_label,
    invalid_characters,
    is_valid_label,
    label_problem,
)

UID = "1.2.840.1"
OTHER_UID = "1.2.840.2"


def test_valid_labels() -> None:
    for label in ("S01", "sub-01_A", "a", "-_-", "X" * MAX_LABEL_LENGTH):
        assert is_valid_label(label)
        assert label_problem(label) is None


def test_problem_names_each_bad_character_once() -> None:
    message = label_problem("Smith^John Jr/2", "subject label")
    assert message is not None
    assert "'^'" in message and "space" in message and "'/'" in message
    assert message.count("'^'") == 1
    assert "subject label" in message


def test_invisible_characters_are_named() -> None:
    message = label_problem("a\tb\u00a0c")
    assert message is not None
    assert "tab" in message and "U+00A0" in message


def test_empty_and_too_long() -> None:
    assert "empty" in (label_problem("", "session label") or "")
    message = label_problem("x" * 300)
    assert message is not None and "300 characters" in message and "255" in message


def test_non_ascii_letters_are_invalid() -> None:
    assert invalid_characters("Müller") == ["ü"]
    assert not is_valid_label("Müller")


def test_clean_label_collapses_runs() -> None:
    assert clean_label("Smith^^John  (1)") == "Smith_John_1_"
    assert clean_label("ok-label_1") == "ok-label_1"
    assert len(clean_label("a" * 400)) == MAX_LABEL_LENGTH


@given(st.text(max_size=300))
def test_clean_label_always_yields_label_characters(text: str) -> None:
    cleaned = clean_label(text)
    assert invalid_characters(cleaned) == []
    if text:
        assert is_valid_label(cleaned)


def _classify(**kw: Any) -> TargetAssessment:
    args: dict[str, Any] = {
        "project": "P",
        "subject": "S01",
        "session": "S01_MR_1",
        "study_uid": UID,
        "existing_subjects": ["S01"],
        "existing_sessions": [],
    }
    args.update(kw)
    return classify_target(**args)


def test_new_session_existing_subject() -> None:
    result = _classify()
    assert result.kind is TargetKind.NEW
    assert result.subject is SubjectStatus.EXISTS


def test_new_subject_is_announced_or_refused() -> None:
    created = _classify(existing_subjects=[])
    assert created.subject is SubjectStatus.WILL_BE_CREATED
    assert "will be created" in created.messages[0]
    refused = _classify(existing_subjects=[], allow_create_subject=False)
    assert refused.kind is TargetKind.NOT_PERMITTED
    assert "does not allow" in refused.messages[0]


def test_subject_matches_case_insensitively_like_the_archiver() -> None:
    result = _classify(subject="s01")
    assert result.subject is SubjectStatus.EXISTS
    assert result.subject_match == "S01"


def test_merge_same_uid_conflict_other_uid() -> None:
    same = [ExistingSession("S01_MR_1", UID, "S01")]
    assert _classify(existing_sessions=same).kind is TargetKind.MERGE
    other = [ExistingSession("S01_MR_1", OTHER_UID, "S01")]
    conflict = _classify(existing_sessions=other)
    assert conflict.kind is TargetKind.CONFLICT
    assert OTHER_UID in conflict.messages[0]


def test_same_label_under_another_subject_is_a_conflict() -> None:
    existing = [ExistingSession("S01_MR_1", UID, "S02")]
    assert _classify(existing_sessions=existing).kind is TargetKind.CONFLICT


def test_same_study_under_another_label_is_a_duplicate() -> None:
    existing = [ExistingSession("OLD_LABEL", UID, "S01")]
    result = _classify(existing_sessions=existing)
    assert result.kind is TargetKind.DUPLICATE
    assert "OLD_LABEL" in result.messages[0]


def test_not_writable_project_and_invalid_label() -> None:
    assert _classify(writable_projects=["Q"]).kind is TargetKind.NOT_PERMITTED
    invalid = _classify(session="bad label")
    assert invalid.kind is TargetKind.INVALID
    assert "space" in invalid.messages[0]
