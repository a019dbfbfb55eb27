"""``xnat-tui upload ARCHIVE --as-is``: the archive itself goes to the import service
(DICOM-zip, Ignore-Unparsable), journalled, resumable and verified, against the sandbox."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import time
from pathlib import Path

import pytest

from tests.e2e.test_reliability_cli import set_faults, wait_for
from tests.fixtures.archives import make_archive
from tests.unit.transfer.e2e_support import cli, digests, server_state, spawn, write_sessions
from xnat_tui.dicom.synthetic import WrittenStudy
from xnat_tui.sandbox.server import SandboxThread
from xnat_tui.transfer import JobState, Journal
from xnat_tui.xnat.client import XnatClient
from xnat_tui.xnat.credentials import Credentials

pytestmark = pytest.mark.e2e


def _bundle(study: WrittenStudy, dest: Path) -> Path:
    """The study as XNAT's layout would not need: plain files plus a note and a stray
    gzip, which XNAT can only skip when Ignore-Unparsable is sent."""
    items: list[tuple[str, Path | bytes]] = [
        (f"{study.patient_id}/{p.relative_to(study.root).as_posix()}", p) for p in study.paths
    ]
    items += [("README.txt", b"exported by hand\n"), ("notes.gz", b"\x1f\x8b not really")]
    return make_archive(items, dest)


async def _session_md5s(url: str, uri: str) -> list[str]:
    async with XnatClient(Credentials(url, "alice", "alice")) as client:
        return sorted(f.digest for fs in (await client.session_files(uri)).values() for f in fs)


async def _session_sizes(url: str, uri: str) -> list[int]:
    async with XnatClient(Credentials(url, "alice", "alice")) as client:
        return sorted(f.size or 0 for fs in (await client.session_files(uri)).values() for f in fs)


def _md5s(study: WrittenStudy) -> list[str]:
    return sorted(hashlib.md5(p.read_bytes()).hexdigest() for p in study.paths)


def _jobs(prefix: str) -> list:  # type: ignore[type-arg]
    j = Journal()
    try:
        return [job for job in j.jobs() if job.subject.startswith(prefix)]
    finally:
        j.close()


@pytest.mark.parametrize(("suffix", "dest"), [(".zip", "archive"), (".tgz", "prearchive")])
def test_as_is_sends_the_archive_and_verifies_every_dicom_member(
    sandbox_thread: SandboxThread, tmp_path: Path, suffix: str, dest: str
) -> None:
    prefix = f"ASIS{suffix[1:].upper()}"
    (study,) = write_sessions(tmp_path / "src", prefix, 1)
    archive = _bundle(study, tmp_path / "in" / f"bundle{suffix}")
    before = digests(tmp_path / "in")
    url = sandbox_thread.url
    up = cli(
        "upload", str(archive), "--as-is", "--server", url, "--user", "alice",
        "--project", "PILOT", "--dest", dest, "--yes", "--json",
    )  # fmt: skip
    assert up.returncode == 0, up.stderr
    result = json.loads(up.stdout)
    assert result["ok"] and result["verified"] == 1, result
    (job,) = _jobs(prefix)
    assert job.params == {"as_is": str(archive)}
    archived, prearchive = server_state(url, "PILOT")
    if dest == "archive":
        assert [e for e in archived if e[1] == study.study_instance_uid] != []
        assert not [p for p in prearchive if p[1] == study.study_instance_uid]
    else:
        assert [p for p in prearchive if p[1] == study.study_instance_uid] != []
        assert not [e for e in archived if e[1] == study.study_instance_uid]
    # Every DICOM member is on the server (byte for byte where it lists digests; the
    # prearchive lists none) and nothing else (the note and the stray gzip were skipped).
    uri = job.result_uri or job.prearchive_uri
    if dest == "archive":
        assert asyncio.run(_session_md5s(url, uri)) == _md5s(study)
    else:
        sizes = sorted(p.stat().st_size for p in study.paths)
        assert asyncio.run(_session_sizes(url, uri)) == sizes
    assert digests(tmp_path / "in") == before  # nothing written beside the archive


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("bundle.tar.xz", "does not read .tar.xz archives"),
        ("bundle.tar.bz2", "does not read .tar.bz2 archives"),
        ("BUNDLE.ZIP", "case-sensitively"),
    ],
)
def test_as_is_refuses_what_xnat_would_not_read_and_names_the_streamed_command(
    tmp_path: Path, name: str, reason: str
) -> None:
    (study,) = write_sessions(tmp_path / "src", "REF", 1, series=1, files=1)
    archive = make_archive(study.root, tmp_path / name)
    # No server: the refusal comes before anything is read or sent.
    up = cli("upload", str(archive), "--as-is", "--server", "http://127.0.0.1:9", "--project",
             "PILOT", "--user", "alice", "--yes")  # fmt: skip
    assert up.returncode == 1
    assert reason in up.stderr, up.stderr
    assert f"xnat-tui upload {archive} ... without --as-is" in up.stderr
    assert "nothing was sent" in up.stderr


def test_as_is_refuses_a_lone_gzip(tmp_path: Path) -> None:
    lone = tmp_path / "series.dcm.gz"
    lone.write_bytes(b"\x1f\x8b")
    up = cli("upload", str(lone), "--as-is", "--server", "http://127.0.0.1:9", "--project",
             "PILOT", "--user", "alice", "--yes")  # fmt: skip
    assert up.returncode == 1
    assert "not an archive file" in up.stderr or "Unsupported format GZ" in up.stderr


def test_as_is_refuses_a_nested_archive_xnat_would_skip(
    sandbox_thread: SandboxThread, tmp_path: Path
) -> None:
    (study,) = write_sessions(tmp_path / "src", "NEST", 1, series=1, files=2)
    inner = make_archive(study.root, tmp_path / "parts" / "SESSION.ZIP")
    outer = make_archive([(inner.name, inner)], tmp_path / "bundle.zip")
    up = cli("upload", str(outer), "--as-is", "--server", sandbox_thread.url, "--user",
             "alice", "--project", "PILOT", "--yes")  # fmt: skip
    assert up.returncode == 1
    assert "'SESSION.ZIP' inside it would not be opened by XNAT" in up.stderr, up.stderr
    assert "without --as-is" in up.stderr
    archived, prearchive = server_state(sandbox_thread.url, "PILOT")
    assert study.study_instance_uid not in {e[1] for e in archived} | {p[1] for p in prearchive}


def test_as_is_refuses_an_archive_of_two_sessions(
    sandbox_thread: SandboxThread, tmp_path: Path
) -> None:
    studies = write_sessions(tmp_path / "src", "TWO", 2, series=1, files=1)
    archive = make_archive(tmp_path / "src", tmp_path / "two.zip")
    up = cli("upload", str(archive), "--as-is", "--server", sandbox_thread.url, "--user",
             "alice", "--project", "PILOT", "--yes")  # fmt: skip
    assert up.returncode == 1
    assert "holds 2 sessions" in up.stderr, up.stderr
    archived, _ = server_state(sandbox_thread.url, "PILOT")
    assert not {s.study_instance_uid for s in studies} & {e[1] for e in archived}


def test_as_is_killed_mid_send_then_resumed_gives_one_session(
    sandbox_thread: SandboxThread, tmp_path: Path
) -> None:
    url = sandbox_thread.url
    (study,) = write_sessions(tmp_path / "src", "KASIS", 1, series=3, files=4)
    archive = _bundle(study, tmp_path / "in" / "k.tar")
    set_faults(url, "latency=400ms,only=/data/services/import,only=/data/prearchive")
    proc = spawn(
        "upload", str(archive), "--as-is", "--server", url, "--user", "alice", "--project",
        "PILOT", "--dest", "archive", "--yes",
    )  # fmt: skip
    try:
        wait_for(lambda: len(_jobs("KASIS")) == 1)
        time.sleep(0.3)  # inside the slow import
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert _jobs("KASIS")[0].state.active  # killed before it finished
    set_faults(url, "")
    resumed = cli("transfers", "resume", "--json", "--yes")
    assert resumed.returncode == 0, resumed.stderr
    (job,) = _jobs("KASIS")
    assert job.state is JobState.VERIFIED
    archived, prearchive = server_state(url, "PILOT")
    assert [e for e in archived if e[1] == study.study_instance_uid] == [
        (job.label, study.study_instance_uid)
    ]
    assert not [p for p in prearchive if p[1] == study.study_instance_uid]
    assert asyncio.run(_session_md5s(url, job.result_uri)) == _md5s(study)
