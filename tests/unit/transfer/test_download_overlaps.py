"""Where a download may write: never over another session's files, never over a file
no download of that session saved, one job per session and folder (links included), and
a request runs its own jobs, not every unfinished one in the journal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
import pytest_asyncio

from xnat_tui.sandbox.server import SandboxServer
from xnat_tui.transfer import download
from xnat_tui.transfer.journal import Journal
from xnat_tui.transfer.types import JobState
from xnat_tui.workflow import download as dl
from xnat_tui.xnat.client import XnatClient
from xnat_tui.xnat.credentials import Credentials

from .test_download_engine import (
    _without,
    engine,
    local_files,
    pilot_plan,
    run_plan,
    server_files,
    started,
)


@pytest_asyncio.fixture
async def client(sandbox: SandboxServer) -> AsyncIterator[XnatClient]:
    async with XnatClient(Credentials(sandbox.url, "alice", "alice")) as c:
        yield c


def saved(out: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}


def other_session(plans: list[download.PlannedDownload]) -> list[download.PlannedDownload]:
    """The same label in another project: the same paths, other files (other MD5s)."""
    return [
        replace(d, session_id="XNAT_E99999", project="OTHER")
        for d in _without(plans, digest="0" * 32)
    ]


async def test_another_sessions_files_in_the_folder_are_never_replaced(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path
) -> None:
    """One label in two projects, downloaded into one folder: the second session's files
    would land on the first's paths, both jobs verified, two patients' data mixed. It is
    refused before anything is fetched, naming the job whose files are there."""
    journal = Journal(tmp_path / "j.sqlite3")
    out = tmp_path / "out"
    plan = await pilot_plan(client, out)
    eng = engine(client, journal)
    [first] = (await run_plan(eng, plan)).keys()
    before = saved(out)
    other = other_session(plan.downloads)
    with pytest.raises(download.DownloadBusy) as refused:
        await eng.submit(other)
    await eng.close()
    assert f"OTHER/PIL_900_MR1 would replace 7 file(s) saved in {out} for another download" in (
        str(refused.value)
    )
    assert f"job {first})" in str(refused.value)
    assert refused.value.hint.startswith("download it into another folder (--out)")
    assert saved(out) == before and len(journal.jobs()) == 1


async def test_another_sessions_running_job_on_the_same_paths_is_refused(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    plan = await pilot_plan(client, out)
    eng = await started(client, tmp_path)
    [jid] = await eng.submit(plan.downloads)
    eng.pause(jid)
    other = other_session(plan.downloads)
    with pytest.raises(download.DownloadBusy, match="are being downloaded"):
        await eng.submit(other)
    await eng.close()


async def test_a_file_no_download_of_the_session_saved_is_kept_and_named(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path
) -> None:
    """The user's own file where a download would save one (other content): it stays as
    it is, that file fails by name with what to do, the others arrive."""
    out = tmp_path / "out"
    plan = await pilot_plan(client, out)
    mine = plan.downloads[0].files[0].local
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"the user's own notes")
    journal = Journal(tmp_path / "j.sqlite3")
    eng = engine(client, journal)
    assert list((await run_plan(eng, plan)).values()) == [JobState.FAILED]
    await eng.close()
    assert mine.read_bytes() == b"the user's own notes"
    [job] = journal.jobs()
    assert f"{mine.name} is already in {mine.parent} with other content" in job.message
    assert "it is not replaced" in job.message
    assert len(saved(out)) == 7  # the other six arrived


async def test_a_rerun_replaces_a_file_its_earlier_download_saved(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path
) -> None:
    """The same session again into the same folder: a downloaded file since changed is
    the download's own, fetched again (as the server has it)."""
    out = tmp_path / "out"
    plan = await pilot_plan(client, out)
    journal = Journal(tmp_path / "j.sqlite3")
    for n in (1, 2):
        eng = engine(client, journal)
        assert list((await run_plan(eng, plan)).values()) == [JobState.VERIFIED]
        await eng.close()
        if n == 1:
            plan.downloads[0].files[0].local.write_bytes(b"edited")
    assert local_files(out) == server_files(sandbox, "PIL_900_MR1")


async def test_the_same_request_through_a_link_to_the_folder_is_the_same_job(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "link").symlink_to(out)
    plan = await pilot_plan(client, out)
    via_link = await dl.plan_request(
        client, project="PILOT", out=tmp_path / "link", sessions=["PIL_900_MR1"]
    )
    journal = Journal(tmp_path / "j.sqlite3")
    eng = engine(client, journal)
    await eng.start(resume=False)
    [jid] = await eng.submit(plan.downloads)
    eng.pause(jid)
    assert await eng.submit(via_link.downloads) == [jid]
    assert (await eng.wait([jid]))[jid] is JobState.VERIFIED
    await eng.close()
    assert len(journal.jobs()) == 1


async def test_a_request_takes_on_its_own_unfinished_job_and_leaves_others(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path
) -> None:
    """After a kill: the same command goes on with its job (not a second one beside it);
    another session's unfinished job, into another folder, is left for 'transfers
    resume', not run and waited for by this request."""
    path = tmp_path / "j.sqlite3"
    mine = await dl.plan_request(
        client, project="PILOT", out=tmp_path / "a", sessions=["PIL_900_MR1"]
    )
    theirs = await dl.plan_request(client, project="STUDY_A", out=tmp_path / "b")
    killed = engine(client, Journal(path))
    await killed.start(resume=False)
    ids = await killed.submit([*mine.downloads, *theirs.downloads])
    for jid in ids:
        killed.pause(jid)  # nothing fetched; then the process is gone without a word
    await killed.close()
    for jid in ids:
        Journal(path).set_state(jid, JobState.SENDING)
    eng = engine(client, Journal(path))
    queued = await dl.queue(eng, mine)  # as 'xnat-tui download' does
    states = await eng.wait(queued.ids)
    await eng.close()
    assert queued.ids == [ids[0]] and states[ids[0]] is JobState.VERIFIED
    journal = Journal(path)
    assert {j.id: j.state for j in journal.jobs()} == {
        ids[0]: JobState.VERIFIED,
        **{jid: JobState.SENDING for jid in ids[1:]},
    }


async def test_the_same_files_listed_by_another_url_of_the_server_are_kept(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path
) -> None:
    """Seen in tmux: the sandbox restarted on another port, and the same session asked
    for again into the same folder was refused as another session's. Where the listings
    agree on every MD5 the files are the same: kept, verified."""
    out = tmp_path / "out"
    plan = await pilot_plan(client, out)
    journal = Journal(tmp_path / "j.sqlite3")
    eng = engine(client, journal)
    assert list((await run_plan(eng, plan)).values()) == [JobState.VERIFIED]
    await eng.close()
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    again = download.DownloadEngine(
        client, journal, server_url="http://127.0.0.1:1", username="alice"
    )
    assert list((await run_plan(again, plan)).values()) == [JobState.VERIFIED]
    await again.close()
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before


async def test_a_refused_request_leaves_no_job_of_its_own_running(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path
) -> None:
    """A killed job of session A, then another session's files saved on the same paths:
    asking for A again is refused, and A's old job is not taken on and run regardless
    (it was: its lease rolled back with the refusal, its run left going)."""
    path = tmp_path / "j.sqlite3"
    out = tmp_path / "out"
    plan = await pilot_plan(client, out)
    a = other_session(plan.downloads)
    killed = engine(client, Journal(path))
    await killed.start(resume=False)
    [old] = await killed.submit(a)
    killed.pause(old)
    await killed.close()
    Journal(path).set_state(old, JobState.SENDING)
    eng = engine(client, Journal(path))
    b = [replace(d, session_id="XNAT_E88888") for d in plan.downloads]
    assert list((await run_plan(eng, dl.DownloadPlan(b))).values()) == [JobState.VERIFIED]
    b_files = saved(out)
    with pytest.raises(download.DownloadBusy, match="would replace 7 file"):
        await eng.submit(a)
    assert old not in {p.job_id for p in eng.snapshot()}
    await eng.close()
    assert saved(out) == b_files and Journal(path).job(old).state is JobState.SENDING


async def test_retrying_an_earlier_job_never_replaces_what_another_download_saved_since(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path
) -> None:
    """A cancelled with nothing saved; then another session's files saved there (as the
    user's own would be); A's retry fails on them by name and leaves them."""
    out = tmp_path / "out"
    plan = await pilot_plan(client, out)
    eng = await started(client, tmp_path)
    [a] = await eng.submit(plan.downloads)
    eng.cancel(a)
    await eng.wait([a])
    theirs = {
        f.local: b"another session's " + f.local.name.encode() for f in plan.downloads[0].files
    }
    for local, data in theirs.items():
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(data)
    await eng.retry(a)
    assert (await eng.wait([a]))[a] is JobState.FAILED
    await eng.close()
    assert {p: p.read_bytes() for p in theirs} == theirs
    assert "it is not replaced" in eng.journal.job(a).message


async def test_without_digests_a_rerun_keeps_the_same_bytes_and_never_replaces_others(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path
) -> None:
    """No MD5 listed and no journal of the earlier download (deleted, or another URL of
    the server): the bytes fetched again are compared with the file there. The same: it
    is kept, verified; other: it stays, and that file fails by name."""
    out = tmp_path / "out"
    plan = await pilot_plan(client, out)
    plans = _without(plan.downloads, digest="")
    first = engine(client, Journal(tmp_path / "j1.sqlite3"))
    assert list((await run_plan(first, dl.DownloadPlan(plans))).values()) == [JobState.VERIFIED]
    await first.close()
    mine = plans[0].files[0].local
    mine.write_bytes(b"edited by the user")
    again = engine(client, Journal(tmp_path / "j2.sqlite3"))
    [(jid, state)] = (await run_plan(again, dl.DownloadPlan(plans))).items()
    await again.close()
    assert state is JobState.FAILED and mine.read_bytes() == b"edited by the user"
    assert "1 of 7 file(s) failed" in again.journal.job(jid).message
    assert not list(out.rglob("*.part"))


async def test_a_rerun_through_the_real_folder_replaces_what_it_saved_through_a_link(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "link").symlink_to(out)
    journal = Journal(tmp_path / "j.sqlite3")
    for folder in (tmp_path / "link", out):
        plan = await dl.plan_request(client, project="PILOT", out=folder, sessions=["PIL_900_MR1"])
        eng = engine(client, journal)
        assert list((await run_plan(eng, plan)).values()) == [JobState.VERIFIED]
        await eng.close()
        if folder != out:
            plan.downloads[0].files[0].local.write_bytes(b"edited")
    assert local_files(out) == server_files(sandbox, "PIL_900_MR1")
