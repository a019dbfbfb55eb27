"""``xnat-tui download`` as a real process against the sandbox: byte-for-byte results,
the catalog XML, kill -9 then resume, and ``transfers resume`` for downloads."""

from __future__ import annotations

import json
import re
import signal
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.test_reliability_cli import set_faults, wait_for
from tests.unit.transfer.e2e_support import cli, spawn
from tests.unit.transfer.test_download_engine import archive_bytes, change_a_file
from xnat_tui.sandbox.server import SandboxThread
from xnat_tui.transfer.journal import Journal
from xnat_tui.transfer.kinds import JobKind
from xnat_tui.transfer.types import JobState

pytestmark = pytest.mark.e2e


def server_bytes(thread: SandboxThread, label: str) -> dict[str, bytes]:
    server = thread.server
    assert server is not None
    return thread.call(lambda: archive_bytes(server.store, label))


def xnat_layout_bytes(out: Path, label: str) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for p in (out / label / "scans").rglob("*"):
        if p.is_file():
            found[f"{p.relative_to(out / label / 'scans').parts[0].split('-')[0]}/{p.name}"] = (
                p.read_bytes()
            )
    return found


def base_args(url: str, journal: Path) -> list[str]:
    return ["--server", url, "--user", "alice", "--journal", str(journal), "--yes"]


def kill_9_after(url: str, argv: list[str], journal: Path, out: Path, files: int) -> None:
    """Runs the command with slow file GETs, one at a time (so the kill lands between
    files), and kills it with SIGKILL once ``files`` files are in ``out``."""
    set_faults(url, "latency=150ms,only=/data/experiments/")
    proc = spawn(*argv, "--jobs", "1", *base_args(url, journal))
    try:
        wait_for(lambda: len([p for p in out.rglob("*.dcm")]) >= files)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    set_faults(url, "")


def test_download_a_project_byte_for_byte_then_a_rerun_fetches_nothing(
    sandbox_thread: SandboxThread, tmp_path: Path
) -> None:
    url, out, journal = sandbox_thread.url, tmp_path / "out", tmp_path / "j.sqlite3"
    done = cli(
        "download", "--project", "PILOT", "--out", str(out), "--json", *base_args(url, journal)
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] and result["verified"] == 1
    assert xnat_layout_bytes(out, "PIL_900_MR1") == server_bytes(sandbox_thread, "PIL_900_MR1")
    listed = cli("transfers", "list", "--all", "--journal", str(journal))
    assert listed.returncode == 0, listed.stderr
    line = next(x for x in listed.stdout.splitlines() if result["jobs"][0]["id"] in x)
    assert "PILOT/PIL_900/PIL_900_MR1" in line and "2/2 series" in line, line
    shown = cli("transfers", "show", result["jobs"][0]["id"], "--journal", str(journal))
    assert shown.returncode == 0, shown.stderr
    # A download's own words: where from and into, scans received; no upload options.
    assert f"into       {out}" in shown.stdout and "options" not in shown.stdout
    series = [x for x in shown.stdout.splitlines() if x.strip().startswith("series")]
    assert len(series) == 2 and all(" received " in x for x in series), series
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    again = cli("download", "--project", "PILOT", "--out", str(out), *base_args(url, journal))
    assert again.returncode == 0, again.stderr
    assert "7 file(s) verified (7 by MD5)" in again.stderr
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == stamps


def test_unknown_session_is_a_usage_error_and_nothing_is_written(
    sandbox_thread: SandboxThread, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    bad = cli(
        "download",
        "--project",
        "PILOT",
        "--session",
        "NOPE",
        "--out",
        str(out),
        *base_args(sandbox_thread.url, tmp_path / "j.sqlite3"),
    )
    assert bad.returncode == 2
    assert "no session NOPE in project PILOT" in bad.stderr
    assert not out.exists()


def test_a_file_given_as_the_folder_is_a_usage_error_before_any_request(
    sandbox_thread: SandboxThread, tmp_path: Path
) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    bad = cli(
        "download",
        "--project",
        "PILOT",
        "--out",
        str(a_file),
        *base_args(sandbox_thread.url, tmp_path / "j.sqlite3"),
    )
    assert bad.returncode == 2
    assert f"error: {a_file} is a file, not a folder" in bad.stderr
    assert a_file.read_text() == "mine" and not (tmp_path / "j.sqlite3").exists()


def test_catalog_xml_downloads_what_it_names(sandbox_thread: SandboxThread, tmp_path: Path) -> None:
    url = sandbox_thread.url
    auth = "Basic " + __import__("base64").b64encode(b"alice:alice").decode()
    sessions = json.loads(
        urllib.request.urlopen(
            urllib.request.Request(
                f"{url}/data/projects/PILOT/experiments?format=json",
                headers={"Authorization": auth},
            ),
            timeout=10,
        ).read()
    )["ResultSet"]["Result"]
    sid = sessions[0]["ID"]
    body = {
        "projectIds": ["PILOT"],
        "sessions": [f"PILOT:PIL_900:PIL_900_MR1:{sid}"],
        "scan_types": ["localizer"],
        "scan_formats": ["DICOM"],
        "options": ["simplified"],
    }
    request = urllib.request.Request(
        f"{url}/xapi/archive/downloadwithsize",
        data=json.dumps(body).encode(),
        headers={"Authorization": auth, "Content-Type": "application/json"},
        method="POST",
    )
    made = json.loads(urllib.request.urlopen(request, timeout=10).read())
    xml = urllib.request.urlopen(
        urllib.request.Request(
            f"{url}/xapi/archive/download/{made['id']}/xml", headers={"Authorization": auth}
        ),
        timeout=10,
    ).read()
    catalog = tmp_path / "catalog.xml"
    catalog.write_bytes(xml)
    out = tmp_path / "out"
    done = cli(
        "download",
        "--catalog",
        str(catalog),
        "--out",
        str(out),
        *base_args(url, tmp_path / "j.sqlite3"),
    )
    assert done.returncode == 0, done.stderr
    got = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    expected = {
        f"PIL_900_MR1/1/DICOM/{k.split('/', 1)[1]}": v
        for k, v in server_bytes(sandbox_thread, "PIL_900_MR1").items()
        if k.startswith("1/")
    }
    assert got == expected
    # The same entry twice, and one for a scan deleted since: the rest is fetched, the
    # duplicate once, and the missing one is said (exit 1, --json "missing").
    text = xml.decode()
    entry = re.search(r"<cat:entry [^>]*/>", text)
    assert entry is not None
    gone = entry.group(0).replace("/scans/1/", "/scans/99/").replace('/1/DICOM"', '/99/DICOM"')
    catalog.write_text(text.replace(entry.group(0), entry.group(0) * 2 + gone))
    out2 = tmp_path / "out2"
    args = ["download", "--catalog", str(catalog), "--out", str(out2)]
    partly = cli(*args, *base_args(url, tmp_path / "j.sqlite3"))
    assert partly.returncode == 1, partly.stderr
    said = "not on the server, not downloaded: PIL_900_MR1/99/DICOM: scan 99 DICOM"
    assert said in partly.stderr
    again = cli(*args, "--json", *base_args(url, tmp_path / "j.sqlite3"))
    assert again.returncode == 1, again.stderr
    result = json.loads(again.stdout)
    assert result["ok"] is False and result["verified"] == 1
    assert [m.split(":")[0] for m in result["missing"]] == ["PIL_900_MR1/99/DICOM"]
    got = {p.relative_to(out2).as_posix(): p.read_bytes() for p in out2.rglob("*") if p.is_file()}
    assert got == expected


def test_kill_9_mid_download_then_resume_finishes_verified(
    sandbox_thread: SandboxThread, tmp_path: Path
) -> None:
    url, out, journal = sandbox_thread.url, tmp_path / "out", tmp_path / "j.sqlite3"
    kill_9_after(url, ["download", "--project", "PILOT", "--out", str(out)], journal, out, 2)
    j = Journal(journal)
    [job] = j.jobs(kinds=[JobKind.DOWNLOAD])
    assert job.state is JobState.SENDING
    before = len(j.done_files(job.id))
    j.close()
    # Marks go to the journal in batches: some finished files may not be marked yet;
    # the resume finds those on disk by their MD5 and does not fetch them again.
    assert before < 7
    # Nothing under a final name is incomplete.
    expected = server_bytes(sandbox_thread, "PIL_900_MR1")
    partial = xnat_layout_bytes(out, "PIL_900_MR1")
    assert all(expected[k] == v for k, v in partial.items() if not k.endswith(".part"))
    resumed = cli(
        "transfers",
        "resume",
        "--json",
        "--yes",
        "--journal",
        str(journal),
        "--server",
        url,
        "--user",
        "alice",
    )
    assert resumed.returncode == 0, resumed.stderr
    j = Journal(journal)
    assert j.job(job.id).state is JobState.VERIFIED
    j.close()
    assert xnat_layout_bytes(out, "PIL_900_MR1") == expected
    assert not list(out.rglob("*.part"))


@pytest.mark.parametrize("changed", [False, True], ids=["same-files", "file-changed"])
def test_asking_again_after_kill_9_finishes_with_one_job_per_session(
    sandbox_thread: SandboxThread, tmp_path: Path, changed: bool
) -> None:
    """The same command again after kill -9: the unfinished job goes on (listed once,
    not also as 'resumed'); if a file changed on the server meanwhile, the new request
    replaces it (the old digest would refuse the new bytes) and says so."""
    url, out, journal = sandbox_thread.url, tmp_path / "out", tmp_path / "j.sqlite3"
    argv = ["download", "--project", "PILOT", "--out", str(out), "--json"]
    kill_9_after(url, argv, journal, out, 1)
    if changed:
        server = sandbox_thread.server
        assert server is not None
        sandbox_thread.call(lambda: change_a_file(server.store, "PIL_900_MR1"))
    again = cli(*argv, *base_args(url, journal))
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout)
    assert result["ok"] and [j["state"] for j in result["jobs"]] == ["verified"], result
    assert bool(result["replaced"]) is changed, result
    assert all("replaced by" in r["message"] for r in result["replaced"])
    assert xnat_layout_bytes(out, "PIL_900_MR1") == server_bytes(sandbox_thread, "PIL_900_MR1")


def test_the_same_download_started_again_while_it_runs_elsewhere_is_refused(
    sandbox_thread: SandboxThread, tmp_path: Path
) -> None:
    """Two processes on one session into one folder would truncate and rename each
    other's .part files: the second is refused, names the job, and changes nothing."""
    url, out, journal = sandbox_thread.url, tmp_path / "out", tmp_path / "j.sqlite3"
    argv = ["download", "--project", "PILOT", "--out", str(out)]
    set_faults(url, "latency=150ms,only=/data/experiments/")
    first = spawn(*argv, "--jobs", "1", *base_args(url, journal))
    try:
        wait_for(lambda: len(list(out.rglob("*.dcm"))) >= 1)
        second = cli(*argv, *base_args(url, journal))
    finally:
        set_faults(url, "")
    assert first.wait(timeout=60) == 0
    assert second.returncode == 1, second.stderr
    assert "PILOT/PIL_900_MR1 is already being downloaded into" in second.stderr
    assert "xnat-tui transfers cancel" in second.stderr
    assert len(Journal(journal).jobs(kinds=[JobKind.DOWNLOAD])) == 1
    assert xnat_layout_bytes(out, "PIL_900_MR1") == server_bytes(sandbox_thread, "PIL_900_MR1")


def test_a_download_paused_from_another_shell_says_how_to_go_on(
    sandbox_thread: SandboxThread, tmp_path: Path
) -> None:
    url, out, journal = sandbox_thread.url, tmp_path / "out", tmp_path / "j.sqlite3"
    set_faults(url, "latency=150ms,only=/data/experiments/")
    running = spawn(
        "download", "--project", "PILOT", "--out", str(out), "--jobs", "1",
        *base_args(url, journal),
    )  # fmt: skip
    try:
        wait_for(lambda: len(list(out.rglob("*.dcm"))) >= 1)
        [job] = Journal(journal).jobs(kinds=[JobKind.DOWNLOAD])
        paused = cli("transfers", "pause", job.id, "--journal", str(journal))
        assert paused.returncode == 0, paused.stderr
        _, err = running.communicate(timeout=60)
    finally:
        set_faults(url, "")
    assert running.returncode == 1
    assert f"paused from elsewhere: {job.id}" in err
    assert f"'xnat-tui transfers resume {job.id}'" in err
    assert f"{job.id} PILOT/PIL_900/PIL_900_MR1 receiving" in err and " sending" not in err


def test_a_broken_catalog_is_a_usage_error_and_nothing_to_fetch_keeps_the_json_shape(
    sandbox_thread: SandboxThread, tmp_path: Path
) -> None:
    args = base_args(sandbox_thread.url, tmp_path / "j.sqlite3")
    broken = tmp_path / "cat.xml"
    broken.write_text("<cat:Catalog xmlns:cat='http://nrg.wustl.edu/catalog'><unclosed>")
    bad = cli("download", "--catalog", str(broken), "--out", str(tmp_path / "o"), *args)
    assert bad.returncode == 2 and "the catalog is not valid XML" in bad.stderr
    deep = "<cat:Catalog xmlns:cat='http://nrg.wustl.edu/catalog'>" + (
        "<cat:sets>" * 3000 + "</cat:sets>" * 3000 + "</cat:Catalog>"
    )
    broken.write_text(deep)
    bad = cli("download", "--catalog", str(broken), "--out", str(tmp_path / "o"), *args)
    assert bad.returncode == 2 and "nests deeper than 64 levels" in bad.stderr
    none = cli(
        "download", "--project", "PILOT", "--resource", "NOPE", "--json",
        "--out", str(tmp_path / "o"), *args,
    )  # fmt: skip
    assert none.returncode == 1
    result = json.loads(none.stdout)
    assert result["ok"] is False and result["jobs"] == [] and result["empty"]
    assert {"verified", "failed", "out", "replaced", "interrupted"} <= set(result)
