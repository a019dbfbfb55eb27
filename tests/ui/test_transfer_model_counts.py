"""The transfers panel's model: what a user reads in the Bytes and Files columns."""

from __future__ import annotations

from xnat_tui.transfer.events import JobProgress, JobStateChanged, ProgressTick
from xnat_tui.transfer.types import JobState
from xnat_tui.ui.transfer_model import TransferModel


def test_a_job_verified_between_ticks_shows_every_byte_and_file() -> None:
    model = TransferModel()
    started = JobProgress("j1", "P/S/E", JobState.SENDING, 0, 3400, 0, 2, 0, 1)
    model.apply(ProgressTick((started,), 0, 3400, 0.0, None))
    model.apply(JobStateChanged("j1", "P/S/E", JobState.VERIFIED, JobState.VERIFYING))
    row = model.jobs["j1"]
    assert (row.bytes_sent, row.files_sent) == (3400, 2)
    assert row.fraction == 1.0


def test_a_job_verified_before_any_tick_still_shows_its_size() -> None:
    """Seen in tmux: a 22-file job finished before the first tick and read 0 B/0 B 0/0."""
    model = TransferModel()
    for state, previous in (
        (JobState.QUEUED, None),
        (JobState.SENDING, JobState.QUEUED),
        (JobState.VERIFIED, JobState.VERIFYING),
    ):
        model.apply(
            JobStateChanged("j1", "P/S/E", state, previous, bytes_total=41_280, files_total=22)
        )
    row = model.jobs["j1"]
    assert (row.bytes_sent, row.bytes_total, row.files_sent, row.files_total) == (
        41_280,
        41_280,
        22,
        22,
    )
    assert row.fraction == 1.0


def test_a_failed_job_keeps_what_was_really_sent() -> None:
    model = TransferModel()
    half = JobProgress("j1", "P/S/E", JobState.SENDING, 1700, 3400, 1, 2, 0, 1)
    model.apply(ProgressTick((half,), 1700, 3400, 0.0, None))
    model.apply(JobStateChanged("j1", "P/S/E", JobState.FAILED, JobState.SENDING, "boom"))
    row = model.jobs["j1"]
    assert (row.bytes_sent, row.files_sent) == (1700, 1)
    assert row.message == "boom"


def test_every_end_of_a_job_is_handed_over_for_a_notification() -> None:
    model = TransferModel()
    for jid in ("j1", "j2", "j3"):
        model.apply(JobStateChanged(jid, f"P/S/{jid}", JobState.SENDING, JobState.QUEUED))
    assert model.take_finished() == []
    model.apply(JobStateChanged("j1", "P/S/j1", JobState.VERIFIED, JobState.VERIFYING))
    model.apply(JobStateChanged("j2", "P/S/j2", JobState.FAILED, JobState.SENDING, "boom"))
    model.apply(JobStateChanged("j3", "P/S/j3", JobState.CANCELLED, JobState.SENDING))
    done = model.take_finished()
    assert [(r.job_id, r.state) for r in done] == [
        ("j1", JobState.VERIFIED),
        ("j2", JobState.FAILED),
        ("j3", JobState.CANCELLED),
    ]
    assert model.take_finished() == []


def test_a_new_state_without_words_clears_the_last_states() -> None:
    """Seen in tmux: a download receiving its files still read 'queued'."""
    model = TransferModel()
    model.apply(JobStateChanged("j1", "P/S/E", JobState.QUEUED, None, "queued"))
    model.apply(JobStateChanged("j1", "P/S/E", JobState.SENDING, JobState.QUEUED))
    started = JobProgress("j1", "P/S/E", JobState.SENDING, 10, 3400, 1, 2, 0, 1)
    model.apply(ProgressTick((started,), 10, 3400, 0.0, None))
    assert model.jobs["j1"].message == ""
    model.apply(JobStateChanged("j1", "P/S/E", JobState.PAUSED, JobState.SENDING, "paused"))
    model.apply(JobStateChanged("j1", "P/S/E", JobState.PAUSED, JobState.PAUSED))
    assert model.jobs["j1"].message == "paused"  # the same state again keeps its words


def test_a_cancel_counted_again_is_announced_once_and_shows_the_count() -> None:
    """A cancel is said at once, and its count once the worker threads have left their
    files: the second is the same end in other words, not a second notification."""
    model = TransferModel()
    model.apply(JobStateChanged("j1", "P/S/E", JobState.SENDING, JobState.QUEUED))
    first = "cancelled by the user; the files under way are finishing"
    model.apply(JobStateChanged("j1", "P/S/E", JobState.CANCELLED, JobState.SENDING, first))
    counted = "cancelled by the user; 360 of 2048 file(s) complete in /out"
    model.apply(
        JobStateChanged(
            "j1",
            "P/S/E",
            JobState.CANCELLED,
            JobState.CANCELLED,
            counted,
            bytes_total=2048 << 19,
            files_total=2048,
            bytes_sent=360 << 19,
            files_sent=360,
        )
    )
    assert [(r.state, r.message) for r in model.take_finished()] == [(JobState.CANCELLED, first)]
    row = model.jobs["j1"]
    assert row.message == counted
    # The Files column agrees with the count, not with the last tick before the cancel.
    assert (row.files_sent, row.bytes_sent) == (360, 360 << 19)
