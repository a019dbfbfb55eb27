"""One journal for every workflow: each job says its kind, and an engine only runs its own."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

from tests.unit.transfer.fake import FakeServer
from tests.unit.transfer.test_journal import new_job
from xnat_tui.transfer import JobState, Journal
from xnat_tui.transfer.engine import TransferEngine
from xnat_tui.transfer.kinds import JobKind


def test_kind_and_params_survive_reopening_and_filter_listings(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    j = Journal(path)
    up, down = j.create_jobs(
        [
            new_job(tmp_path),
            replace(new_job(tmp_path), kind=JobKind.DOWNLOAD, params={"out": "/data/x"}),
        ]
    )
    j.close()
    j = Journal(path)
    assert j.job(up).kind is JobKind.UPLOAD and j.job(up).params == {}
    assert j.job(down).kind is JobKind.DOWNLOAD and j.job(down).params == {"out": "/data/x"}
    assert [r.id for r in j.jobs(kinds=[JobKind.DOWNLOAD])] == [down]
    assert {r.id for r in j.jobs()} == {up, down}


def test_a_download_is_not_a_duplicate_of_an_upload_of_the_same_study(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite3")
    [down] = j.create_jobs([replace(new_job(tmp_path), kind=JobKind.DOWNLOAD)])
    assert j.same_target("http://x", "P", "1.2") == []
    [up] = j.create_jobs([new_job(tmp_path)])
    assert [r.id for r in j.same_target("http://x", "P", "1.2")] == [up]
    assert down != up


def test_per_file_progress_is_recorded_and_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    j = Journal(path)
    [jid] = j.create_jobs([new_job(tmp_path)])
    j.files_done(jid, [("1.2.1", 0), ("1.2.1", 2)], ["aa" * 16])
    j.close()
    j = Journal(path)
    assert j.done_files(jid) == {("1.2.1", 0): "aa" * 16, ("1.2.1", 2): ""}
    j.files_reset(jid)
    assert j.done_files(jid) == {}


def test_a_journal_written_before_kinds_existed_reads_as_uploads(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    j = Journal(path)
    [jid] = j.create_jobs([new_job(tmp_path)])
    j.close()
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE jobs DROP COLUMN kind")
    db.execute("ALTER TABLE jobs DROP COLUMN params")
    db.execute("ALTER TABLE files DROP COLUMN done")
    db.execute("ALTER TABLE files DROP COLUMN digest")
    db.commit()
    db.close()
    j = Journal(path)
    assert j.job(jid).kind is JobKind.UPLOAD
    assert j.done_files(jid) == {}


async def test_the_upload_engine_leaves_other_kinds_alone(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    [jid] = journal.create_jobs(
        [replace(new_job(tmp_path), server="http://fake", username="alice", kind=JobKind.SEND)]
    )
    server = FakeServer()
    engine = TransferEngine(server, journal, receipts_dir=tmp_path / "r")
    try:
        assert await engine.start() == []
        assert engine.resume(jid) == []
        assert journal.job(jid).state is JobState.QUEUED
    finally:
        await engine.close()
