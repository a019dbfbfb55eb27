"""The label rules the TUI and the command line share."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from xnat_tui.workflow.labels import (
    MAX_LABEL_LENGTH,
    clean_label,
    invalid_characters,
    label_problem,
)


def test_valid_labels() -> None:
    for label in ("S01", "sub-01_A", "a", "-_-", "X" * MAX_LABEL_LENGTH):
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
    assert label_problem("Müller") is not None


def test_clean_label_collapses_runs() -> None:
    assert clean_label("Smith^^John  (1)") == "Smith_John_1"
    assert clean_label("  ^Smith^ ") == "Smith"
    assert clean_label("ok-label_1") == "ok-label_1"
    assert clean_label("^^^") == ""
    assert len(clean_label("a" * 400)) == MAX_LABEL_LENGTH


@given(st.text(max_size=300))
def test_clean_label_always_yields_label_characters(text: str) -> None:
    cleaned = clean_label(text)
    assert invalid_characters(cleaned) == []
    # Either a valid label, or empty (which the rules then report as such).
    assert label_problem(cleaned) is None or cleaned == ""


def test_accented_letters_are_transliterated_not_dropped() -> None:
    assert clean_label("Ümlaut") == "Umlaut"
    assert clean_label("é") == "e"
    assert clean_label("Øyvind Straße") == "Oyvind_Strasse"
    assert clean_label("Łódź") == "Lodz"
    # What has no Latin letter in it still cannot become a label; the rules say so.
    assert clean_label("李") == ""
