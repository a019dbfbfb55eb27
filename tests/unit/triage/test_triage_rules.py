"""Triage domain rules: filtering, sorting and XNAT's archive/merge classification."""

from __future__ import annotations

import pytest

from xnat_tui.workflow.prearchive import (
    COLUMNS,
    Action,
    ArchiveTarget,
    Outcome,
    PrearchiveRow,
    RowFilter,
    action_blocker,
    default_target,
    delete_summary,
    filter_rows,
    preview_archive,
    sort_rows,
)
from xnat_tui.xnat.models import ExistingSession


def row(**over: str) -> PrearchiveRow:
    base = {c: "" for c in COLUMNS}
    base.update(
        project="PILOT",
        timestamp="20260101_101010101",
        subject="SUB01",
        folderName="SESS01",
        name="SESS01",
        tag="1.2.3.4",
        status="READY",
        url="/prearchive/projects/PILOT/20260101_101010101/SESS01",
        autoarchive="Manual",
    )
    base.update(over)
    return PrearchiveRow.from_mapping(base)


class TestFilterAndSort:
    def test_project_status_and_text_combine(self) -> None:
        rows = [
            row(),
            row(project="STUDY_A", url="u2"),
            row(status="CONFLICT", url="u3", subject="Pat_X"),
        ]
        assert filter_rows(rows, RowFilter(project="pilot")) == [rows[0], rows[2]]
        assert filter_rows(rows, RowFilter(status="conflict")) == [rows[2]]
        assert filter_rows(rows, RowFilter(text="pat_x")) == [rows[2]]
        assert filter_rows(rows, RowFilter(project="PILOT", text="nothing")) == []

    def test_unassigned_rows_match_the_unassigned_project(self) -> None:
        r = row(project="", url="u")
        assert r.project == "Unassigned" and r.unassigned
        assert filter_rows([r], RowFilter(project="Unassigned")) == [r]

    def test_status_filter_finds_queued_and_locked_variants(self) -> None:
        rows = [row(status="QUEUED_ARCHIVING", url="a"), row(status="_ARCHIVING", url="b")]
        assert filter_rows(rows, RowFilter(status="ARCHIVING")) == rows

    def test_sort_by_column_with_stable_ties(self) -> None:
        a = row(subject="b", timestamp="2", url="a")
        b = row(subject="A", timestamp="1", url="b")
        c = row(subject="b", timestamp="1", url="c")
        assert [r.url for r in sort_rows([a, b, c], "subject")] == ["b", "c", "a"]
        assert [r.url for r in sort_rows([a, b, c], "subject", reverse=True)] == ["a", "c", "b"]
        with pytest.raises(ValueError):
            sort_rows([a], "nonsense")

    def test_json_keeps_xnat_columns_in_order(self) -> None:
        r = PrearchiveRow.from_mapping({"url": "u", "project": "P", "extra": "x", "tag": "1"})
        assert list(r.as_json()) == ["project", "tag", "url", "extra"]


class TestPreview:
    existing = [
        ExistingSession("SESS01", "1.2.3.4", "SUB01"),
        ExistingSession("OTHERUID", "9.9.9", "SUB01"),
        ExistingSession("ELSEWHERE", "1.2.3.4", "SUB02"),
    ]

    def target(self, label: str, overwrite: str = "none", subject: str = "SUB01") -> ArchiveTarget:
        return ArchiveTarget("PILOT", subject, label, overwrite)

    def test_new_session_and_new_subject(self) -> None:
        p = preview_archive(row(), self.target("FRESH", subject="NEWSUB"), self.existing, ["SUB01"])
        assert p.outcome is Outcome.NEW and p.allowed
        assert "new subject NEWSUB" in p.reason

    def test_subject_match_is_case_insensitive_like_the_archiver(self) -> None:
        p = preview_archive(row(), self.target("FRESH", subject="sub01"), self.existing, ["SUB01"])
        assert "new subject" not in p.reason

    def test_same_study_merges_whatever_overwrite(self) -> None:
        # The archive service always allows a merge (Archiver: allowSessionMerge=true).
        for mode in ("none", "append", "delete"):
            merged = preview_archive(row(), self.target("SESS01", mode), self.existing)
            assert merged.outcome is Outcome.MERGE and merged.allowed
            assert "merges into existing PILOT/SUB01/SESS01" in merged.reason

    def test_other_study_uid_is_a_conflict_unless_overwrite_overrides_it(self) -> None:
        p = preview_archive(row(), self.target("OTHERUID"), self.existing)
        assert p.outcome is Outcome.CONFLICT and "9.9.9" in p.reason and not p.allowed
        assert "Invalid modification of session UID" in p.reason
        for mode in ("append", "delete"):
            forced = preview_archive(row(), self.target("OTHERUID", mode), self.existing)
            assert forced.outcome is Outcome.MERGE and "despite" in forced.reason

    def test_label_of_another_subject_is_a_conflict_whatever_overwrite(self) -> None:
        p = preview_archive(row(), self.target("ELSEWHERE", "delete"), self.existing)
        assert p.outcome is Outcome.CONFLICT and "another subject (SUB02)" in p.reason

    def test_unassigned_needs_a_project_and_says_it_will_move(self) -> None:
        r = row(project="Unassigned")
        assert default_target(r).project == ""
        assert preview_archive(r, default_target(r), []).outcome is Outcome.BLOCKED
        p = preview_archive(r, ArchiveTarget("PILOT", "S", "L"), [])
        assert p.outcome is Outcome.NEW and p.reason.startswith("moves to PILOT")

    @pytest.mark.parametrize(
        ("status", "words"),
        [("RECEIVING", "rebuild"), ("QUEUED_ARCHIVING", "in progress"), ("_BUILDING", "progress")],
    )
    def test_status_blocks_archive(self, status: str, words: str) -> None:
        p = preview_archive(row(status=status), self.target("FRESH"), [])
        assert p.outcome is Outcome.BLOCKED and words in p.reason

    def test_conflict_and_error_rows_may_be_retried(self) -> None:
        for status in ("CONFLICT", "ERROR"):
            assert preview_archive(row(status=status), self.target("FRESH"), []).allowed

    def test_busy_rows_refuse_every_action(self) -> None:
        busy = row(status="MOVING")
        assert all(action_blocker(busy, a) for a in Action)
        assert action_blocker(row(status="RECEIVING"), Action.DELETE) is None
        assert action_blocker(row(status="RECEIVING"), Action.ARCHIVE)


def test_delete_summary_names_every_entry() -> None:
    lines = delete_summary([row(), row(project="", folderName="X", name="X", url="u")])
    assert lines[0].startswith("PILOT/20260101_101010101/SESS01")
    assert lines[1].startswith("Unassigned/20260101_101010101/X")


def test_invalid_labels_block_archive_with_the_label_rule_message() -> None:
    p = preview_archive(row(), ArchiveTarget("PILOT", "SUB 01", "S1"), [])
    assert p.outcome is Outcome.BLOCKED and "space" in p.reason and "subject label" in p.reason
    p = preview_archive(row(), ArchiveTarget("PILOT", "SUB01", ""), [])
    assert p.outcome is Outcome.BLOCKED and "session label is empty" in p.reason
