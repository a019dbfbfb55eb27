"""The C listing (_fastlist) and the pure-Python walk must give identical results."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.compiler import can_compile
from tests.unit.dicom.listing_spy import spy_on_c_lister
from xnat_tui.dicom import walk as walk_mod
from xnat_tui.dicom.walk import DirListing, walk

try:
    from xnat_tui.dicom import _fastlist
except ImportError:  # not compiled here; test_extension_is_built says whether it must be
    _fastlist = None  # type: ignore[assignment]

needs_ext = pytest.mark.skipif(_fastlist is None, reason="_fastlist extension not compiled")


def test_extension_is_built() -> None:
    """Where it can be compiled, it must be: CI must not silently lose the fast walk."""
    if not can_compile():
        pytest.skip("no Python.h or C compiler: the pure-Python walk is the expected one")
    assert _fastlist is not None, "pip install -e . should have compiled _fastlist.c"
    assert walk_mod._c_list_dir is not None
    source = Path(walk_mod.__file__).with_name("_fastlist.c")
    built = Path(_fastlist.__file__)
    assert built.stat().st_mtime >= source.stat().st_mtime, (
        f"{built.name} is older than _fastlist.c: rebuild with pip install -e ."
    )


# ---- walk() with and without the extension --------------------------------------


def _events(monkeypatch: pytest.MonkeyPatch, roots: list[Any], pure: bool) -> list[Any]:
    monkeypatch.setenv("XNAT_TUI_PURE_WALK", "1" if pure else "0")
    return list(walk(roots))


def _same(monkeypatch: pytest.MonkeyPatch, roots: list[Any]) -> list[Any]:
    """Walk both ways, assert equal events, and that the C listing was really used."""
    assert _fastlist is not None
    calls = spy_on_c_lister(monkeypatch)
    pure = _events(monkeypatch, roots, pure=True)
    assert calls == []
    fast = _events(monkeypatch, roots, pure=False)
    assert calls, "the C listing was not used"
    assert fast == pure
    return fast


def _write(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _listings(events: list[Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for e in events:
        if isinstance(e, DirListing):
            out.setdefault(e.path, []).extend(f[0] for f in e.files)
    return out


@needs_ext
def test_plain_nested_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for s in range(3):
        for i in range(20):
            _write(tmp_path / "P1" / "ST1" / f"S{s}" / f"{i:03}.dcm", bytes(i))
    _write(tmp_path / "top.dcm", b"abc")
    (tmp_path / "empty").mkdir()
    events = _same(monkeypatch, [tmp_path])
    assert len(_listings(events)[str(tmp_path / "P1" / "ST1" / "S2")]) == 20


@needs_ext
def test_links_loops_fifo_and_junk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = tmp_path / "real"
    a = _write(real / "a.dcm", b"a" * 10)
    _write(real / "b.dcm", b"b" * 20)
    os.link(a, real / "a_hard.dcm")  # hard link in the same folder
    os.link(a, tmp_path / "elsewhere_hard.dcm")  # and in another folder
    (tmp_path / "file_link.dcm").symlink_to(real / "b.dcm")
    (tmp_path / "dir_link").symlink_to(real, target_is_directory=True)
    (real / "loop").symlink_to(tmp_path, target_is_directory=True)
    (real / "self").symlink_to(real, target_is_directory=True)
    (tmp_path / "broken").symlink_to(tmp_path / "nowhere")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "fifo_link").symlink_to(tmp_path / "fifo")
    _write(tmp_path / "__MACOSX" / "._a.dcm")
    _write(tmp_path / ".git" / "HEAD")
    _write(tmp_path / "leaf" / "x.dcm")
    events = _same(monkeypatch, [tmp_path])
    kinds = {(e.path, e.detail) for e in events if not isinstance(e, DirListing)}
    assert (str(tmp_path / "broken"), "broken symbolic link") in kinds
    assert any("__MACOSX" in p for p, _ in kinds)


@needs_ext
def test_overlapping_roots_and_loose_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(5):
        _write(tmp_path / "a" / "b" / f"{i}.dcm")
    # A file named on the command line and then its folder: the folder's listing
    # must leave out the file already reported (``already`` in walk.py).
    _same(monkeypatch, [tmp_path / "a" / "b" / "3.dcm", tmp_path / "a" / "b", tmp_path])
    _same(monkeypatch, [tmp_path / "a", tmp_path / "missing", tmp_path / "a" / "b"])


@needs_ext
@pytest.mark.parametrize("count", [6, 7, 8, 14, 15, 22])
def test_parts_of_big_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    monkeypatch.setattr(walk_mod, "PART", 7)
    flat = tmp_path / "flat"
    for i in range(count):
        _write(flat / f"{i:03}.dcm")
    events = _same(monkeypatch, [flat])
    assert sum(len(e.files) for e in events) == count
    # With files named first, the kept files are cut into parts as _list would.
    _same(monkeypatch, [flat / "000.dcm", flat / "005.dcm", flat])
    # A big folder with a subfolder and a hard link takes the general code.
    _write(flat / "sub" / "s.dcm")
    os.link(flat / "001.dcm", flat / "hard.dcm")
    _same(monkeypatch, [flat])


@needs_ext
def test_non_utf8_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = os.fsencode(tmp_path)
    os.mkdir(base + b"/dir\xff")
    for name in (b"caf\xe9.dcm", b"\xff\xfe.dcm", "ok-é.dcm".encode()):
        with open(base + b"/dir\xff/" + name, "wb") as f:
            f.write(b"data")
    events = _same(monkeypatch, [tmp_path])
    (names,) = [v for k, v in _listings(events).items() if k.endswith("dir\udcff")]
    assert sorted(names) == sorted(os.listdir(os.fsdecode(base + b"/dir\xff")))


@contextlib.contextmanager
def _unprivileged() -> Iterator[None]:
    """Run as nobody when we are root, where permission bits are not enforced.

    Only the effective uid changes (the real one stays 0), so it can be restored.
    """
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)


def _readable(folder: Path) -> bool:
    # Not os.access: it checks the real uid, which _unprivileged leaves at 0.
    try:
        os.listdir(folder)
    except PermissionError:
        return False
    return True


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A tree outside the root-only pytest temp folder, so nobody can traverse it."""
    path = Path(tempfile.mkdtemp(prefix="fastlist-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for p in [path, *path.rglob("*")]:
            if p.is_dir() and not p.is_symlink():
                p.chmod(0o755)
        shutil.rmtree(path)


@needs_ext
def test_unreadable_folders(shared_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("locked", "list_only", "search_only", "fine"):
        _write(shared_tmp / name / "a.dcm")
        _write(shared_tmp / name / "b.dcm")
    (shared_tmp / "locked").chmod(0)
    (shared_tmp / "list_only").chmod(0o444)  # names readable, files cannot be stat'ed
    (shared_tmp / "search_only").chmod(0o111)  # files reachable, names not listable
    with _unprivileged():
        if _readable(shared_tmp / "locked"):
            pytest.skip("permission bits are not enforced here")
        events = _same(monkeypatch, [shared_tmp])
    problems = {(e.path, e.detail) for e in events if not isinstance(e, DirListing)}
    assert (str(shared_tmp / "locked"), "cannot list folder: permission denied") in problems
    assert (str(shared_tmp / "search_only"), "cannot list folder: permission denied") in problems
    assert (str(shared_tmp / "list_only"), _CANNOT_ENTER.format(2)) in problems
    assert sorted(_listings(events)[str(shared_tmp / "fine")]) == ["a.dcm", "b.dcm"]


_CANNOT_ENTER = (
    "cannot enter folder: permission denied (its names can be listed but not reached: "
    "read without search permission); its {} entries are not scanned"
)


@pytest.mark.parametrize(
    ("mode", "detail"),
    [
        # r without x: the names, but no file reachable
        pytest.param(0o644, _CANNOT_ENTER.format(4), id="644"),
        pytest.param(0o444, _CANNOT_ENTER.format(4), id="444"),
        pytest.param(0o311, "cannot list folder: permission denied", id="311"),  # x, no r
        pytest.param(0o000, "cannot list folder: permission denied", id="000"),
    ],
)
@pytest.mark.parametrize("pure", [True, False], ids=["pure", "c"])
def test_every_folder_the_walk_cannot_list_or_enter_is_a_problem(
    shared_tmp: Path, monkeypatch: pytest.MonkeyPatch, mode: int, detail: str, pure: bool
) -> None:
    """Issue 14 item 4: a mode 644 folder lost its files with no problem at all."""
    if not pure and _fastlist is None:
        pytest.skip("_fastlist extension not compiled")
    closed = shared_tmp / "closed"
    for name in ("a.dcm", "b.dcm", "sub/c.dcm", "sub2/d.dcm"):
        _write(closed / name)
    _write(shared_tmp / "open" / "e.dcm")
    closed.chmod(mode)
    with _unprivileged():
        # "Others" bits apply to nobody: r lets it list the names, x reach the files.
        enforced = _readable(closed) == bool(mode & 0o004) and _stat_refused(closed / "a.dcm") == (
            not mode & 0o001
        )
        if not enforced:
            pytest.skip("permission bits are not enforced here")
        events = _events(monkeypatch, [shared_tmp], pure)
    problems = [(e.path, e.kind, e.detail) for e in events if not isinstance(e, DirListing)]
    assert problems == [(str(closed), "unreadable", detail)]
    listed = _listings(events)
    assert str(closed) not in listed and listed[str(shared_tmp / "open")] == ["e.dcm"]


def _stat_refused(path: Path) -> bool:
    try:
        os.lstat(path)
    except PermissionError:
        return True
    return False


@pytest.mark.parametrize("pure", [True, False], ids=["pure", "c"])
def test_a_refused_listing_is_a_problem_even_as_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pure: bool
) -> None:
    """Without real permission bits (root): the listing calls raise PermissionError."""
    if not pure and _fastlist is None:
        pytest.skip("_fastlist extension not compiled")
    _write(tmp_path / "closed" / "a.dcm")
    _write(tmp_path / "open" / "b.dcm")
    closed = str(tmp_path / "closed")
    real_scandir, real_c = os.scandir, walk_mod._c_list_dir

    closed_ino = os.stat(closed).st_ino

    def scandir(target: Any) -> Any:
        # The walk lists through a descriptor where it can, else by path.
        hit = (
            os.fstat(target).st_ino == closed_ino
            if isinstance(target, int)
            else os.fspath(target) == closed
        )
        if hit:
            raise PermissionError(13, "Permission denied", closed)
        return real_scandir(target)

    def c_list(path: str) -> Any:
        if path == closed:
            raise PermissionError(13, "Permission denied", closed)
        assert real_c is not None
        return real_c(path)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(walk_mod, "_c_list_dir", c_list)
    events = _events(monkeypatch, [tmp_path], pure)
    problems = [(e.path, e.detail) for e in events if not isinstance(e, DirListing)]
    assert problems == [(closed, "cannot list folder: permission denied")]
    assert _listings(events)[str(tmp_path / "open")] == ["b.dcm"]


# ---- list_dir itself --------------------------------------------------------------


@needs_ext
def test_list_dir_matches_lstat_and_scandir_order(tmp_path: Path) -> None:
    assert _fastlist is not None
    for i in range(700):  # past the initial record and name buffer sizes
        _write(tmp_path / (f"{i:04}-" + "n" * 40 + ".dcm"), b"z" * i)
    os.utime(tmp_path / ("0001-" + "n" * 40 + ".dcm"), ns=(0, 1_234_567_890_123_456_789))
    os.utime(tmp_path / ("0002-" + "n" * 40 + ".dcm"), ns=(0, -1_500_000_001))  # 1969
    (tmp_path / "sub").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "sub")
    (tmp_path / "broken").symlink_to(tmp_path / "nowhere")
    os.link(tmp_path / ("0003-" + "n" * 40 + ".dcm"), tmp_path / "hard")
    os.mkfifo(tmp_path / "fifo")

    files, others = _fastlist.list_dir(str(tmp_path))
    hard = "0003-" + "n" * 40 + ".dcm"
    plain = {e.name for e in os.scandir(tmp_path) if e.name[0] == "0" and e.name != hard}
    order = [e.name for e in os.scandir(tmp_path)]
    assert [f[0] for f in files] == [n for n in order if n in plain]
    assert others == [n for n in order if n not in plain]
    assert set(others) == {"sub", "link", "broken", "hard", "fifo", hard}
    for name, size, mtime_ns in files:
        st = os.lstat(tmp_path / name)
        assert (size, mtime_ns) == (st.st_size, st.st_mtime_ns)
    mtimes = {name[:4]: mtime for name, _, mtime in files}
    assert mtimes["0001"] == 1_234_567_890_123_456_789 and mtimes["0002"] == -1_500_000_001
    assert _fastlist.list_dir(tmp_path / "sub") == ([], [])  # os.PathLike works too


@needs_ext
def test_list_dir_errors(tmp_path: Path, shared_tmp: Path) -> None:
    assert _fastlist is not None
    with pytest.raises(FileNotFoundError) as exc:
        _fastlist.list_dir(str(tmp_path / "missing"))
    assert exc.value.filename == str(tmp_path / "missing")
    _write(tmp_path / "file")
    with pytest.raises(NotADirectoryError) as exc2:
        _fastlist.list_dir(str(tmp_path / "file"))
    assert exc2.value.filename == str(tmp_path / "file") and exc2.value.strerror
    with pytest.raises(ValueError):
        _fastlist.list_dir("a\0b")
    with pytest.raises(TypeError):
        _fastlist.list_dir(42)  # type: ignore[arg-type]
    locked = shared_tmp / "locked"
    locked.mkdir()
    locked.chmod(0)
    with _unprivileged():
        if _readable(locked):
            pytest.skip("permission bits are not enforced here")
        with pytest.raises(PermissionError) as exc3:
            _fastlist.list_dir(str(locked))
    assert exc3.value.filename == str(locked)


# ---- pack() and check_tree(), for the tree memo --------------------------------------


def _pack_reference(files: list[tuple[str, int, int]]) -> bytes:
    return b"".join(
        os.fsencode(name)
        + b"\0"
        + size.to_bytes(8, "little", signed=True)
        + mtime.to_bytes(8, "little", signed=True)
        for name, size, mtime in files
    )


@needs_ext
def test_pack_is_the_documented_encoding() -> None:
    assert _fastlist is not None
    files = [("a.dcm", 0, 0), ("caf\udce9", 2**40, -1_500_000_001), ("é", 7, 2**62)]
    assert _fastlist.pack(files) == _pack_reference(files)
    assert _fastlist.pack([]) == b""
    assert _fastlist.pack(files[:1]) + _fastlist.pack(files[1:]) == _fastlist.pack(files)
    with pytest.raises(TypeError):
        _fastlist.pack([("a", "b", 1)])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        _fastlist.pack([["a", 1, 1]])  # type: ignore[list-item]
    # unpack() gives back exactly what pack() was given, from any buffer.
    assert _fastlist.unpack(_fastlist.pack(files)) == files
    assert _fastlist.unpack(memoryview(_fastlist.pack(files))) == files
    assert _fastlist.unpack(b"") == []
    for bad in (b"no-nul", b"name\0short", _fastlist.pack(files)[:-1]):
        with pytest.raises(ValueError):
            _fastlist.unpack(bad)


@needs_ext
@pytest.mark.parametrize("threads", [1, 2, 8])
def test_check_tree_reads_what_list_dir_and_stat_read(tmp_path: Path, threads: int) -> None:
    assert _fastlist is not None
    plain = [tmp_path / "plain" / f"s{i}" for i in range(12)]
    for j, folder in enumerate(plain):
        for i in range(j * 60):  # up to 660 files: past the buffer sizes
            _write(folder / f"{i:04}-{'n' * 30}.dcm", b"z" * i)
        (folder / "sub-a").mkdir(parents=True)
        (folder / "sub-b").mkdir()
    os.mkdir(os.fsencode(tmp_path / "plain") + b"/dir\xff")
    odd = {
        "link": tmp_path / "odd" / "link",
        "hard": tmp_path / "odd" / "hard",
        "fifo": tmp_path / "odd" / "fifo",
        "dirlink": tmp_path / "odd" / "dirlink",
    }
    _write(odd["link"] / "a.dcm").parent.joinpath("l").symlink_to("a.dcm")
    a = _write(odd["hard"] / "a.dcm")
    os.link(a, odd["hard"] / "b.dcm")
    odd["fifo"].mkdir(parents=True)
    os.mkfifo(odd["fifo"] / "f")
    odd["dirlink"].mkdir()
    (odd["dirlink"] / "d").symlink_to(tmp_path / "plain", target_is_directory=True)
    missing = tmp_path / "missing"
    paths = [str(p) for p in plain] + [str(tmp_path / "plain")]
    paths += [str(p) for p in odd.values()] + [str(missing), str(a)]
    got = _fastlist.check_tree(paths, threads)
    assert len(got) == len(paths)
    for path, result in zip(paths[: len(plain) + 1], got, strict=False):
        assert result is not None, path
        dev, ino, packed, subdirs = result
        st = os.stat(path)
        files, others = _fastlist.list_dir(path)
        assert (dev, ino) == (st.st_dev, st.st_ino)
        assert packed == _pack_reference(files)
        assert subdirs == others  # here every other entry is a real folder
    assert sorted(got[len(plain)][3]) == sorted(os.listdir(tmp_path / "plain"))
    # A link, a hard link, a FIFO, a link to a folder, a missing folder, a file: None.
    assert got[len(plain) + 1 :] == [None] * 6
    assert _fastlist.check_tree([], threads) == []


@needs_ext
def test_pack_and_check_tree_hold_their_own_copy_of_the_input(tmp_path: Path) -> None:
    """Python code run while converting an item (``__fspath__``, ``__index__``) may
    change the caller's list: the C code must not read freed items."""
    assert _fastlist is not None
    paths: list[Any] = []

    class Clearing:
        def __fspath__(self) -> str:
            paths.clear()
            return str(tmp_path)

    paths += [Clearing(), str(tmp_path)]
    got = _fastlist.check_tree(paths, 2)
    assert len(got) == 2 and got[0] == got[1] and got[0] is not None
    files: list[Any] = []

    class Shrinking:
        def __index__(self) -> int:
            files.clear()
            return 5

    files += [("a", Shrinking(), 1), ("b", 2, 3)]
    assert _fastlist.unpack(_fastlist.pack(files)) == [("a", 5, 1), ("b", 2, 3)]
    with pytest.raises(TypeError):
        _fastlist.check_tree(str(tmp_path), 2)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        _fastlist.pack([("a\0b", 1, 1)])
