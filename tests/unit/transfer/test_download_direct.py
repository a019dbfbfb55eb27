"""How the download engine uses the disk: direct writes where the disk takes them, the
whole file either way, however the bytes arrive; no look per file into a new folder."""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from xnat_tui.sandbox.server import SandboxServer
from xnat_tui.transfer import download
from xnat_tui.transfer.download import PART, LocalFileSystem, _write_all
from xnat_tui.transfer.journal import Journal
from xnat_tui.transfer.types import JobState
from xnat_tui.workflow import download as dl
from xnat_tui.xnat.client import XnatClient
from xnat_tui.xnat.credentials import Credentials

from .test_download_engine import engine, local_files, run_plan, server_files


def _takes_direct(folder: Path) -> bool:
    try:
        fd = os.open(folder / "probe", os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o644)
    except OSError:
        return False
    os.close(fd)
    os.unlink(folder / "probe")
    return True


def _aligned(data: bytes) -> memoryview:
    buf = mmap.mmap(-1, max(len(data), 1))
    buf.write(data)
    return memoryview(buf)[: len(data)]


def test_a_new_part_is_written_direct_then_its_tail_through_the_cache(tmp_path: Path) -> None:
    if not _takes_direct(tmp_path):
        pytest.skip("this file system refuses O_DIRECT")
    data = os.urandom(3 * 4096 + 1000)
    fs = LocalFileSystem()
    part, final = tmp_path / "a" / f"x.dcm{PART}", tmp_path / "a" / "x.dcm"
    handle = fs.open_part(part, append=False)
    # Nothing the page cache would only copy: the bytes go from the buffer to the disk.
    assert fcntl.fcntl(handle.fileno(), fcntl.F_GETFL) & os.O_DIRECT
    view = _aligned(data)
    _write_all(handle, view[:8192])
    _write_all(handle, view[8192:])  # an aligned start, a length that is not: the tail
    fs.sync(handle)
    fs.finish(handle, part, final)
    assert final.read_bytes() == data and not part.exists()


def test_unaligned_writes_and_a_disk_without_direct_io_still_give_the_whole_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(5 * 4096 + 3)
    fs = LocalFileSystem()
    # Bytes objects: neither address nor lengths aligned.
    handle = fs.open_part(tmp_path / f"a.dcm{PART}", append=False)
    for piece in (data[:1], data[1:4097], data[4097:12289], data[12289:]):
        _write_all(handle, piece)
    fs.sync(handle)
    fs.finish(handle, tmp_path / f"a.dcm{PART}", tmp_path / "a.dcm")
    assert (tmp_path / "a.dcm").read_bytes() == data

    real_open = os.open

    def no_direct(path: object, flags: int, mode: int = 0o777) -> int:
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, mode)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", no_direct)
    handle = fs.open_part(tmp_path / f"b.dcm{PART}", append=False)
    assert not fcntl.fcntl(handle.fileno(), fcntl.F_GETFL) & os.O_DIRECT
    _write_all(handle, _aligned(data))
    fs.sync(handle)
    fs.finish(handle, tmp_path / f"b.dcm{PART}", tmp_path / "b.dcm")
    assert (tmp_path / "b.dcm").read_bytes() == data


@pytest_asyncio.fixture
async def client(sandbox: SandboxServer) -> AsyncIterator[XnatClient]:
    async with XnatClient(Credentials(sandbox.url, "alice", "alice")) as c:
        yield c


async def test_files_larger_than_the_buffer_arrive_whole_in_odd_steps(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Several buffers per file, steps that do not divide them, tails of any length (and
    # direct writes of 512 bytes, which a disk of 4 KiB sectors refuses: EINVAL).
    monkeypatch.setattr(download, "ALIGN", 512)
    monkeypatch.setattr(download, "BUFFER", 1024)
    monkeypatch.setattr(download, "STEP", 300)
    out = tmp_path / "out"
    plan = await dl.plan_request(client, project="PILOT", out=out, sessions=["PIL_900_MR1"])
    assert max(f.size or 0 for f in plan.downloads[0].files) > 1024
    eng = engine(client, Journal(tmp_path / "j.sqlite3"))
    states = await run_plan(eng, plan)
    await eng.close()
    assert list(states.values()) == [JobState.VERIFIED]
    assert local_files(out) == server_files(sandbox, "PIL_900_MR1")


class CountingFs(LocalFileSystem):
    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[Path] = []

    def size(self, path: Path) -> int | None:
        self.sizes.append(path)
        return super().size(path)


async def test_a_new_folder_is_listed_once_not_looked_into_per_file(
    sandbox: SandboxServer, client: XnatClient, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    plan = await dl.plan_request(client, project="PILOT", out=out, sessions=["PIL_900_MR1"])
    fs = CountingFs()
    eng = engine(client, Journal(tmp_path / "j.sqlite3"), fs=fs)
    assert list((await run_plan(eng, plan)).values()) == [JobState.VERIFIED]
    await eng.close()
    # Only the final check of each file on disk: no look for a file or a .part before.
    assert sorted(fs.sizes) == sorted(p for p in out.rglob("*") if p.is_file())
    assert len(fs.sizes) == 7
