from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from xnat_tui.transfer import Destination, JobState, Journal, Overwrite, SeriesState
from xnat_tui.transfer.journal import ManifestEntry, NewJob, make_owner
from xnat_tui.transfer.types import SourceFile, SourceSeries


def new_job(tmp: Path) -> NewJob:
    files = [SourceFile(tmp / f"f{i}", 10 + i, 1.0, f"1.2.{i}") for i in range(3)]
    return NewJob(
        server="http://x",
        username="alice",
        project="P",
        subject="S",
        label="E",
        study_uid="1.2",
        destination=Destination.ARCHIVE,
        overwrite=Overwrite.NONE,
        series=[SourceSeries("1.2.1", 1, "T1", "MR", files)],
    )


def test_steps_are_written_before_and_after_and_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    j = Journal(path)
    [jid] = j.create_jobs([new_job(tmp_path)])
    assert j.series_started(jid, "1.2.1") == 1
    j.close()  # as if the process died here
    j = Journal(path)
    [s] = j.series(jid)
    assert s.state is SeriesState.SENDING and s.attempts == 1
    j.series_sent(
        jid, "1.2.1", "/data/prearchive/projects/P/1/E", [ManifestEntry("a", "p", 1, 2, "ff")]
    )
    j.commit_started(jid)
    job = j.job(jid)
    assert job.prearchive_uri.endswith("/E") and job.commit_phase == "started"
    assert [(s.step, s.phase) for s in j.steps(jid)] == [
        ("plan", "end"),
        ("send", "begin"),
        ("send", "end"),
        ("commit", "begin"),
    ]
    assert j.series(jid)[0].manifest == [ManifestEntry("a", "p", 1, 2, "ff")]
    assert [f.size for f in j.files(jid, "1.2.1")] == [10, 11, 12]
    assert j.resolve(jid[:3]).id == jid


def test_a_live_owner_keeps_the_job_a_dead_one_does_not(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite3")
    [jid] = j.create_jobs([new_job(tmp_path)])
    me, other = make_owner(), make_owner()
    assert j.acquire(jid, me, ttl=30)
    assert not j.acquire(jid, other, ttl=30)  # same process is alive
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    ghost = me.rsplit(":", 2)[0] + f":{int(dead.stdout)}:abcd"
    j.release(jid, me)
    assert j.acquire(jid, ghost, ttl=30)
    assert j.acquire(jid, other, ttl=30)  # the ghost's process is gone: taken over


def test_requests_reach_the_owner(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite3")
    [jid] = j.create_jobs([new_job(tmp_path)])
    owner = make_owner()
    j.acquire(jid, owner, ttl=30)
    Journal(tmp_path / "j.sqlite3").request(jid, "pause")
    assert j.take_requests(owner) == [(jid, "pause")]
    assert j.take_requests(owner) == []
    j.set_state(jid, JobState.FAILED, "boom")
    j.reset_for_retry(jid)
    assert j.job(jid).state is JobState.QUEUED


def test_network_file_systems_get_the_rollback_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import xnat_tui.transfer.journal as journal_mod

    assert Journal(tmp_path / "local.sqlite3").mode == "WAL"
    monkeypatch.setattr(journal_mod, "on_network_fs", lambda path: True)
    j = Journal(tmp_path / "nfs.sqlite3")
    assert j.mode == "DELETE"
    assert j._db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_journal_of_an_older_version_gains_the_anonymization_column(tmp_path: Path) -> None:
    import sqlite3

    from xnat_tui.transfer.journal import _SCHEMA

    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(_SCHEMA.replace(",\n    anon_params TEXT NOT NULL DEFAULT ''", ""))
    db.execute(
        "INSERT INTO jobs(id, created, updated, server, username, project, subject, label,"
        " study_uid, destination, overwrite, state) VALUES('old1', 0, 0, 's', 'u', 'P', 'S',"
        " 'E', '1.2', 'project', 'none', 'queued')"
    )
    db.commit()
    db.close()
    journal = Journal(path)
    old = journal.job("old1")
    assert old.anon_variables == {} and not old.anon_options.key()


def test_calls_within_exclusive_are_one_transaction_all_kept_or_none(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    j = Journal(path)
    with pytest.raises(RuntimeError), j.exclusive():
        [jid] = j.create_jobs([new_job(tmp_path)])
        assert j.acquire(jid, "me", 60)
        raise RuntimeError("the check after it failed")
    assert j.jobs() == []
    with j.exclusive():
        [jid] = j.create_jobs([new_job(tmp_path)])
        assert j.acquire(jid, "me", 60)
    assert Journal(path).job(jid).owner == "me"
